/**
 * The live dashboard served at `/` of the monitoring endpoint. Charts use
 * uPlot, served by the endpoint itself from the installed package (no CDN);
 * data arrives every second over Server-Sent Events from `/events`, read with
 * fetch() so that it can carry `Authorization: Bearer TOKEN` (EventSource
 * cannot send headers). The token comes from the URL fragment (`/#token=…`,
 * never sent to the server), or from a form when the endpoint asks for one;
 * it is kept in sessionStorage for the tab and taken out of the address bar.
 */
/** The dashboard's icon: three linked dots (a dispatcher and two nodes). */
export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
<rect width="32" height="32" rx="6" fill="#1f2937"/>
<path d="M16 9 L8 23 M16 9 L24 23" stroke="#93c5fd" stroke-width="2.5"/>
<circle cx="16" cy="9" r="4.5" fill="#60a5fa"/><circle cx="8" cy="23" r="4" fill="#34d399"/><circle cx="24" cy="23" r="4" fill="#34d399"/>
</svg>
`;

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>nodeset dispatcher</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/uplot.css">
<style>
  :root { --fg: #1d2433; --muted: #667085; --line: #e4e7ec; --accent: #2563eb; --bg: #f8fafc; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, Segoe UI, Roboto, sans-serif; color: var(--fg); background: var(--bg); }
  header { display: flex; align-items: baseline; gap: 16px; padding: 14px 24px; background: #fff; border-bottom: 1px solid var(--line); }
  header h1 { font-size: 18px; margin: 0; }
  header .state { color: var(--muted); }
  header .state.live::before { content: "\\25CF "; color: #16a34a; }
  main { padding: 16px 24px; display: grid; gap: 16px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
  .card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
  .card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
  .card .value { font-size: 24px; font-weight: 600; font-variant-numeric: tabular-nums; }
  .charts { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
  .panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px; }
  .panel h2 { font-size: 14px; margin: 0 0 8px; }
  table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { color: var(--muted); font-weight: 500; font-size: 12px; }
  td.num, th.num { text-align: right; }
  .subs { color: var(--muted); font-size: 12px; }
  .empty { color: var(--muted); padding: 12px 8px; }
  .tables { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; align-items: start; }
  th.sortable { cursor: pointer; user-select: none; }
  th.sorted { color: var(--fg); }
  th.sorted::after { content: " \\25BC"; font-size: 10px; }
  th.sorted.asc::after { content: " \\25B2"; }
  .note { color: var(--muted); font-size: 12px; font-weight: 400; margin-left: 8px; }
  .ev { word-break: break-all; }
  #login { display: flex; gap: 8px; align-items: center; }
  #login[hidden] { display: none; }
  #login input { font: inherit; padding: 4px 8px; border: 1px solid var(--line); border-radius: 6px; width: 22em; }
</style>
</head>
<body>
<header><h1>nodeset dispatcher <span id="host"></span></h1><span id="state" class="state">connecting…</span>
  <form id="login" hidden><label for="token">Token</label><input id="token" type="password" autocomplete="off"><button>Connect</button></form>
</header>
<main>
  <section class="cards">
    <div class="card"><div class="label">Nodes</div><div class="value" id="connections">–</div></div>
    <div class="card"><div class="label">Subscriptions</div><div class="value" id="subscriptions">–</div></div>
    <div class="card"><div class="label">Publishes / s</div><div class="value" id="pubrate">–</div></div>
    <div class="card"><div class="label">Deliveries / s</div><div class="value" id="delrate">–</div></div>
    <div class="card"><div class="label">Dropped</div><div class="value" id="dropped">–</div></div>
    <div class="card"><div class="label">Memory (RSS)</div><div class="value" id="rss">–</div></div>
    <div class="card"><div class="label">Federation</div><div class="value" id="federation">–</div><div class="note" id="fed-hosts"></div></div>
  </section>
  <section class="charts">
    <div class="panel"><h2>Publishes per second</h2><div id="chart-pub"></div></div>
    <div class="panel"><h2>Deliveries per second</h2><div id="chart-del"></div></div>
    <div class="panel"><h2>Bytes per second (in, out)</h2><div id="chart-bytes"></div></div>
    <div class="panel"><h2>Dropped per second</h2><div id="chart-drop"></div></div>
  </section>
  <section class="tables">
    <div class="panel">
      <h2>Top events <span class="note" id="events-note">publishes per second over the last sample</span></h2>
      <table id="events-table">
        <thead><tr><th class="sortable" data-key="event">Event</th><th class="sortable num sorted" data-key="perSec">Msg/s</th><th class="sortable num" data-key="total">Total</th></tr></thead>
        <tbody id="events"><tr><td colspan="3" class="empty">no events</td></tr></tbody>
      </table>
    </div>
    <div class="panel">
      <h2>Queue groups <span class="note" id="groups-note"></span></h2>
      <table>
        <thead><tr><th>Group</th><th>Event URI</th><th class="num">Members</th><th>Nodes</th></tr></thead>
        <tbody id="groups"><tr><td colspan="4" class="empty">no queue groups</td></tr></tbody>
      </table>
    </div>
  </section>
  <section class="panel">
    <h2>Nodes</h2>
    <table>
      <thead><tr><th>Name</th><th>Host</th><th>Address</th><th>Connected</th><th class="num">In/s</th><th class="num">Out/s</th><th class="num">In</th><th class="num">Out</th><th class="num">Heartbeat</th><th>Subscriptions</th></tr></thead>
      <tbody id="nodes"><tr><td colspan="10" class="empty">no nodes</td></tr></tbody>
    </table>
  </section>
</main>
<script src="/assets/uplot.js"></script>
<script>
  // 15 minutes at one sample a second, as the server keeps (GET /history fills the charts on load).
  const WINDOW = 900;
  const times = [], pubs = [], dels = [], bin = [], bout = [], drops = [];
  const fmt = (n) => n >= 1e6 ? (n / 1e6).toFixed(1) + 'M' : n >= 1e4 ? (n / 1e3).toFixed(1) + 'k' : String(Math.round(n));
  const chart = (el, series) => new uPlot({
    width: el.clientWidth || 500, height: 200,
    series: [{}, ...series.map(([label, color]) => ({ label, stroke: color, width: 2, fill: color + '22' }))],
    axes: [{}, { size: 64, values: (u, v) => v.map(fmt) }],
    legend: { show: false },
  }, [times, ...series.map(() => [])], el);
  const pubChart = chart(document.getElementById('chart-pub'), [['publishes/s', '#2563eb']]);
  const delChart = chart(document.getElementById('chart-del'), [['deliveries/s', '#16a34a']]);
  const bytesChart = chart(document.getElementById('chart-bytes'), [['bytes in/s', '#7c3aed'], ['bytes out/s', '#0891b2']]);
  const dropChart = chart(document.getElementById('chart-drop'), [['dropped/s', '#dc2626']]);
  const redraw = () => {
    while (times.length > WINDOW) for (const a of [times, pubs, dels, bin, bout, drops]) a.shift();
    pubChart.setData([times, pubs]);
    delChart.setData([times, dels]);
    bytesChart.setData([times, bin, bout]);
    dropChart.setData([times, drops]);
    document.body.dataset.samples = String(times.length);
  };
  let lastDropped = null;
  let lastNodes = new Map();
  const text = (id, v) => { document.getElementById(id).textContent = v; };
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
  // The top-events table: sorted by rate unless a header was clicked (again: the other way).
  let eventSort = { key: 'perSec', asc: false };
  let lastTopEvents = [];
  function renderEvents() {
    const { key, asc } = eventSort;
    const rows = [...lastTopEvents].sort((a, b) => {
      const c = key === 'event' ? a.event.localeCompare(b.event) : a[key] - b[key];
      return (asc ? c : -c) || a.event.localeCompare(b.event);
    });
    document.getElementById('events').innerHTML = rows.length
      ? rows.map((e) => '<tr data-event="' + esc(e.event) + '"><td class="ev">' + esc(e.event) + '</td><td class="num rate">' +
          fmt(e.perSec) + '</td><td class="num">' + fmt(e.total) + '</td></tr>').join('')
      : '<tr><td colspan="3" class="empty">no events</td></tr>';
    for (const th of document.querySelectorAll('#events-table th')) {
      th.classList.toggle('sorted', th.dataset.key === key);
      th.classList.toggle('asc', th.dataset.key === key && asc);
    }
  }
  for (const th of document.querySelectorAll('#events-table th')) {
    th.addEventListener('click', () => {
      const key = th.dataset.key;
      eventSort = eventSort.key === key ? { key, asc: !eventSort.asc } : { key, asc: key === 'event' };
      renderEvents();
    });
  }
  function renderGroups(groups) {
    if (!groups) return;
    const rows = groups.groups.map((g) => '<tr data-group="' + esc(g.group) + '" data-uri="' + esc(g.uri) + '"><td>' + esc(g.group) +
      '</td><td class="ev">' + esc(g.uri) + '</td><td class="num size">' + g.size + '</td><td class="subs members">' +
      esc(g.members.join(', ')) + (g.size > g.members.length ? ', … ' + (g.size - g.members.length) + ' more' : '') + '</td></tr>');
    document.getElementById('groups').innerHTML = rows.length ? rows.join('') : '<tr><td colspan="4" class="empty">no queue groups</td></tr>';
    text('groups-note', groups.total > groups.groups.length ? 'the ' + groups.groups.length + ' largest of ' + groups.total : groups.total === 1 ? '1 group' : groups.total ? groups.total + ' groups' : '');
  }
  let live = 0;
  function render({ stats, nodes, groups }) {
    lastTopEvents = stats.topEvents || [];
    renderEvents();
    // The rates are the server's: the first sample after a load already has them.
    document.body.dataset.live = String(++live);
    if (live === 1) document.body.dataset.eventsOnLoad = String(lastTopEvents.filter((e) => e.perSec > 0).length);
    renderGroups(groups);
    text('host', stats.host);
    text('connections', stats.connections);
    text('subscriptions', stats.subscriptions);
    text('pubrate', fmt(stats.rates.publishesPerSec));
    text('delrate', fmt(stats.rates.deliveriesPerSec));
    text('dropped', fmt(stats.dropped));
    text('rss', (stats.memory.rssBytes / 1048576).toFixed(0) + ' MB');
    // The link to the other hosts and the live directory of them (absent without federation).
    const fed = stats.federation;
    const hosts = fed ? fed.hosts : [];
    text('federation', !fed ? 'off' : fed.connected ? hosts.length + (hosts.length === 1 ? ' host' : ' hosts') : 'link down');
    text('fed-hosts', hosts.length > 12 ? hosts.slice(0, 12).join(', ') + ', …' : hosts.join(', '));
    document.body.dataset.federation = !fed ? 'off' : fed.connected ? 'up' : 'down';
    document.body.dataset.hosts = hosts.join(',');
    times.push(Date.parse(stats.at) / 1000); pubs.push(stats.rates.publishesPerSec); dels.push(stats.rates.deliveriesPerSec);
    bin.push(stats.rates.bytesInPerSec); bout.push(stats.rates.bytesOutPerSec);
    drops.push(lastDropped === null ? 0 : Math.max(0, stats.dropped - lastDropped)); lastDropped = stats.dropped;
    redraw();
    const at = Date.parse(stats.at);
    const rate = (n, key) => {
      const before = lastNodes.get(n.name);
      const secs = before ? (at - before.at) / 1000 : 0;
      return secs > 0 ? Math.max(0, n[key] - before[key]) / secs : 0;
    };
    const rows = nodes.map((n) => '<tr data-node="' + esc(n.name) + '"><td>' + esc(n.name) + '</td><td>' + esc(n.host) + '</td><td>' + esc(n.address) +
      '</td><td>' + esc(new Date(n.connectedAt).toLocaleTimeString()) + '</td><td class="num in-rate">' + fmt(rate(n, 'msgsIn')) + '</td><td class="num">' + fmt(rate(n, 'msgsOut')) +
      '</td><td class="num">' + fmt(n.msgsIn) + '</td><td class="num">' + fmt(n.msgsOut) +
      '</td><td class="num">' + (n.heartbeatRttMs === null ? '–' : n.heartbeatRttMs + ' ms') + '</td><td class="subs">' + esc(n.subscriptions.join(', ')) + '</td></tr>');
    lastNodes = new Map(nodes.map((n) => [n.name, { at, msgsIn: n.msgsIn, msgsOut: n.msgsOut }]));
    document.getElementById('nodes').innerHTML = rows.length ? rows.join('') : '<tr><td colspan="10" class="empty">no nodes</td></tr>';
  }
  /** The server's last 15 minutes, drawn before the live samples (once, on the first connection). */
  async function loadHistory(headers) {
    if (times.length > 0) return;
    const res = await fetch('/history', { cache: 'no-store', headers });
    if (!res.ok) return;
    const h = await res.json();
    times.push(...h.t); pubs.push(...h.publishesPerSec); dels.push(...h.deliveriesPerSec);
    bin.push(...h.bytesInPerSec); bout.push(...h.bytesOutPerSec); drops.push(...h.droppedPerSec);
    document.body.dataset.history = String(h.t.length);
    redraw();
  }
  const state = (live, label) => { document.getElementById('state').className = live ? 'state live' : 'state'; text('state', label); };
  const TOKEN_KEY = 'nodeset-monitor-token';
  const fromFragment = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (fromFragment) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(fromFragment[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
  const login = document.getElementById('login');
  login.addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById('token').value.trim());
    login.hidden = true;
    follow();
  });
  function onMessage(block) {
    let name = 'message', data = '';
    for (const line of block.split('\\n')) {
      if (line.startsWith('event:')) name = line.slice(6).trim();
      else if (line.startsWith('data:')) data += (data ? '\\n' : '') + line.slice(5).replace(/^ /, '');
    }
    if (name === 'message' && data) { state(true, 'live'); render(JSON.parse(data)); }
  }
  async function follow() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    try {
      const res = await fetch('/events', { cache: 'no-store', headers: token ? { authorization: 'Bearer ' + token } : {} });
      if (res.status === 401) {
        state(false, token ? 'wrong token' : 'token required');
        login.hidden = false;
        document.getElementById('token').focus();
        return;
      }
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      await loadHistory(token ? { authorization: 'Bearer ' + token } : {}).catch(() => {});
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        for (let i = buffer.indexOf('\\n\\n'); i !== -1; i = buffer.indexOf('\\n\\n')) {
          onMessage(buffer.slice(0, i));
          buffer = buffer.slice(i + 2);
        }
      }
    } catch {
      // reconnect below
    }
    state(false, 'reconnecting…');
    setTimeout(follow, 2000);
  }
  follow();
</script>
</body>
</html>
`;
