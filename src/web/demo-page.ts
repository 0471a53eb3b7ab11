/**
 * The bridge's demo page at `/`: subscribe and unsubscribe, live events with
 * their time and publishing node (the newest MAX_SHOWN kept; pause and clear),
 * publish, and send requests. It uses the browser client at /nodeset.js.
 */
export const DEMO_MAX_SHOWN_EVENTS = 200;

export const DEMO_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>nodeset web</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d2433; background: #f8fafc; }
  header { padding: 14px 24px; background: #fff; border-bottom: 1px solid #e4e7ec; display: flex; gap: 12px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  #status { color: #667085; }
  main { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; padding: 16px 24px; }
  section { background: #fff; border: 1px solid #e4e7ec; border-radius: 8px; padding: 14px; }
  h2 { font-size: 15px; margin: 0 0 10px; }
  input, textarea, button, select { font: inherit; padding: 6px 8px; border: 1px solid #cfd4dc; border-radius: 6px; }
  textarea { width: 100%; min-height: 60px; box-sizing: border-box; }
  button { background: #2563eb; color: #fff; border-color: #2563eb; cursor: pointer; }
  button.plain { background: #fff; color: #1d2433; border-color: #cfd4dc; }
  form { display: grid; gap: 8px; }
  .bar { display: flex; gap: 8px; align-items: center; margin-top: 10px; color: #667085; font-size: 13px; }
  #subscriptions { display: flex; flex-wrap: wrap; gap: 6px; margin: 8px 0 0; padding: 0; list-style: none; }
  #subscriptions li { background: #eef2ff; border-radius: 12px; padding: 2px 4px 2px 10px; font-family: ui-monospace, monospace; font-size: 13px; }
  #subscriptions button { padding: 0 6px; margin-left: 4px; background: none; color: #667085; border: none; }
  #events { list-style: none; padding: 0; margin: 10px 0 0; max-height: 60vh; overflow: auto; }
  #events li { padding: 6px 8px; border-bottom: 1px solid #eef0f3; font-family: ui-monospace, monospace; font-size: 13px; }
  .time, .from { color: #667085; }
  .ev { color: #2563eb; }
  #result, #reply { color: #667085; min-height: 1.4em; font-family: ui-monospace, monospace; font-size: 13px; white-space: pre-wrap; }
</style>
</head>
<body>
<header><h1>nodeset web</h1><span id="status">connecting…</span></header>
<main>
  <section>
    <h2>Live events</h2>
    <form id="sub"><div><input id="sub-event" placeholder="event, e.g. orders.>" required> <button>Subscribe</button></div></form>
    <ul id="subscriptions"></ul>
    <div class="bar">
      <button type="button" class="plain" id="pause">Pause</button>
      <button type="button" class="plain" id="clear">Clear</button>
      <span id="counts">0 events</span>
    </div>
    <ul id="events"></ul>
  </section>
  <section>
    <h2>Publish</h2>
    <form id="pub">
      <input id="pub-event" placeholder="event, e.g. orders.new" required>
      <textarea id="pub-message" placeholder='message (JSON), e.g. {"id": 1}'></textarea>
      <div><select id="pub-mode"><option>all</option><option>direct</option></select> <button>Publish</button></div>
      <div id="result"></div>
    </form>
    <h2 style="margin-top: 18px">Request</h2>
    <form id="req">
      <input id="req-event" placeholder="event, e.g. math.add" required>
      <textarea id="req-message" placeholder='request (JSON), e.g. {"a": 1, "b": 2}'></textarea>
      <div><input id="req-timeout" type="number" min="1" value="5000" style="width: 7em"> ms <button>Send request</button></div>
      <div id="reply"></div>
    </form>
  </section>
</main>
<script type="module">
  import { connect } from '/nodeset.js';
  const MAX_SHOWN = ${DEMO_MAX_SHOWN_EVENTS};
  const ns = connect(undefined, { token: new URLSearchParams(location.search).get('token') || undefined });
  const $ = (id) => document.getElementById(id);
  ns.onstatus = (s) => { $('status').textContent = s; document.body.dataset.status = s; };
  const list = $('events');
  let received = 0;
  let missed = 0;
  let paused = false;
  const counts = () => {
    $('counts').textContent = received + ' events' + (paused ? ', paused (' + missed + ' not shown)' : '');
  };
  const parse = (text) => { try { return text === '' ? null : JSON.parse(text); } catch { return text; } };
  const show = (message, info) => {
    received++;
    if (paused) { missed++; counts(); return; }
    const li = document.createElement('li');
    for (const [cls, text] of [
      ['time', new Date().toLocaleTimeString(undefined, { hour12: false }) + ' '],
      ['ev', info.event],
      ['from', ' from ' + (info.from || '?') + ' '],
      ['msg', JSON.stringify(message)],
    ]) {
      const span = document.createElement('span');
      span.className = cls;
      span.textContent = text;
      li.append(span);
    }
    list.prepend(li);
    while (list.children.length > MAX_SHOWN) list.lastElementChild.remove();
    counts();
  };
  const subscribed = new Set();
  const drawSubscriptions = () => {
    const ul = $('subscriptions');
    ul.replaceChildren();
    for (const event of subscribed) {
      const li = document.createElement('li');
      li.textContent = event;
      const x = document.createElement('button');
      x.type = 'button';
      x.title = 'unsubscribe';
      x.textContent = '×';
      x.onclick = async () => {
        await ns.unsubscribe(event);
        subscribed.delete(event);
        drawSubscriptions();
      };
      li.append(x);
      ul.append(li);
    }
    document.body.dataset.subscriptions = [...subscribed].join(' ');
  };
  $('sub').onsubmit = async (e) => {
    e.preventDefault();
    const event = $('sub-event').value.trim();
    if (subscribed.has(event)) return;
    try {
      await ns.subscribe(event, show);
      subscribed.add(event);
      drawSubscriptions();
      document.body.dataset.subscribed = event;
    } catch (err) { alert(err.code + ': ' + err.message); }
  };
  $('pause').onclick = () => {
    paused = !paused;
    missed = 0;
    $('pause').textContent = paused ? 'Resume' : 'Pause';
    counts();
  };
  $('clear').onclick = () => { list.replaceChildren(); received = 0; missed = 0; counts(); };
  $('pub').onsubmit = async (e) => {
    e.preventDefault();
    const result = $('result');
    try {
      const r = await ns.publish($('pub-event').value.trim(), parse($('pub-message').value.trim()), { mode: $('pub-mode').value });
      result.textContent = 'delivered to ' + r.delivered + ' subscriber(s)';
    } catch (err) { result.textContent = err.code + ': ' + err.message; }
  };
  $('req').onsubmit = async (e) => {
    e.preventDefault();
    const out = $('reply');
    out.textContent = 'waiting…';
    const started = performance.now();
    try {
      const reply = await ns.request($('req-event').value.trim(), parse($('req-message').value.trim()), { timeout: Number($('req-timeout').value) || 5000 });
      out.textContent = 'reply in ' + Math.round(performance.now() - started) + ' ms: ' + JSON.stringify(reply);
    } catch (err) { out.textContent = err.code + ': ' + err.message; }
  };
</script>
</body>
</html>
`;
