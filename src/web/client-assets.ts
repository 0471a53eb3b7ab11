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
