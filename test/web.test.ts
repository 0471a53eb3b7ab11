import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { type Dispatcher, KeyRing, type Node, signRequest, WebBridge } from '../src/index.js';
import { AuthConfig } from '../src/security/auth-config.js';
import { hashToken } from '../src/security/keys.js';
import { DEMO_MAX_SHOWN_EVENTS } from '../src/web/demo-page.js';
import { BROWSER_SKIP, CliProcess, launchChromium, ROOT, startDispatcher, startNode, until } from './helpers.js';

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

/** Reads a streaming response line by line until `count` data lines arrived. */
async function readLines(res: Response, count: number, pick: (line: string) => boolean): Promise<string[]> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const lines: string[] = [];
  while (lines.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    const parts = text.split('\n');
    text = parts.pop() ?? '';
    for (const p of parts) if (pick(p)) lines.push(p);
  }
  await reader.cancel().catch(() => {});
  return lines;
}

describe('nodeset-web', () => {
  let dispatcher: Dispatcher;
  let bridge: WebBridge;
  let responder: Node;

  before(async () => {
    dispatcher = await startDispatcher();
    bridge = await new WebBridge({
      port: 0,
      dispatcherUrl: dispatcher.url,
      maxBodyBytes: 64 * 1024,
      keepAliveMs: 50,
    }).start();
    responder = await startNode(dispatcher, { name: 'web-responder', statsIntervalMs: 0 });
    await responder.respond('math.double', (n: number) => n * 2);
    await responder.respond('math.slow', () => new Promise(() => {}));
  });
  after(async () => {
    await responder.stop();
    await bridge.stop();
    await dispatcher.stop();
  });

  test('POST /publish with JSON and with form fields; errors carry the protocol codes', async () => {
    const got: unknown[] = [];
    const sub = await startNode(dispatcher, { statsIntervalMs: 0 });
    await sub.subscribe('web.pub', (m) => void got.push(m));
    const json = await post(`${bridge.url}/publish`, { event: 'web.pub', message: { a: 1 } });
    assert.equal(json.status, 200);
    assert.deepEqual(await json.json(), { event: 'web.pub', delivered: 1 });
    const form = await fetch(`${bridge.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'event=web.pub&message=plain+text',
    });
    assert.deepEqual(await form.json(), { event: 'web.pub', delivered: 1 });
    await until(() => got.length === 2);
    assert.deepEqual(got, [{ a: 1 }, 'plain text']);
    await sub.stop();

    const bad = await fetch(`${bridge.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{nope',
    });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { code: string }).code, 'BAD_FRAME');
    const badUri = await post(`${bridge.url}/publish`, { event: 'a..b', message: 1 });
    assert.equal(badUri.status, 400);
    assert.equal(((await badUri.json()) as { code: string }).code, 'BAD_URI');
    const big = await post(`${bridge.url}/publish`, { event: 'web.pub', message: 'x'.repeat(100 * 1024) });
    assert.equal(big.status, 413);
    assert.equal(((await big.json()) as { code: string }).code, 'TOO_LARGE');
    assert.equal((await fetch(`${bridge.url}/nowhere`)).status, 404);
  });

  test('POST /request returns the reply, NO_RESPONDERS or a timeout', async () => {
    const ok = await post(`${bridge.url}/request`, { event: 'math.double', message: 21 });
    assert.deepEqual(await ok.json(), { event: 'math.double', reply: 42 });
    const none = await post(`${bridge.url}/request`, { event: 'math.nobody', message: 1 });
    assert.equal(none.status, 404);
    assert.equal(((await none.json()) as { code: string }).code, 'NO_RESPONDERS');
    const slow = await post(`${bridge.url}/request`, { event: 'math.slow', message: 1, timeout: 100 });
    assert.equal(slow.status, 504);
    assert.equal(((await slow.json()) as { code: string }).code, 'TIMEOUT');
  });

  test('GET /subscribe streams Server-Sent Events with ids and keep-alives, or NDJSON', async () => {
    const sse = await fetch(`${bridge.url}/subscribe?event=stream.a&event=stream.b`, {
      headers: { accept: 'text/event-stream' },
    });
    assert.equal(sse.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const nd = await fetch(`${bridge.url}/subscribe?event=stream.a`);
    assert.match(nd.headers.get('content-type') ?? '', /ndjson/);
    const pub = await startNode(dispatcher, { statsIntervalMs: 0 });
    const sseLines = readLines(
      sse,
      4,
      (l) => l.startsWith('id:') || l.startsWith('data:') || l.startsWith(': keep-alive'),
    );
    const ndLines = readLines(nd, 1, (l) => l.startsWith('{'));
    await pub.publish('stream.a', { n: 1 }, { ack: true });
    await pub.publish('stream.b', { n: 2 }, { ack: true });
    const lines = await sseLines;
    assert.ok(lines.includes('id: 1') && lines.some((l) => l.includes('"stream.a"')));
    const keep = await readLines(
      await fetch(`${bridge.url}/subscribe?event=stream.c`, { headers: { accept: 'text/event-stream' } }),
      1,
      (l) => l === ': keep-alive',
    );
    assert.deepEqual(keep, [': keep-alive']);
    assert.deepEqual(JSON.parse((await ndLines)[0]!), { event: 'stream.a', message: { n: 1 }, from: pub.name });
    await pub.stop();
  });

  test('an HTTP/1.0 client gets one event and the response ends', async () => {
    const socket = netConnect({ host: '127.0.0.1', port: Number(new URL(bridge.url).port) });
    await once(socket, 'connect');
    let text = '';
    socket.on('data', (c) => (text += c));
    socket.write('GET /subscribe?event=old.client HTTP/1.0\r\n\r\n');
    await until(() => text.includes('\r\n\r\n'));
    const pub = await startNode(dispatcher, { statsIntervalMs: 0 });
    await pub.publish('old.client', 1, { ack: true });
    await pub.publish('old.client', 2, { ack: true });
    await once(socket, 'close');
    const body = text.split('\r\n\r\n')[1]!.trim().split('\n');
    assert.equal(body.length, 1);
    assert.equal(JSON.parse(body[0]!).message, 1);
    await pub.stop();
  });

  test('1,000 subscribe/disconnect cycles leave the subscription count where it started', async (t) => {
    const start = dispatcher.subscriptionCount;
    const began = Date.now();
    for (let i = 0; i < 1000; i++) {
      const ac = new AbortController();
      const res = await fetch(`${bridge.url}/subscribe?event=cycle.${i % 7}`, {
        signal: ac.signal,
        headers: { accept: 'text/event-stream' },
      });
      assert.equal(res.status, 200);
      ac.abort();
    }
    await until(
      () => dispatcher.subscriptionCount === start && bridge.streamCount === 0,
      10_000,
      'subscriptions released',
    );
    t.diagnostic(
      `1,000 cycles in ${Date.now() - began} ms; dispatcher subscriptions ${start} → ${dispatcher.subscriptionCount}`,
    );
  });

  test('/ws: subscribe, publish, request, unsubscribe', async () => {
    const ws = new WebSocket(`${bridge.url.replace('http', 'ws')}/ws`);
    await once(ws, 'open');
    const inbox: { id?: number; type?: string; ok?: boolean; result?: unknown; event?: string; message?: unknown }[] =
      [];
    ws.on('message', (d) => inbox.push(JSON.parse(d.toString())));
    const call = async (id: number, op: object) => {
      ws.send(JSON.stringify({ id, ...op }));
      await until(() => inbox.some((m) => m.id === id));
      return inbox.find((m) => m.id === id)!;
    };
    assert.deepEqual((await call(1, { op: 'subscribe', event: 'ws.>' })).result, { subscribed: 'ws.>' });
    assert.deepEqual((await call(2, { op: 'publish', event: 'ws.hello', message: { hi: 1 } })).result, {
      delivered: 1,
    });
    await until(() => inbox.some((m) => m.type === 'event'));
    assert.deepEqual(inbox.find((m) => m.type === 'event')?.message, { hi: 1 });
    assert.deepEqual((await call(3, { op: 'request', event: 'math.double', message: 4 })).result, { reply: 8 });
    const bad = await call(4, { op: 'publish', event: 'a..b' });
    assert.equal(bad.ok, false);
    assert.deepEqual((await call(5, { op: 'unsubscribe', event: 'ws.>' })).result, { unsubscribed: 'ws.>' });
    ws.close();
  });

  test('headers: HTTP publish with headers reaches a WebSocket subscriber with them; WS and request headers reach nodes', async () => {
    const ws = new WebSocket(`${bridge.url.replace('http', 'ws')}/ws`);
    await once(ws, 'open');
    const inbox: { id?: number; type?: string; ok?: boolean; result?: unknown; error?: { code: string } }[] = [];
    ws.on('message', (d) => inbox.push(JSON.parse(d.toString())));
    const call = async (id: number, op: object) => {
      ws.send(JSON.stringify({ id, ...op }));
      await until(() => inbox.some((m) => m.id === id));
      return inbox.find((m) => m.id === id)!;
    };
    await call(1, { op: 'subscribe', event: 'hdr.>' });
    const nd = await fetch(`${bridge.url}/subscribe?event=hdr.web`);
    const ndLine = readLines(nd, 1, (l) => l.startsWith('{'));
    const res = await post(`${bridge.url}/publish`, {
      event: 'hdr.web',
      message: 1,
      headers: { 'x-request-id': 'h1' },
    });
    assert.deepEqual(await res.json(), { event: 'hdr.web', delivered: 2 });
    await until(() => inbox.some((m) => m.type === 'event'));
    const wsEvent = inbox.find((m) => m.type === 'event') as { from: string };
    assert.match(wsEvent.from, /^web-/);
    assert.deepEqual(wsEvent, {
      type: 'event',
      event: 'hdr.web',
      message: 1,
      from: wsEvent.from,
      headers: { 'x-request-id': 'h1' },
    });
    assert.deepEqual(JSON.parse((await ndLine)[0]!), {
      event: 'hdr.web',
      message: 1,
      from: wsEvent.from,
      headers: { 'x-request-id': 'h1' },
    });
    // WS publish and request with headers reach nodes.
    const node = await startNode(dispatcher, { name: 'hdr-node', statsIntervalMs: 0 });
    const got: unknown[] = [];
    await node.subscribe('hdr.node', (_m, info) => void got.push(info.headers));
    await node.respond('hdr.ask', (_m, info) => info.headers);
    // The node and this WebSocket's own `hdr.>` subscription.
    assert.deepEqual((await call(2, { op: 'publish', event: 'hdr.node', message: 2, headers: { a: 'b' } })).result, {
      delivered: 2,
    });
    assert.deepEqual((await call(3, { op: 'request', event: 'hdr.ask', headers: { t: 'ws' } })).result, {
      reply: { t: 'ws' },
    });
    const asked = await post(`${bridge.url}/request`, { event: 'hdr.ask', headers: { t: 'http' } });
    assert.deepEqual(await asked.json(), { event: 'hdr.ask', reply: { t: 'http' } });
    await until(() => got.length === 1);
    assert.deepEqual(got, [{ a: 'b' }]);
    // Bad headers: a code, over HTTP and WS alike.
    const badType = await post(`${bridge.url}/publish`, { event: 'hdr.node', headers: { n: 1 } });
    assert.equal(badType.status, 400);
    assert.equal(((await badType.json()) as { code: string }).code, 'BAD_OPTION');
    const notMap = await post(`${bridge.url}/publish`, { event: 'hdr.node', headers: 'text' });
    assert.equal(((await notMap.json()) as { code: string }).code, 'BAD_OPTION');
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 'v']));
    const tooMany = await post(`${bridge.url}/publish`, { event: 'hdr.node', headers: many });
    assert.equal(tooMany.status, 413);
    assert.equal(((await tooMany.json()) as { code: string }).code, 'TOO_LARGE');
    const wsBad = await call(4, { op: 'publish', event: 'hdr.node', headers: { 'bad name': 'v' } });
    assert.equal(wsBad.error?.code, 'BAD_OPTION');
    assert.equal(got.length, 1, 'nothing refused was delivered');
    ws.close();
    await node.stop();
  });
});

describe('nodeset-web identities, signatures, files', () => {
  test('HTTP clients get exactly the permissions of their token', async () => {
    const d = await startDispatcher({
      auth: new AuthConfig({
        identities: [
          { name: 'limited', token: hashToken('limited-token'), publish: { allow: ['public.>'], deny: [] } },
        ],
      }),
    });
    const b = await new WebBridge({ port: 0, dispatcherUrl: d.url }).start();
    try {
      const auth = { authorization: 'Bearer limited-token' };
      assert.equal((await post(`${b.url}/publish`, { event: 'public.news', message: 1 }, auth)).status, 200);
      const denied = await post(`${b.url}/publish`, { event: 'private.news', message: 1 }, auth);
      assert.equal(denied.status, 403);
      assert.equal(((await denied.json()) as { code: string }).code, 'PERMISSION_DENIED');
      const anonymous = await post(`${b.url}/publish`, { event: 'public.news', message: 1 });
      assert.equal(anonymous.status, 401);
      assert.equal(((await anonymous.json()) as { code: string }).code, 'AUTH_FAILED');
    } finally {
      await b.stop();
      await d.stop();
    }
  });

  test('signatures: required, checked, time-boxed, never replayed; publish and subscribe', async () => {
    const d = await startDispatcher();
    const keys = new KeyRing([{ id: 'k1', secret: 'a-very-long-shared-secret' }]);
    const b = await new WebBridge({ port: 0, dispatcherUrl: d.url, keys }).start();
    try {
      const body = { event: 'signed.event', message: { x: 1 } };
      const signed = { method: 'POST', target: '/publish', body: JSON.stringify(body) };
      assert.equal((await post(`${b.url}/publish`, body)).status, 403);
      const headers = signRequest('k1', 'a-very-long-shared-secret', signed);
      assert.equal((await post(`${b.url}/publish`, body, headers)).status, 200);
      const replay = await post(`${b.url}/publish`, body, headers);
      assert.equal(replay.status, 403);
      assert.match(((await replay.json()) as { message: string }).message, /replayed/);
      const stale = signRequest('k1', 'a-very-long-shared-secret', signed, Date.now() - 10 * 60 * 1000);
      assert.equal((await post(`${b.url}/publish`, body, stale)).status, 403);
      const wrong = signRequest('k1', 'another-secret-entirely', signed);
      assert.equal((await post(`${b.url}/publish`, body, wrong)).status, 403);
      const other = signRequest('k1', 'a-very-long-shared-secret', { ...signed, body: '{"event":"signed.event"}' });
      assert.equal((await post(`${b.url}/publish`, body, other)).status, 403);
      assert.equal((await fetch(`${b.url}/subscribe?event=signed.event`)).status, 403);
      const subHeaders = signRequest('k1', 'a-very-long-shared-secret', {
        method: 'GET',
        target: '/subscribe?event=signed.event',
      });
      const sub = await fetch(`${b.url}/subscribe?event=signed.event`, { headers: subHeaders });
      assert.equal(sub.status, 200);
      await sub.body?.cancel();
    } finally {
      await b.stop();
      await d.stop();
    }
  });

  test('--path serves static files and route modules; a non-loopback listen without keys is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nodeset-web-'));
    writeFileSync(join(dir, 'hello.txt'), 'static hello');
    writeFileSync(
      join(dir, 'count.route.mjs'),
      "export default async function (req, res, { node }) {\n  const n = await node.publish('route.hit', 1, { ack: true });\n  res.writeHead(200, { 'content-type': 'application/json' });\n  res.end(JSON.stringify({ route: 'count', delivered: n }));\n}\n",
    );
    const d = await startDispatcher();
    const b = await new WebBridge({ port: 0, dispatcherUrl: d.url, path: dir }).start();
    try {
      assert.equal(await (await fetch(`${b.url}/hello.txt`)).text(), 'static hello');
      assert.deepEqual(await (await fetch(`${b.url}/count`)).json(), { route: 'count', delivered: 0 });
      assert.equal((await fetch(`${b.url}/count.route.mjs`)).status, 404);
      assert.equal((await fetch(`${b.url}/..%2f..%2fetc%2fpasswd`)).status, 404);
    } finally {
      await b.stop();
      await d.stop();
    }
    await assert.rejects(new WebBridge({ host: '0.0.0.0', port: 0 }).start(), /without request signatures/);
    const cli = new CliProcess('nodeset-web', ['--listen', '0.0.0.0:0']);
    assert.equal(await cli.exit(), 2);
  });

  test('2,000 concurrent SSE subscribers all receive one published event', async (t) => {
    const d = await startDispatcher();
    const b = await new WebBridge({ port: 0, dispatcherUrl: d.url }).start();
    const port = Number(new URL(b.url).port);
    const sockets: import('node:net').Socket[] = [];
    try {
      let subscribed = 0;
      let received = 0;
      const N = 2000;
      for (let i = 0; i < N; i++) {
        const s = netConnect({ host: '127.0.0.1', port });
        sockets.push(s);
        let text = '';
        let counted = false;
        s.on('data', (c) => {
          text += c;
          if (text.includes(': subscribed') && !counted) {
            counted = true;
            subscribed++;
          }
          if (text.includes('load.event')) {
            received++;
            text = '';
          }
        });
        s.on('error', () => {});
        s.write('GET /subscribe?event=load.event HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n');
      }
      await until(() => subscribed === N, 30_000, 'all subscribed');
      assert.equal(d.subscriptionCount, 1, 'one dispatcher subscription for all of them');
      const pub = await startNode(d, { statsIntervalMs: 0 });
      const t0 = Date.now();
      await pub.publish('load.event', { hello: 'everyone' }, { ack: true });
      await until(() => received === N, 30_000, 'all received');
      const ms = Date.now() - t0;
      const rss = process.memoryUsage().rss / 1048576;
      t.diagnostic(`fan-out to ${N} SSE subscribers in ${ms} ms; process RSS ${rss.toFixed(0)} MB`);
      await pub.stop();
    } finally {
      for (const s of sockets) s.destroy();
      await b.stop();
      await d.stop();
    }
  });
});

describe('demo page in a real browser', { skip: BROWSER_SKIP }, () => {
  test('subscribes from the page; events show time and origin, capped; pause, clear, request, unsubscribe', async () => {
    const d = await startDispatcher();
    const b = await new WebBridge({ port: 0, dispatcherUrl: d.url }).start();
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 600 } });
      await page.goto(b.url);
      await page.waitForFunction("document.body.dataset.status === 'open'");
      await page.fill('#sub-event', 'demo.>');
      await page.click('#sub button');
      await page.waitForFunction("document.body.dataset.subscribed === 'demo.>'");
      const publisher = new CliProcess('nodeset-node', [
        'publisher',
        '--dispatcher-url',
        d.url,
        '--event',
        'demo.greeting',
        '--payload',
        '{"text":"hello from a node"}',
      ]);
      assert.equal(await publisher.exit(), 0);
      await page.locator('#events li', { hasText: 'hello from a node' }).waitFor({ timeout: 10_000 });
      await page.fill('#pub-event', 'demo.reply');
      await page.fill('#pub-message', '{"from":"the page"}');
      await page.click('#pub button');
      await page.locator('#result', { hasText: 'delivered to 1' }).waitFor();
      // Each event shows its time and the node that published it.
      const first = page.locator('#events li', { hasText: 'hello from a node' });
      assert.match(await first.locator('.time').innerText(), /^\d\d:\d\d:\d\d/);
      assert.match(await first.locator('.from').innerText(), /from \S+/);
      // The list keeps the newest DEMO_MAX_SHOWN_EVENTS.
      const node = await startNode(d, { name: 'flood' });
      try {
        for (let i = 0; i < DEMO_MAX_SHOWN_EVENTS + 50; i++) node.publish('demo.flood', i);
        await node.publish('demo.flood', 'last', { ack: true });
        await page.locator('#events li', { hasText: '"last"' }).waitFor();
        assert.equal(await page.locator('#events li').count(), DEMO_MAX_SHOWN_EVENTS);
        // Paused, events are counted but not shown; Clear empties the list.
        await page.click('#pause');
        await node.publish('demo.flood', 'while paused', { ack: true });
        await page.locator('#counts', { hasText: '1 not shown' }).waitFor();
        assert.equal(await page.locator('#events li', { hasText: 'while paused' }).count(), 0);
        await page.click('#pause');
        await page.click('#clear');
        assert.equal(await page.locator('#events li').count(), 0);
        // The request form shows the reply.
        await node.respond('demo.add', (m: { a: number; b: number }) => m.a + m.b);
        await page.fill('#req-event', 'demo.add');
        await page.fill('#req-message', '{"a":2,"b":3}');
        await page.click('#req button');
        await page.locator('#reply', { hasText: ': 5' }).waitFor();
        // Unsubscribing stops the events.
        await page.click('#subscriptions button');
        await page.waitForFunction("document.body.dataset.subscriptions === ''");
        await until(() => d.subscribers('demo.flood').length === 0, 5000, 'the unsubscription');
      } finally {
        await node.stop();
      }
      mkdirSync(`${ROOT}artifacts`, { recursive: true });
      await page.screenshot({ path: `${ROOT}artifacts/web-demo.png` });
    } finally {
      await browser.close();
      await b.stop();
      await d.stop();
    }
  });
});
