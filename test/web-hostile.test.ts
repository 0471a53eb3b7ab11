// The web bridge under hostile clients: a bad WebSocket frame closes that
// client only, and one that never reads cannot grow the bridge without bound;
// static files never leak what is hidden or outside their folder; bad
// encodings are client errors; clients that send slowly or not at all are
// closed at the timeouts, and connections past the cap at once.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { type Dispatcher, type Node, WebBridge } from '../src/index.js';
import { type CliProcess, startCli, startDispatcher, startNode, until } from './helpers.js';
import { closeCode, maskedText, rawUpgrade } from './raw-web-client.js';

describe('web bridge: hostile WebSocket clients', () => {
  let dispatcher: Dispatcher;
  let web: CliProcess;
  let port: number;

  before(async () => {
    dispatcher = await startDispatcher();
    const started = await startCli(
      'nodeset-web',
      [
        '--listen',
        '127.0.0.1:0',
        '--dispatcher-url',
        dispatcher.url,
        '--headers-timeout',
        '1000',
        '--request-timeout',
        '2000',
      ],
      /nodeset web listening on/,
    );
    web = started.proc;
    port = Number(/:(\d+)/.exec(started.line.split('listening on ')[1]!)![1]);
  });
  after(async () => {
    await web.kill();
    await dispatcher.stop();
  });

  test('an unmasked frame and invalid UTF-8 close that client with a close code; the bridge serves the next one', async () => {
    const unmasked = await rawUpgrade(port);
    unmasked.write(Buffer.from([0x81, 0x05, ...Buffer.from('hello')]));
    assert.equal(await closeCode(unmasked), 1002);

    const badUtf8 = await rawUpgrade(port);
    badUtf8.write(maskedText(Buffer.from([0x7b, 0xff, 0xfe, 0x7d])));
    assert.equal(await closeCode(badUtf8), 1007);

    assert.equal(web.child.exitCode, null, `nodeset-web exited: ${web.stderr.join('\n')}`);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    await once(ws, 'open');
    const answer = once(ws, 'message');
    ws.send(JSON.stringify({ id: 1, op: 'publish', event: 'after.bad', message: 1 }));
    const [data] = (await answer) as [Buffer];
    assert.deepEqual(JSON.parse(data.toString()), { id: 1, ok: true, result: { delivered: 0 } });
    ws.close();
  });
  test('--headers-timeout: a client that never finishes its headers gets 408 TIMEOUT and is closed', async () => {
    const slow = slowClient(port, 'GET / HTTP/1.1\r\nHost: x\r\n', 100);
    const [answer] = await allClosed([slow], 'the slow client to be closed');
    assert.match(answer!, /^HTTP\/1.1 408 Request Timeout/);
    assert.match(answer!, /"code":"TIMEOUT"/);
  });
});

describe('web bridge: a WebSocket client that does not read', () => {
  let dispatcher: Dispatcher;
  let bridge: WebBridge;
  let pub: Node;

  before(async () => {
    dispatcher = await startDispatcher();
    bridge = await new WebBridge({ port: 0, dispatcherUrl: dispatcher.url }).start();
    pub = await startNode(dispatcher, { statsIntervalMs: 0 });
  });
  after(async () => {
    await pub.stop();
    await bridge.stop();
    await dispatcher.stop();
  });

  test('its events are dropped past the bound, counted, and it is told once when it reads again', async () => {
    const ws = new WebSocket(`${bridge.url.replace('http', 'ws')}/ws`);
    await once(ws, 'open');
    const inbox: {
      type?: string;
      event?: string;
      message?: unknown;
      ok?: boolean;
      error?: { code: string; message: string };
    }[] = [];
    ws.on('message', (d) => inbox.push(JSON.parse(d.toString())));
    ws.send(JSON.stringify({ id: 1, op: 'subscribe', event: 'flood' }));
    await until(() => inbox.some((m) => m.ok === true), 5000, 'the subscription');
    await until(() => dispatcher.subscribers('flood').length === 1, 5000, 'the bridge to subscribe');
    const socket = (ws as unknown as { _socket: Socket })._socket;
    socket.pause();
    const payload = 'x'.repeat(16 * 1024);
    // 2,000 events of 16 KiB: 32 MiB, four times the bound.
    for (let i = 0; i < 2000; i++) {
      pub.publish('flood', payload);
      if (i % 100 === 99) await pub.drain();
    }
    await until(() => bridge.stats.wsDropped > 0, 10_000, 'events to be dropped');
    socket.resume();
    // Published until one gets through: the bound is checked before each event.
    await until(
      () => {
        pub.publish('flood', 'last');
        return inbox.some((m) => m.message === 'last');
      },
      20_000,
      'an event after the client read again',
    );
    const notices = inbox.filter((m) => m.error?.code === 'SLOW_CONSUMER');
    const events = inbox.filter((m) => m.type === 'event').length;
    // One notice per episode of not reading (events still arriving from the dispatcher
    // after the client resumed can make a second one), never one per dropped event.
    const told = notices.map((n) => Number(/^(\d+) events dropped/.exec(n.error!.message)?.[1]));
    assert.ok(notices.length >= 1 && notices.length <= 5, `${notices.length} notices`);
    assert.equal(
      told.reduce((a, b) => a + b, 0),
      bridge.stats.wsDropped,
      'the notices name every dropped event',
    );
    assert.ok(bridge.stats.wsDropped > notices.length * 10, `${bridge.stats.wsDropped} dropped`);
    assert.equal(events + bridge.stats.wsDropped >= 2000, true, `${events} events received`);
    ws.close();
  });
});

describe('web bridge: static files under --path', () => {
  let dispatcher: Dispatcher;
  let bridge: WebBridge;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nodeset-web-static-'));
    const outside = mkdtempSync(join(tmpdir(), 'nodeset-web-outside-'));
    writeFileSync(join(outside, 'secret.txt'), 'outside the folder');
    writeFileSync(join(dir, 'hello.txt'), 'static hello');
    writeFileSync(join(dir, '.env'), 'PASSWORD=hunter2');
    mkdirSync(join(dir, '.git'));
    writeFileSync(join(dir, '.git', 'config'), '[remote "origin"]');
    mkdirSync(join(dir, 'docs'));
    writeFileSync(join(dir, 'docs', 'index.html'), '<p>docs</p>');
    writeFileSync(join(dir, 'page.route.mjs'), 'export default (req, res) => res.end("route")');
    symlinkSync(join(outside, 'secret.txt'), join(dir, 'escape.txt'));
    symlinkSync(outside, join(dir, 'escape-dir'));
    symlinkSync(join(dir, 'hello.txt'), join(dir, 'alias.txt'));
    symlinkSync(join(dir, '.env'), join(dir, 'env.txt'));
    dispatcher = await startDispatcher();
    bridge = await new WebBridge({ port: 0, dispatcherUrl: dispatcher.url, path: dir }).start();
  });
  after(async () => {
    await bridge.stop();
    await dispatcher.stop();
  });

  const get = async (path: string) => {
    const res = await fetch(`${bridge.url}${path}`);
    const text = await res.text();
    return { status: res.status, text };
  };

  test('dotfiles, dot-directories and links leading out of the folder are not served', async () => {
    assert.deepEqual(await get('/hello.txt'), { status: 200, text: 'static hello' });
    assert.deepEqual(await get('/alias.txt'), { status: 200, text: 'static hello' });
    assert.deepEqual(await get('/docs'), { status: 200, text: '<p>docs</p>' });
    for (const path of [
      '/.env',
      '/.git/config',
      '/.git/',
      '/%2egit/config',
      '/docs/../.env',
      '/escape.txt',
      '/escape-dir/secret.txt',
      '/env.txt',
      '/page.route.mjs',
      '/..%2f..%2fetc%2fpasswd',
    ]) {
      const { status, text } = await get(path);
      assert.equal(status, 404, path);
      assert.equal(JSON.parse(text).code, 'NOT_FOUND', path);
    }
    assert.deepEqual(await get('/page'), { status: 200, text: 'route' });
  });

  test('a bad percent sequence or a NUL in the path is 400 BAD_REQUEST, never 500', async () => {
    for (const path of ['/%E0%A4%A', '/%', '/%zz', '/hello%FF.txt', '/a%00b', '/subscribe%E0']) {
      const { status, text } = await get(path);
      assert.equal(status, 400, path);
      assert.equal(JSON.parse(text).code, 'BAD_REQUEST', path);
    }
  });

  test("a route module may not take one of the bridge's own paths", async () => {
    const other = mkdtempSync(join(tmpdir(), 'nodeset-web-routes-'));
    writeFileSync(join(other, 'publish.route.mjs'), 'export default (req, res) => res.end()');
    await assert.rejects(
      new WebBridge({ port: 0, dispatcherUrl: dispatcher.url, path: other }).start(),
      /route module for \/publish would hide/,
    );
  });
});

/** A client that sends `head` and then one more byte every `everyMs`, never finishing its request. */
function slowClient(
  port: number,
  head: string,
  everyMs: number,
): { socket: Socket; closed: Promise<string>; isClosed: () => boolean } {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  let received = '';
  let done = false;
  socket.on('data', (c) => (received += c.toString('latin1')));
  const drip = setInterval(() => socket.write('x'), everyMs);
  socket.once('connect', () => socket.write(head));
  const closed = new Promise<string>((resolve) =>
    socket.once('close', () => {
      clearInterval(drip);
      done = true;
      resolve(received);
    }),
  );
  return { socket, closed, isClosed: () => done };
}

/** Waits (bounded) until the bridge has closed every one of `clients`; resolves with what each received. */
async function allClosed(clients: ReturnType<typeof slowClient>[], what: string): Promise<string[]> {
  try {
    await until(() => clients.every((c) => c.isClosed()), 5000, what);
  } finally {
    for (const c of clients) c.socket.destroy();
  }
  return Promise.all(clients.map((c) => c.closed));
}

describe('web bridge: slow, idle and too many connections', () => {
  let dispatcher: Dispatcher;

  before(async () => {
    dispatcher = await startDispatcher();
  });
  after(async () => {
    await dispatcher.stop();
  });

  test('clients that never finish their headers or body are closed at the timeouts while good clients are served', async () => {
    const bridge = await new WebBridge({
      port: 0,
      dispatcherUrl: dispatcher.url,
      headersTimeoutMs: 1500,
      requestTimeoutMs: 2000,
      keepAliveMs: 50,
    }).start();
    const port = Number(new URL(bridge.url).port);
    try {
      // A stream and a WebSocket opened first must outlive the timeouts: they are not slow requests.
      const sse = await fetch(`${bridge.url}/subscribe?event=slow.check`, { headers: { accept: 'text/event-stream' } });
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
      await once(ws, 'open');
      const wsInbox: string[] = [];
      ws.on('message', (d) => wsInbox.push(d.toString()));
      ws.send(JSON.stringify({ id: 1, op: 'subscribe', event: 'slow.check' }));
      await until(() => wsInbox.length === 1);

      const slow = [
        ...Array.from({ length: 40 }, () => slowClient(port, 'GET /nodeset.js HTTP/1.1\r\nHost: x\r\nX-Slow: ', 100)),
        ...Array.from({ length: 5 }, () =>
          slowClient(
            port,
            'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n',
            100,
          ),
        ),
        slowClient(port, '', 60_000),
      ];
      const open = () => slow.filter((s) => !s.isClosed()).length;
      const served: number[] = [];
      let openWhenServed = -1;
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`${bridge.url}/publish`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ event: 'slow.good', message: i }),
        });
        served.push(res.status);
        await res.body?.cancel();
        if (openWhenServed === -1) openWhenServed = open();
      }
      assert.deepEqual(served, [200, 200, 200, 200, 200]);
      assert.ok(openWhenServed > 0, 'the good client was served while the slow ones were open');
      const answers = await allClosed(slow, 'the slow clients to be closed');
      // Headers never finished: 408 with a code. A body never finished: closed (after its 408 when the head was read).
      assert.ok(answers.slice(0, 40).every((a) => a.startsWith('HTTP/1.1 408') && a.includes('"code":"TIMEOUT"')));
      assert.ok(bridge.stats.requestTimeouts >= 41, `${bridge.stats.requestTimeouts} timeouts`);

      const pub = await startNode(dispatcher, { statsIntervalMs: 0 });
      const sseLines = (async () => {
        const reader = sse.body!.getReader();
        let text = '';
        while (!text.includes('slow.check')) text += new TextDecoder().decode((await reader.read()).value);
        await reader.cancel();
        return text;
      })();
      await pub.publish('slow.check', 'still here', { ack: true });
      assert.match(await sseLines, /still here/);
      await until(() => wsInbox.some((m) => m.includes('still here')));
      ws.close();
      await pub.stop();
    } finally {
      await bridge.stop();
    }
  });

  test('an idle keep-alive connection is closed after keepAliveTimeoutMs', async () => {
    const bridge = await new WebBridge({ port: 0, dispatcherUrl: dispatcher.url, keepAliveTimeoutMs: 200 }).start();
    try {
      const socket = connect({ host: '127.0.0.1', port: Number(new URL(bridge.url).port) });
      socket.on('error', () => {});
      let text = '';
      socket.on('data', (c) => (text += c));
      socket.write('GET /nodeset.js HTTP/1.1\r\nHost: x\r\n\r\n');
      await until(() => text.includes('export function connect'));
      const answered = Date.now();
      await once(socket, 'close');
      assert.match(text, /^HTTP\/1.1 200/);
      assert.ok(Date.now() - answered < 10_000);
    } finally {
      await bridge.stop();
    }
  });

  test('past maxConnections a new connection is closed at once and counted; there is room again once the slow ones time out', async () => {
    const bridge = await new WebBridge({
      port: 0,
      dispatcherUrl: dispatcher.url,
      maxConnections: 20,
      headersTimeoutMs: 1000,
      requestTimeoutMs: 1000,
    }).start();
    const port = Number(new URL(bridge.url).port);
    try {
      const held = Array.from({ length: 20 }, () => slowClient(port, 'GET / HTTP/1.1\r\n', 100));
      await until(async () => (await bridge.connectionCount()) === 20, 5000, '20 connections');
      const extra = Array.from({ length: 5 }, () => slowClient(port, 'GET / HTTP/1.1\r\n', 100));
      const refusedAnswers = await allClosed(extra, 'the connections past the limit to be closed');
      assert.deepEqual(refusedAnswers, ['', '', '', '', '']);
      await until(() => bridge.stats.connectionsRefused === 5, 5000, 'refusals counted');
      await allClosed(held, 'the slow connections to time out');
      const res = await fetch(`${bridge.url}/nodeset.js`);
      assert.equal(res.status, 200);
      await res.body?.cancel();
    } finally {
      await bridge.stop();
    }
  });
});

describe('web bridge: clients that leave or repeat themselves while subscribing', () => {
  let dispatcher: Dispatcher;
  let bridge: WebBridge;

  before(async () => {
    dispatcher = await startDispatcher();
    bridge = await new WebBridge({ port: 0, dispatcherUrl: dispatcher.url }).start();
  });
  after(async () => {
    await bridge.stop();
    await dispatcher.stop();
  });

  test('streams whose client is gone before they are set up leave no subscription behind', async () => {
    const port = Number(new URL(bridge.url).port);
    const events = Array.from({ length: 20 }, (_, i) => `event=gone.${i}`).join('&');
    for (let i = 0; i < 30; i++) {
      const socket = connect({ host: '127.0.0.1', port });
      socket.on('error', () => {});
      await once(socket, 'connect');
      socket.write(`GET /subscribe?${events} HTTP/1.1\r\nHost: x\r\n\r\n`);
      // Gone at a different point of the set-up each time.
      if (i % 3 === 0) socket.destroy();
      else await new Promise((r) => setImmediate(r)).then(() => socket.destroy());
    }
    await until(
      () => bridge.pool.listenerCount === 0 && bridge.streamCount === 0 && dispatcher.subscriptionCount === 0,
      5000,
      'every subscription released',
    );
  });

  test('WebSocket subscribes and unsubscribes of one event sent together apply in order, once', async () => {
    const ws = new WebSocket(`${bridge.url.replace('http', 'ws')}/ws`);
    await once(ws, 'open');
    const inbox: { id?: number; ok?: boolean }[] = [];
    ws.on('message', (d) => inbox.push(JSON.parse(d.toString())));
    const ops = [
      { id: 1, op: 'subscribe', event: 'twice' },
      { id: 2, op: 'subscribe', event: 'twice' },
      { id: 3, op: 'subscribe', event: 'undone' },
      { id: 4, op: 'unsubscribe', event: 'undone' },
    ];
    for (const op of ops) ws.send(JSON.stringify(op));
    await until(() => inbox.filter((m) => m.ok === true).length === 4);
    assert.equal(bridge.pool.listenerCount, 1, 'one listener for "twice", none for "undone"');
    assert.equal(dispatcher.subscribers('undone').length, 0);
    ws.close();
    await until(() => bridge.pool.listenerCount === 0, 5000, 'the subscription released on close');
  });
});

describe('web bridge: upgrade requests it does not take', () => {
  test('are answered with a code and closed by the bridge, and stop() never waits for them', async () => {
    const dispatcher = await startDispatcher();
    const bridge = await new WebBridge({ port: 0, dispatcherUrl: dispatcher.url }).start();
    const port = Number(new URL(bridge.url).port);
    const handshake = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n';
    const key = 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
    try {
      const cases: [string, string, number, string][] = [
        ['/ws%E0', key, 400, 'BAD_REQUEST'],
        ['/nowhere', key, 400, 'BAD_REQUEST'],
        ['/subscribe?event=a', key, 400, 'BAD_REQUEST'],
        ['/ws', '', 400, 'BAD_REQUEST'],
        ['/ws', `${key}Sec-WebSocket-Version: 8\r\n`, 400, 'BAD_REQUEST'],
        ['/ws', `${key}Origin: http://evil.example\r\n`, 403, 'PERMISSION_DENIED'],
      ];
      for (const [path, extra, status, code] of cases) {
        // Never closed from this side: the bridge must close it.
        const client = slowClient(port, `GET ${path} HTTP/1.1\r\nHost: x\r\n${handshake}${extra}\r\n`, 60_000);
        const [answer] = await allClosed([client], `the bridge to close the upgrade of ${path}`);
        assert.match(answer!, new RegExp(`^HTTP/1.1 ${status} `), path);
        assert.match(answer!, new RegExp(`"code":"${code}"`), path);
      }
      // An upgraded one its client never closes: stop() closes it rather than wait.
      const lingering = slowClient(port, `GET /ws HTTP/1.1\r\nHost: x\r\n${handshake}${key}\r\n`, 60_000);
      await until(async () => (await bridge.connectionCount()) === 1);
      await bridge.stop();
      const [answer] = await allClosed([lingering], 'stop() to close the WebSocket');
      assert.match(answer!, /^HTTP\/1.1 101 /);
    } finally {
      await bridge.stop();
      await dispatcher.stop();
    }
  });
});
