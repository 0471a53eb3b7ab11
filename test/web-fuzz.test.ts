// Property-based fuzzing of the web bridge's edges, inside the normal test
// run: generated hostile HTTP requests (methods, paths, headers, bodies,
// content types, framing), WebSocket frames written raw after an upgrade, and
// signature headers. The bridge must never crash, never answer 500 or a 5xx
// of its own for what a client sent, never log an internal error, and keep
// serving a good client throughout. Counts and time are bounded.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import pino from 'pino';
import { type Dispatcher, ERROR_CODES, KeyRing, signRequest, WebBridge } from '../src/index.js';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER } from '../src/web/signatures.js';
import { startDispatcher, until, WAIT_SCALE } from './helpers.js';
import { queryValue, request } from './hostile-http.js';
import { maskedFrame, rawUpgrade, serverFrames } from './raw-web-client.js';

const HTTP_RUNS = 300;
const WS_RUNS = 200;
const SIGNATURE_RUNS = 150;
/** Each property stops generating after this, whatever its count. */
const TIME_LIMIT_MS = 60_000;
/** How long one case may take to be answered or closed. */
const CASE_MS = 5000 * WAIT_SCALE;
/** 5xx codes that report the dispatcher's answer, not the request. */
const UPSTREAM = new Set(['NO_ROUTE', 'HANDLER_ERROR', 'CONNECTION_LOST', 'NOT_CONNECTED', 'BUFFER_FULL', 'TIMEOUT']);
const SECRET = 'a-fuzzing-secret-of-length';

/** Error-level log lines: an internal failure is logged there. */
const errors: string[] = [];
const logger = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) });

/** Sends raw bytes, half-closes, and resolves with all the bridge sent until it closed (or the first head, for a stream). */
function exchange(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer and no close within ${CASE_MS} ms for ${JSON.stringify(bytes.toString('latin1'))}`));
    }, CASE_MS);
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(text);
    };
    socket.on('error', () => {});
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      // A stream or a WebSocket stays open: its head is its answer.
      const streaming = /^HTTP\/1\.[01] 200 /.test(text) && /x-ndjson|event-stream/.test(text);
      if ((streaming || text.startsWith('HTTP/1.1 101 ')) && text.includes('\r\n\r\n')) done();
    });
    socket.on('close', done);
    socket.on('connect', () => {
      socket.write(bytes);
      socket.end();
    });
  });
}

/** Statuses and error codes of every response in `text`; fails on a 5xx the bridge made itself. */
function checkAnswers(text: string, sent: Buffer): number[] {
  const statuses = [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
  const codes = [...text.matchAll(/"code":"([A-Z_]+)"/g)].map((m) => m[1]!);
  const what = JSON.stringify(sent.toString('latin1').slice(0, 300));
  for (const code of codes) {
    assert.ok(code in ERROR_CODES, `unknown code ${code} for ${what}`);
    assert.notEqual(code, 'INTERNAL', `INTERNAL for ${what}`);
  }
  for (const status of statuses) {
    if (status < 500) continue;
    assert.ok(status !== 500 && codes.some((c) => UPSTREAM.has(c)), `${status} for ${what}: ${text.slice(0, 300)}`);
  }
  return statuses;
}

/** A close code a peer may send (RFC 6455 7.4). */
const validCloseCode = (code: number) =>
  (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);

/** A well-behaved client: a publish that must succeed. */
async function goodPublish(url: string, headers: Record<string, string> = {}, signed = false): Promise<void> {
  const body = JSON.stringify({ event: 'fuzz.good', message: Math.random() });
  const sig = signed ? signRequest('k1', SECRET, { method: 'POST', target: '/publish', body }) : {};
  const res = await fetch(`${url}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers, ...sig },
    body,
  });
  assert.equal(res.status, 200, await res.text());
}

describe('web bridge fuzzing', () => {
  let dispatcher: Dispatcher;
  let bridge: WebBridge;
  let port: number;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nodeset-web-fuzz-'));
    writeFileSync(join(dir, 'hello.txt'), 'hello');
    writeFileSync(join(dir, '.env'), 'SECRET=1');
    writeFileSync(
      join(dir, 'page.route.mjs'),
      'export default (req, res) => { req.resume(); req.on("end", () => res.end("page")); }',
    );
    dispatcher = await startDispatcher();
    bridge = await new WebBridge({
      port: 0,
      dispatcherUrl: dispatcher.url,
      path: dir,
      logger,
      maxBodyBytes: 4096,
      headersTimeoutMs: 2000,
      requestTimeoutMs: 3000,
      keepAliveMs: 50,
    }).start();
    port = Number(new URL(bridge.url).port);
  });
  after(async () => {
    await bridge.stop();
    await dispatcher.stop();
  });

  test(`${HTTP_RUNS} hostile HTTP requests: no 500, no 5xx of the bridge's own, no internal error; a good client served throughout`, async (t) => {
    let runs = 0;
    const seen = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (bytes) => {
        const text = await exchange(port, bytes);
        for (const s of checkAnswers(text, bytes)) seen.set(s, (seen.get(s) ?? 0) + 1);
        if (++runs % 25 === 0) await goodPublish(bridge.url);
      }),
      { numRuns: HTTP_RUNS, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false },
    );
    await goodPublish(bridge.url);
    assert.deepEqual(errors, []);
    t.diagnostic(`${runs} requests; statuses ${JSON.stringify(Object.fromEntries([...seen].sort()))}`);
    // The generator reaches past the parser: some requests were served, some refused by fields, some by framing.
    assert.ok((seen.get(200) ?? 0) > 0 && (seen.get(400) ?? 0) > 0, JSON.stringify([...seen]));
  });

  test(`${WS_RUNS} runs of WebSocket ops with generated fields: every message answered, with a code when refused`, async (t) => {
    const op = fc.oneof(
      {
        weight: 5,
        arbitrary: fc
          .record(
            {
              op: fc.oneof(fc.constantFrom('subscribe', 'unsubscribe', 'publish', 'request', 'nope'), fc.integer()),
              event: fc.oneof(queryValue, fc.integer(), fc.constant(null)),
              message: fc.jsonValue({ maxDepth: 2 }),
              mode: fc.oneof(fc.constantFrom('all', 'direct', 'x'), fc.integer()),
              timeout: fc.oneof(fc.constantFrom(1, 50), fc.double(), fc.string({ maxLength: 3 })),
            },
            { requiredKeys: [] },
          )
          .map((o) => JSON.stringify(o)),
      },
      fc.json({ maxDepth: 2 }),
      fc.string({ maxLength: 20 }),
    );
    let runs = 0;
    const tally = new Map<string, number>();
    const count = (k: string) => tally.set(k, (tally.get(k) ?? 0) + 1);
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 6 }), async (texts) => {
        const socket = await rawUpgrade(port);
        let received = Buffer.alloc(0);
        socket.on('data', (c: Buffer) => (received = Buffer.concat([received, c])));
        for (const text of texts) socket.write(maskedFrame(0x1, Buffer.from(text)));
        // One answer per message (an op's result, or BAD_FRAME for one that is not an op object).
        const answers = () =>
          serverFrames(received)
            .texts.map((x) => JSON.parse(x) as { ok?: boolean; error?: { code: string } })
            .filter((m) => m.ok !== undefined);
        try {
          await until(() => answers().length === texts.length, CASE_MS / WAIT_SCALE, 'an answer to every message');
        } finally {
          socket.destroy();
        }
        for (const m of answers()) {
          if (m.ok === false) {
            assert.ok(m.error!.code in ERROR_CODES && m.error!.code !== 'INTERNAL', JSON.stringify(m));
            count(m.error!.code);
          } else count('ok');
        }
        if (++runs % 25 === 0) await goodPublish(bridge.url);
      }),
      { numRuns: WS_RUNS, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false },
    );
    await goodPublish(bridge.url);
    await until(() => bridge.pool.listenerCount === 0, 5000, 'the fuzzed sockets to let go of their subscriptions');
    assert.deepEqual(errors, []);
    t.diagnostic(`${runs} runs; ${JSON.stringify(Object.fromEntries([...tally].sort()))}`);
  });

  test(`${WS_RUNS} runs of raw WebSocket frames: the client is closed, with a protocol close code if any`, async (t) => {
    const frame = fc.oneof(
      fc
        .tuple(fc.integer({ min: 0, max: 15 }), fc.uint8Array({ maxLength: 150 }))
        .map(([code, p]) => maskedFrame(code, p)),
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
      // A header whose length claims more than follows, or than is allowed.
      fc
        .tuple(
          fc.integer({ min: 0, max: 255 }),
          fc.constantFrom(126, 127),
          fc.uint8Array({ minLength: 8, maxLength: 8 }),
        )
        .map(([first, len, rest]) => Buffer.from([first, 0x80 | len, ...rest])),
      fc.constant(Buffer.from([0x01, 0x81, 1, 2, 3, 4, 0x7a])), // a fragment never finished
      fc.constant(Buffer.from([0x81, 0x05, ...Buffer.from('hello')])), // unmasked
      fc.uint8Array({ maxLength: 40 }).map((b) => maskedFrame(0x1, b)), // text that may not be UTF-8
    );
    let runs = 0;
    const tally = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 5 }), async (frames) => {
        const socket = await rawUpgrade(port);
        let received = Buffer.alloc(0);
        socket.on('data', (c: Buffer) => (received = Buffer.concat([received, c])));
        const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
        for (const f of frames) socket.write(f);
        socket.end();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          closed,
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error('the bridge did not close')), CASE_MS);
          }),
        ]).finally(() => {
          clearTimeout(timer);
          socket.destroy();
        });
        const { closeCode } = serverFrames(received);
        tally.set(`close ${closeCode}`, (tally.get(`close ${closeCode}`) ?? 0) + 1);
        // A close frame from the client is echoed with its code (1005: none); otherwise the code names the fault.
        const clientClosed = frames.some((f) => ((f[0] as number) & 0x0f) === 0x8);
        if (closeCode !== null && clientClosed) {
          assert.ok(closeCode === 1005 || validCloseCode(closeCode), `close ${closeCode}`);
        } else if (closeCode !== null) {
          assert.ok([1000, 1001, 1002, 1007, 1009].includes(closeCode), `close ${closeCode}`);
        }
        if (++runs % 25 === 0) await goodPublish(bridge.url);
      }),
      { numRuns: WS_RUNS, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false },
    );
    await goodPublish(bridge.url);
    assert.deepEqual(errors, []);
    t.diagnostic(`${runs} runs; ${JSON.stringify(Object.fromEntries([...tally].sort()))}`);
  });
});

describe('signature fuzzing', () => {
  let dispatcher: Dispatcher;
  let bridge: WebBridge;

  before(async () => {
    dispatcher = await startDispatcher();
    const keys = new KeyRing([{ id: 'k1', secret: SECRET }]);
    bridge = await new WebBridge({ port: 0, dispatcherUrl: dispatcher.url, keys, logger }).start();
  });
  after(async () => {
    await bridge.stop();
    await dispatcher.stop();
  });

  test(`${SIGNATURE_RUNS} mutated signature headers: accepted exactly when valid and unused, refused with 403 otherwise`, async () => {
    let n = 0;
    const spelling = fc.constantFrom(
      'same',
      'upper',
      'suffix',
      'prefix',
      'odd',
      'truncated',
      'other',
      'empty',
      'twice',
      'space',
    );
    const stamp = fc.constantFrom('same', 'float', 'old', 'future', 'spaced', 'hex', 'empty', 'signed');
    const key = fc.constantFrom('same', 'unknown', 'empty', 'spaced');
    const change = fc.constantFrom('none', 'body', 'target', 'method');
    await fc.assert(
      fc.asyncProperty(
        spelling,
        stamp,
        key,
        change,
        fc.stringMatching(/^[0-9a-fA-F]{64}$/),
        async (s, t, k, c, hex) => {
          const body = JSON.stringify({ event: 'fuzz.signed', message: n++ });
          const now = Date.now();
          const headers = signRequest('k1', SECRET, { method: 'POST', target: '/publish', body }, now);
          const sig = headers[SIGNATURE_HEADER]!;
          const mutated: Record<string, string> = { ...headers };
          mutated[SIGNATURE_HEADER] = {
            same: sig,
            upper: sig.toUpperCase(),
            suffix: `${sig}0`,
            prefix: `0${sig}`,
            odd: `${sig.slice(0, 63)}`,
            truncated: sig.slice(0, 32),
            other: hex,
            empty: '',
            twice: `${sig}, ${sig}`,
            space: ` ${sig}x`,
          }[s];
          mutated[TIMESTAMP_HEADER] = {
            same: String(now),
            float: `${now}.0`,
            old: String(now - 10 * 60_000),
            future: String(now + 10 * 60_000),
            // Spaces around a header value are not part of it (HTTP trims them): one inside is.
            spaced: `${String(now).slice(0, 6)} ${String(now).slice(6)}`,
            hex: `0x${now.toString(16)}`,
            empty: '',
            signed: `+${now}`,
          }[t];
          if (k !== 'same') mutated['x-nodeset-key'] = { unknown: 'k2', empty: '', spaced: 'k1 x' }[k];
          const target = c === 'target' ? '/publish?x=1' : '/publish';
          const sentBody = c === 'body' ? body.replace('fuzz.signed', 'fuzz.other') : body;
          const res = await fetch(`${bridge.url}${target}`, {
            method: c === 'method' ? 'PUT' : 'POST',
            headers: { 'content-type': 'application/json', ...mutated },
            body: sentBody,
          });
          const answer = (await res.json()) as { code?: string };
          const valid =
            (s === 'same' || s === 'upper' || (s === 'other' && hex.toLowerCase() === sig)) &&
            t === 'same' &&
            k === 'same' &&
            c === 'none';
          if (c === 'method') assert.equal(res.status, 405);
          else assert.equal(res.status, valid ? 200 : 403, `${s} ${t} ${k} ${c}: ${JSON.stringify(answer)}`);
          // Whatever happened, the original is good at most once more, and never after.
          const first = await fetch(`${bridge.url}/publish`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...headers },
            body,
          });
          assert.equal(first.status, valid ? 403 : 200);
          await first.body?.cancel();
          const again = await fetch(`${bridge.url}/publish`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...headers, [SIGNATURE_HEADER]: sig.toUpperCase() },
            body,
          });
          assert.equal(again.status, 403);
          await again.body?.cancel();
        },
      ),
      { numRuns: SIGNATURE_RUNS, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false },
    );
    await goodPublish(bridge.url, {}, true);
    assert.deepEqual(errors, []);
  });
});
