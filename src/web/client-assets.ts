/**
 * The browser client served at `/nodeset.js` (an ES module) and the demo page
 * served at `/`.
 */
export const BROWSER_CLIENT_JS = `// nodeset browser client: subscribe, publish and request over the bridge's /ws.
//   import { connect } from '/nodeset.js';
//   const ns = connect();                       // or connect('ws://host:8080/ws', { token })
//   await ns.subscribe('orders.>', (message, event) => console.log(event, message));
//   const { delivered } = await ns.publish('orders.new', { id: 1 });
//   const reply = await ns.request('math.add', { a: 1, b: 2 }, { timeout: 2000 });
// It reconnects by itself (with back-off) and subscribes again.
export function connect(url, options = {}) {
  const base = url ?? (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  const target = options.token ? base + (base.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(options.token) : base;
  const handlers = new Map();
  const pending = new Map();
  let ws = null, nextId = 1, delay = 100, closed = false, queue = [];
  const client = { status: 'connecting', onstatus: null };
  const setStatus = (s) => { client.status = s; if (client.onstatus) client.onstatus(s); };
  const send = (op) => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    const text = JSON.stringify({ id, ...op });
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(text); else queue.push(text);
  });
  function open() {
    ws = new WebSocket(target);
    ws.onopen = () => {
      delay = 100;
      setStatus('open');
      for (const event of handlers.keys()) ws.send(JSON.stringify({ id: nextId++, op: 'subscribe', event }));
      for (const text of queue.splice(0)) ws.send(text);
    };
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.type === 'event') {
        for (const [pattern, fns] of handlers) if (matches(pattern, msg.event)) for (const fn of fns) fn(msg.message, msg);
        return;
      }
      const p = pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result); else p.reject(Object.assign(new Error(msg.error.message), { code: msg.error.code }));
    };
    ws.onclose = () => {
      for (const p of pending.values()) p.reject(Object.assign(new Error('connection lost'), { code: 'CONNECTION_LOST' }));
      pending.clear();
      if (closed) return;
      setStatus('reconnecting');
      setTimeout(open, delay * (0.5 + Math.random() / 2));
      delay = Math.min(delay * 2, 10000);
    };
  }
  function matches(pattern, event) {
    const p = pattern.split('.'), e = event.split('.');
    for (let i = 0; i < p.length; i++) {
      if (p[i] === '>') return e.length > i;
      if (i >= e.length || (p[i] !== '*' && p[i] !== e[i])) return false;
    }
    return p.length === e.length;
  }
  client.subscribe = async (event, handler) => {
    const fresh = !handlers.has(event);
    if (fresh) handlers.set(event, new Set());
    handlers.get(event).add(handler);
    if (fresh) await send({ op: 'subscribe', event });
  };
  client.unsubscribe = async (event) => { handlers.delete(event); await send({ op: 'unsubscribe', event }); };
  client.publish = (event, message, opts = {}) => send({ op: 'publish', event, message, mode: opts.mode });
  client.request = async (event, message, opts = {}) => (await send({ op: 'request', event, message, timeout: opts.timeout })).reply;
  client.close = () => { closed = true; if (ws) ws.close(); setStatus('closed'); };
  open();
  return client;
}
`;

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
  textarea { width: 100%; min-height: 80px; box-sizing: border-box; }
  button { background: #2563eb; color: #fff; border-color: #2563eb; cursor: pointer; }
  form { display: grid; gap: 8px; }
  ul { list-style: none; padding: 0; margin: 10px 0 0; max-height: 60vh; overflow: auto; }
  li { padding: 6px 8px; border-bottom: 1px solid #eef0f3; font-family: ui-monospace, monospace; font-size: 13px; }
  li .ev { color: #2563eb; }
  #result { color: #667085; min-height: 1.4em; }
</style>
</head>
<body>
<header><h1>nodeset web</h1><span id="status">connecting…</span></header>
<main>
  <section>
    <h2>Live events</h2>
    <form id="sub"><div><input id="sub-event" placeholder="event, e.g. orders.>" required> <button>Subscribe</button></div></form>
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
  </section>
</main>
<script type="module">
  import { connect } from '/nodeset.js';
  const ns = connect(undefined, { token: new URLSearchParams(location.search).get('token') || undefined });
  const status = document.getElementById('status');
  ns.onstatus = (s) => { status.textContent = s; document.body.dataset.status = s; };
  const list = document.getElementById('events');
  document.getElementById('sub').onsubmit = async (e) => {
    e.preventDefault();
    const event = document.getElementById('sub-event').value.trim();
    try {
      await ns.subscribe(event, (message, info) => {
        const li = document.createElement('li');
        li.innerHTML = '<span class="ev"></span> <span class="msg"></span>';
        li.querySelector('.ev').textContent = info.event;
        li.querySelector('.msg').textContent = JSON.stringify(message);
        list.prepend(li);
      });
      document.body.dataset.subscribed = event;
    } catch (err) { alert(err.code + ': ' + err.message); }
  };
  document.getElementById('pub').onsubmit = async (e) => {
    e.preventDefault();
    const text = document.getElementById('pub-message').value.trim();
    let message = text;
    try { message = text === '' ? null : JSON.parse(text); } catch {}
    const result = document.getElementById('result');
    try {
      const r = await ns.publish(document.getElementById('pub-event').value.trim(), message, { mode: document.getElementById('pub-mode').value });
      result.textContent = 'delivered to ' + r.delivered + ' subscriber(s)';
    } catch (err) { result.textContent = err.code + ': ' + err.message; }
  };
</script>
</body>
</html>
`;
