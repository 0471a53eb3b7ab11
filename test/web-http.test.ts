// HTTP details of the web bridge: methods (405 with Allow), content types
// (415), the original's GET /publish and POST /subscribe forms, the codes of
// bad fields, and what pages of other sites may do.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { type Dispatcher, KeyRing, type Node, signRequest, WebBridge } from '../src/index.js';
import { startDispatcher, startNode, until } from './helpers.js';

const JSON_TYPE = { 'content-type': 'application/json' };
const FORM_TYPE = { 'content-type': 'application/x-www-form-urlencoded' };

async function answer(
  res: Response,
): Promise<{ status: number; code?: string; message?: string; allow: string | null }> {
  const text = await res.text();
  const body = text === '' ? {} : (JSON.parse(text) as { code?: string; message?: string });
  return { status: res.status, code: body.code, message: body.message, allow: res.headers.get('allow') };
}

/** Reads a streaming response until `count` lines holding an event arrived. */
async function eventLines(res: Response, count: number): Promise<unknown[]> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const out: unknown[] = [];
  while (out.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    const lines = text.split('\n');
    text = lines.pop() ?? '';
    for (const l of lines) if (l.startsWith('{')) out.push(JSON.parse(l));
  }
  await reader.cancel().catch(() => {});
  return out;
}

describe('web bridge: HTTP methods, content types and forms', () => {
  let dispatcher: Dispatcher;
  let bridge: WebBridge;
  let sub: Node;
  const got: { event: string; message: unknown }[] = [];

  before(async () => {
    dispatcher = await startDispatcher();
    bridge = await new WebBridge({ port: 0, dispatcherUrl: dispatcher.url }).start();
    sub = await startNode(dispatcher, { statsIntervalMs: 0 });
    await sub.subscribe('http.>', (message, info) => void got.push({ event: info.uri, message }));
  });
  after(async () => {
    await sub.stop();
    await bridge.stop();
    await dispatcher.stop();
  });

  test('a known path with the wrong method is 405 with Allow; an unknown path is 404', async () => {
    const cases: [string, string, string][] = [
      ['PUT', '/publish', 'GET, POST'],
      ['DELETE', '/publish', 'GET, POST'],
      ['HEAD', '/publish', 'GET, POST'],
      ['GET', '/request', 'POST'],
      ['PATCH', '/subscribe', 'GET, POST'],
      ['HEAD', '/subscribe', 'GET, POST'],
      ['POST', '/ws', 'GET'],
      ['POST', '/nodeset.js', 'GET, HEAD'],
      ['DELETE', '/', 'GET, HEAD'],
    ];
    for (const [method, path, allow] of cases) {
      const a = await answer(await fetch(`${bridge.url}${path}`, { method }));
      assert.equal(a.status, 405, `${method} ${path}`);
      assert.equal(a.allow, allow, `${method} ${path}`);
      if (method !== 'HEAD') assert.equal(a.code, 'METHOD_NOT_ALLOWED');
    }
    assert.deepEqual(await answer(await fetch(`${bridge.url}/nowhere`, { method: 'POST' })), {
      status: 404,
      code: 'NOT_FOUND',
      message: 'no POST /nowhere',
      allow: null,
    });
    assert.equal(got.length, 0, 'HEAD /publish published nothing');
  });

  test('bodies are read by Content-Type: JSON and forms; anything else is 415, and JSON sent as a form says so', async () => {
    const body = JSON.stringify({ event: 'http.typed', message: 1 });
    const post = (headers: Record<string, string>, b: string = body) =>
      fetch(`${bridge.url}/publish`, { method: 'POST', headers, body: b }).then(answer);
    assert.equal((await post({ 'content-type': 'application/json; charset=utf-8' })).status, 200);
    assert.equal((await post(FORM_TYPE, 'event=http.typed&message=2')).status, 200);
    for (const type of ['text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/json-seq']) {
      const a = await post({ 'content-type': type });
      assert.equal(a.status, 415, type);
      assert.equal(a.code, 'UNSUPPORTED_MEDIA_TYPE', type);
      assert.match(a.message!, /application\/json/);
    }
    // No Content-Type at all: fetch would add text/plain, so this one goes without it.
    const bare = await fetch(`${bridge.url}/publish`, { method: 'POST', body: new Uint8Array(Buffer.from(body)) });
    assert.equal((await answer(bare)).code, 'UNSUPPORTED_MEDIA_TYPE');
    const asForm = await post(FORM_TYPE);
    assert.equal(asForm.status, 415);
    assert.match(asForm.message!, /the body is JSON but Content-Type is application\/x-www-form-urlencoded/);
    await until(() => got.length === 2);
    assert.deepEqual(
      got.map((g) => g.message),
      [1, 2],
    );
    got.length = 0;
  });

  test('bad fields are refused with the code of the field', async () => {
    const post = (b: string) =>
      fetch(`${bridge.url}/publish`, { method: 'POST', headers: JSON_TYPE, body: b }).then(answer);
    const form = (b: string) =>
      fetch(`${bridge.url}/publish`, { method: 'POST', headers: FORM_TYPE, body: b }).then(answer);
    const codes = {
      missing: (await post('{"message":1}')).code,
      number: (await post('{"event":5}')).code,
      list: (await form('event=http.a&event=http.b')).code,
      uri: (await post('{"event":"a..b"}')).code,
      mode: (await post('{"event":"http.x","mode":"some"}')).code,
      timeout: (await post('{"event":"http.x","timeout":0}')).code,
      formTimeout: (await form('event=http.x&timeout=soon')).code,
      array: (await post('[1,2]')).code,
      invalid: (await post('{nope')).code,
      empty: (await post('')).code,
      proto: (await post('{"event":"http.x","message":{"__proto__":{"admin":true}}}')).code,
    };
    assert.deepEqual(codes, {
      missing: 'BAD_URI',
      number: 'BAD_URI',
      list: 'BAD_URI',
      uri: 'BAD_URI',
      mode: 'BAD_OPTION',
      timeout: 'BAD_OPTION',
      formTimeout: 'BAD_OPTION',
      array: 'BAD_FRAME',
      invalid: 'BAD_FRAME',
      empty: 'BAD_FRAME',
      proto: 'BAD_FRAME',
    });
    assert.equal(got.length, 0);
  });

  test("the original's GET /publish?event=…&message=… publishes; the message is JSON when it parses", async () => {
    const a = await fetch(`${bridge.url}/publish?event=http.get&message=${encodeURIComponent('{"id":7}')}`);
    assert.deepEqual(await a.json(), { event: 'http.get', delivered: 1 });
    const b = await fetch(`${bridge.url}/publish?event=http.get&message=plain+words&mode=direct&timeout=2000`);
    assert.equal(b.status, 200);
    assert.deepEqual((await answer(await fetch(`${bridge.url}/publish?message=1`))).code, 'BAD_URI');
    await until(() => got.length === 2);
    assert.deepEqual(got, [
      { event: 'http.get', message: { id: 7 } },
      { event: 'http.get', message: 'plain words' },
    ]);
    got.length = 0;
  });

  test("the original's POST /subscribe: events in form fields, a JSON body or the query", async () => {
    const form = await fetch(`${bridge.url}/subscribe`, {
      method: 'POST',
      headers: FORM_TYPE,
      body: 'event=http.sub.a&event=http.sub.b',
    });
    const json = await fetch(`${bridge.url}/subscribe`, {
      method: 'POST',
      headers: JSON_TYPE,
      body: JSON.stringify({ event: ['http.sub.a'] }),
    });
    const query = await fetch(`${bridge.url}/subscribe?event=http.sub.b`, { method: 'POST' });
    assert.deepEqual([form.status, json.status, query.status], [200, 200, 200]);
    const lines = [eventLines(form, 2), eventLines(json, 1), eventLines(query, 1)];
    const pub = await startNode(dispatcher, { statsIntervalMs: 0 });
    await pub.publish('http.sub.a', 'A', { ack: true });
    await pub.publish('http.sub.b', 'B', { ack: true });
    const [f, j, q] = await Promise.all(lines);
    assert.deepEqual(
      f!.map((l) => (l as { message: unknown }).message),
      ['A', 'B'],
    );
    assert.deepEqual((j![0] as { event: string }).event, 'http.sub.a');
    assert.deepEqual((q![0] as { event: string }).event, 'http.sub.b');
    await pub.stop();
    const none = await answer(await fetch(`${bridge.url}/subscribe`, { method: 'POST' }));
    assert.deepEqual([none.status, none.code], [400, 'BAD_URI']);
    got.length = 0;
  });
});

test('a signed GET /publish covers its query: the same signature on another message is refused', async () => {
  const d = await startDispatcher();
  const secret = 'a-very-long-shared-secret';
  const b = await new WebBridge({ port: 0, dispatcherUrl: d.url, keys: new KeyRing([{ id: 'k1', secret }]) }).start();
  try {
    const target = '/publish?event=signed.get&message=1';
    const headers = signRequest('k1', secret, { method: 'GET', target });
    const other = await fetch(`${b.url}/publish?event=signed.get&message=2`, { headers });
    assert.equal(other.status, 403);
    await other.body?.cancel();
    const ok = await fetch(`${b.url}${target}`, { headers });
    assert.deepEqual(await ok.json(), { event: 'signed.get', delivered: 0 });
  } finally {
    await b.stop();
    await d.stop();
  }
});

describe('web bridge: pages of other sites', () => {
  let dispatcher: Dispatcher;

  before(async () => {
    dispatcher = await startDispatcher();
  });
  after(async () => {
    await dispatcher.stop();
  });

  test('may not publish, subscribe or open /ws for the visitor; its own origin and non-browser clients may', async () => {
    const bridge = await new WebBridge({ port: 0, dispatcherUrl: dispatcher.url }).start();
    try {
      const body = JSON.stringify({ event: 'site.x', message: 1 });
      const publish = (headers: Record<string, string>) =>
        fetch(`${bridge.url}/publish`, { method: 'POST', headers: { ...JSON_TYPE, ...headers }, body }).then(answer);
      assert.deepEqual(
        [(await publish({ origin: 'http://evil.example' })).code, (await publish({ origin: 'null' })).code],
        ['PERMISSION_DENIED', 'PERMISSION_DENIED'],
      );
      // An image or a link: no Origin, but the browser says where it came from.
      const img = await fetch(`${bridge.url}/publish?event=site.x&message=1`, {
        headers: { 'sec-fetch-site': 'cross-site' },
      });
      assert.equal((await answer(img)).status, 403);
      const sub = await fetch(`${bridge.url}/subscribe?event=site.x`, { headers: { origin: 'http://evil.example' } });
      assert.equal((await answer(sub)).status, 403);
      const ws = new WebSocket(`ws://127.0.0.1:${new URL(bridge.url).port}/ws`, { origin: 'http://evil.example' });
      ws.on('error', () => {});
      const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
      assert.equal(res.statusCode, 403);
      ws.terminate();

      assert.equal((await publish({ origin: bridge.url, 'sec-fetch-site': 'same-origin' })).status, 200);
      assert.equal((await publish({})).status, 200);
      // Static files and the browser client are anyone's.
      const js = await fetch(`${bridge.url}/nodeset.js`, { headers: { origin: 'http://evil.example' } });
      assert.equal(js.status, 200);
      await js.body?.cancel();
    } finally {
      await bridge.stop();
    }
  });

  test('--cors origins are allowed, with CORS headers and preflights', async () => {
    const bridge = await new WebBridge({
      port: 0,
      dispatcherUrl: dispatcher.url,
      cors: ['http://app.example'],
    }).start();
    try {
      const ok = await fetch(`${bridge.url}/publish`, {
        method: 'POST',
        headers: { ...JSON_TYPE, origin: 'http://app.example', 'sec-fetch-site': 'cross-site' },
        body: JSON.stringify({ event: 'site.y', message: 1 }),
      });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('access-control-allow-origin'), 'http://app.example');
      await ok.body?.cancel();
      const preflight = await fetch(`${bridge.url}/publish`, {
        method: 'OPTIONS',
        headers: { origin: 'http://app.example', 'access-control-request-method': 'POST' },
      });
      assert.equal(preflight.status, 204);
      assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /x-nodeset-signature/);
      const other = await fetch(`${bridge.url}/publish`, {
        method: 'POST',
        headers: { ...JSON_TYPE, origin: 'http://other.example' },
        body: '{}',
      });
      assert.equal(other.status, 403);
      assert.equal(other.headers.get('access-control-allow-origin'), null);
      await other.body?.cancel();
    } finally {
      await bridge.stop();
    }
  });
});
