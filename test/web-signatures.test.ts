// Request signatures of the web bridge: strict decoding, a signature bound to
// its method, target and body, and a replay cache that never forgets a
// signature while its timestamp is still accepted.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { type Dispatcher, KeyRing, NodesetError, signRequest, WebBridge } from '../src/index.js';
import { ReplayCache } from '../src/web/replay-cache.js';
import { SIGNATURE_HEADER } from '../src/web/signatures.js';
import { startDispatcher, startNode, until } from './helpers.js';

const SECRET = 'a-very-long-shared-secret';
const T0 = Date.UTC(2030, 0, 1);
const publishOf = (body: string) => ({ method: 'POST', target: '/publish', body });

/** The error code `fn` throws, or 'OK'. */
function outcome(fn: () => void): string {
  try {
    fn();
    return 'OK';
  } catch (err) {
    assert.ok(err instanceof NodesetError, String(err));
    return `${err.code}: ${err.message}`;
  }
}

describe('KeyRing', () => {
  test('a used signature is refused in any other spelling: upper case, trailing characters, an extra digit', () => {
    const keys = new KeyRing([{ id: 'k1', secret: SECRET }]);
    const request = publishOf('{"event":"a","message":1}');
    const headers = signRequest('k1', SECRET, request, T0);
    const sig = headers[SIGNATURE_HEADER]!;
    assert.equal(
      outcome(() => keys.verify(headers, request, T0)),
      'OK',
    );
    const spellings = [
      sig,
      sig.toUpperCase(),
      `${sig}zz`,
      `${sig}0`,
      ` ${sig}`,
      `${sig} `,
      sig.slice(0, 63),
      `${sig},${sig}`,
    ];
    const results = spellings.map((s) =>
      outcome(() => keys.verify({ ...headers, [SIGNATURE_HEADER]: s }, request, T0)),
    );
    assert.deepEqual(results, [
      'PERMISSION_DENIED: replayed signature',
      'PERMISSION_DENIED: replayed signature',
      ...Array(6).fill('PERMISSION_DENIED: x-nodeset-signature must be 64 hex digits'),
    ]);
    assert.equal(keys.remembered, 1);
  });

  test('a signature covers the method, the target and the body: it is good for that request only', () => {
    const keys = new KeyRing([{ id: 'k1', secret: SECRET }]);
    const subscribe = { method: 'GET', target: '/subscribe?event=orders.new' };
    const headers = signRequest('k1', SECRET, subscribe, T0);
    for (const other of [
      { method: 'POST', target: '/subscribe?event=orders.new' },
      { method: 'GET', target: '/subscribe?event=orders.old' },
      { method: 'GET', target: '/publish?event=orders.new' },
      { method: 'POST', target: '/publish', body: 'event=orders.new&message=' },
      { method: 'GET', target: '/subscribe?event=orders.new', body: 'x' },
    ]) {
      assert.equal(
        outcome(() => keys.verify(headers, other, T0)),
        'PERMISSION_DENIED: bad signature',
        other.target,
      );
    }
    assert.equal(
      outcome(() => keys.verify(headers, subscribe, T0)),
      'OK',
    );
    // The key id is signed too: the same secret under another id is another signature.
    const twin = new KeyRing([
      { id: 'k1', secret: SECRET },
      { id: 'k2', secret: SECRET },
    ]);
    const renamed = { ...signRequest('k1', SECRET, subscribe, T0), 'x-nodeset-key': 'k2' };
    assert.equal(
      outcome(() => twin.verify(renamed, subscribe, T0)),
      'PERMISSION_DENIED: bad signature',
    );
  });

  test('timestamps: digits only, inside the window; headers repeated or missing are refused', () => {
    const keys = new KeyRing([{ id: 'k1', secret: SECRET }], { windowMs: 60_000 });
    const request = publishOf('{}');
    const at = (now: number) => signRequest('k1', SECRET, request, now);
    assert.match(
      outcome(() => keys.verify(at(T0 - 61_000), request, T0)),
      /outside the signature window/,
    );
    assert.match(
      outcome(() => keys.verify(at(T0 + 61_000), request, T0)),
      /outside the signature window/,
    );
    for (const ts of [`${T0}.0`, ` ${T0}`, `+${T0}`, '1e12', `0x${T0.toString(16)}`, '']) {
      assert.match(
        outcome(() => keys.verify({ ...at(T0), 'x-nodeset-timestamp': ts }, request, T0)),
        /digits only/,
      );
    }
    assert.match(
      outcome(() => keys.verify({ ...at(T0), 'x-nodeset-key': ['k1', 'k1'] }, request, T0)),
      /required/,
    );
    assert.match(
      outcome(() => keys.verify({ ...at(T0), 'x-nodeset-key': 'k9' }, request, T0)),
      /unknown key/,
    );
    assert.equal(
      outcome(() => keys.verify(at(T0 - 59_000), request, T0)),
      'OK',
    );
  });

  test('when full, new signatures are refused (LIMIT_EXCEEDED) and the remembered ones stay refused until they expire', () => {
    const windowMs = 10_000;
    const keys = new KeyRing([{ id: 'k1', secret: SECRET }], { windowMs, maxRemembered: 100 });
    const requests = Array.from({ length: 101 }, (_, i) => publishOf(`{"n":${i}}`));
    const signed = requests.map((r) => signRequest('k1', SECRET, r, T0));
    for (let i = 0; i < 100; i++)
      assert.equal(
        outcome(() => keys.verify(signed[i]!, requests[i]!, T0)),
        'OK',
      );
    assert.match(
      outcome(() => keys.verify(signed[100]!, requests[100]!, T0)),
      /^LIMIT_EXCEEDED: too many signed/,
    );
    // The first is still refused as long as its timestamp is accepted: nothing was forgotten to make room.
    assert.equal(
      outcome(() => keys.verify(signed[0]!, requests[0]!, T0 + windowMs)),
      'PERMISSION_DENIED: replayed signature',
    );
    assert.equal(keys.remembered, 100);
    // Past the window they are gone, and there is room again.
    const later = T0 + windowMs + 1000;
    const fresh = signRequest('k1', SECRET, requests[100]!, later);
    assert.equal(
      outcome(() => keys.verify(fresh, requests[100]!, later)),
      'OK',
    );
    assert.equal(keys.remembered, 1);
  });

  test('the replay cache never forgets an entry before it expires (property, simulated clock)', () => {
    const lifetime = 20_000;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 7000 }), fc.integer({ min: 0, max: lifetime })), {
          minLength: 1,
          maxLength: 200,
        }),
        fc.integer({ min: -3000, max: 3000 }),
        (steps, jitter) => {
          const cache = new ReplayCache(lifetime, 1_000_000);
          const live = new Map<string, number>();
          let now = T0 + jitter;
          steps.forEach(([advance, ttl], i) => {
            // The clock mostly goes forward; now and then back a little.
            now += i % 17 === 16 ? -advance / 7 : advance;
            for (const [key, expires] of live) {
              if (expires > now) assert.equal(cache.remember(key, expires, now), 'replay', `${key} forgotten early`);
              else live.delete(key);
            }
            const key = `k${i}`;
            assert.equal(cache.remember(key, now + ttl, now), 'fresh');
            live.set(key, now + ttl);
          });
          // Everything goes once the lifetime has passed.
          cache.remember('last', now + 1, now + lifetime + 2000);
          assert.equal(cache.size, 1);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('signed requests through the bridge', () => {
  async function withBridge(fn: (b: WebBridge, d: Dispatcher) => Promise<void>): Promise<void> {
    const d = await startDispatcher();
    const keys = new KeyRing([{ id: 'k1', secret: SECRET }]);
    const b = await new WebBridge({ port: 0, dispatcherUrl: d.url, keys }).start();
    try {
      await fn(b, d);
    } finally {
      await b.stop();
      await d.stop();
    }
  }

  test('one signed publish is delivered once, however its signature is re-spelled', async () => {
    await withBridge(async (b, d) => {
      const got: unknown[] = [];
      const sub = await startNode(d, { statsIntervalMs: 0 });
      await sub.subscribe('signed.once', (m) => void got.push(m));
      const body = JSON.stringify({ event: 'signed.once', message: { n: 1 } });
      const headers = signRequest('k1', SECRET, publishOf(body));
      const sig = headers[SIGNATURE_HEADER]!;
      const statuses: number[] = [];
      for (const s of [sig, sig.toUpperCase(), `${sig}00`, `${sig}a`]) {
        const res = await fetch(`${b.url}/publish`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers, [SIGNATURE_HEADER]: s },
          body,
        });
        statuses.push(res.status);
        await res.body?.cancel();
      }
      assert.deepEqual(statuses, [200, 403, 403, 403]);
      // A publish after them is delivered after the first: nothing else got through in between.
      const next = JSON.stringify({ event: 'signed.once', message: { n: 2 } });
      const ok = await fetch(`${b.url}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...signRequest('k1', SECRET, publishOf(next)) },
        body: next,
      });
      assert.equal(ok.status, 200);
      await until(() => got.length === 2);
      assert.deepEqual(got, [{ n: 1 }, { n: 2 }]);
      await sub.stop();
    });
  });

  test('a subscribe signature is not a publish signature', async () => {
    await withBridge(async (b) => {
      const subscribe = signRequest('k1', SECRET, { method: 'GET', target: '/subscribe?event=x' });
      const res = await fetch(`${b.url}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...subscribe },
        body: 'event=x&message=',
      });
      assert.equal(res.status, 403);
      assert.deepEqual(await res.json(), { code: 'PERMISSION_DENIED', message: 'bad signature' });
      const sub = await fetch(`${b.url}/subscribe?event=x`, { headers: subscribe });
      assert.equal(sub.status, 200);
      await sub.body?.cancel();
    });
  });
});
