// Message headers end to end: a publish's headers reach subscribers and
// responders (through a plain connection and as members of a node
// collection), are bounded, and bad ones from a raw client are refused with
// a code while the dispatcher goes on serving.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Dispatcher, type EventInfo, Node, NodeCollection } from '../src/index.js';
import { encodeFrame, FrameKind, PubFlag } from '../src/protocol/frames.js';
import { MAX_HEADER_ENTRIES, MAX_HEADERS_BYTES } from '../src/protocol/headers.js';
import { Latch, startDispatcher } from './helpers.js';
import { RawClient } from './raw-client.js';

for (const transport of ['tcp', 'collection'] as const) {
  describe(`message headers (${transport})`, () => {
    let dispatcher: Dispatcher;
    let collection: NodeCollection | null = null;
    const nodes: Node[] = [];
    const node = async (name: string): Promise<Node> => {
      const n = new Node(
        collection === null ? { name, dispatcherUrl: dispatcher.url, startTimeoutMs: 5000 } : { name },
      );
      collection?.add(n);
      nodes.push(n);
      return n.start();
    };

    before(async () => {
      dispatcher = await startDispatcher();
      if (transport === 'collection') {
        collection = new NodeCollection({ dispatcherUrl: dispatcher.url, name: 'headers-collection' });
        await collection.start();
      }
    });
    after(async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      await collection?.stop();
      await dispatcher.stop();
    });

    test('a publish with headers reaches the subscriber in info.headers; one without shows none', async () => {
      const sub = await node('h-sub');
      const pub = await node('h-pub');
      const seen: EventInfo[] = [];
      const latch = new Latch(3);
      await sub.subscribe('h.plain', (_m, info) => {
        seen.push(info);
        latch.countDown();
      });
      pub.publish('h.plain', { n: 1 }, { headers: { 'x-trace': 'abc', tenant: 'é-ü' } });
      pub.publish('h.plain', { n: 2 });
      assert.equal(await pub.publish('h.plain', { n: 3 }, { ack: true, headers: { acked: 'yes' } }), 1);
      await latch.wait(5000);
      assert.deepEqual(seen[0]?.headers, { 'x-trace': 'abc', tenant: 'é-ü' });
      assert.deepEqual(seen[1]?.headers, {});
      assert.deepEqual(seen[2]?.headers, { acked: 'yes' });
      for (const info of seen) {
        assert.equal(info.from, 'h-pub');
        assert.equal(info.host, null, 'a local message has no origin host');
      }
    });

    test('request headers reach the responder', async () => {
      const responder = await node('h-resp');
      const client = await node('h-client');
      await responder.respond('h.ask', (_m, info) => ({ got: info.headers, isRequest: info.isRequest }));
      const reply = await client.request('h.ask', null, { headers: { 'request-id': 'r-42' } });
      assert.deepEqual(reply, { got: { 'request-id': 'r-42' }, isRequest: true });
    });

    test('direct mode keeps the headers', async () => {
      const sub = await node('h-direct-sub');
      const pub = await node('h-direct-pub');
      const got = new Latch(1);
      let headers: unknown;
      await sub.subscribe('h.direct', (_m, info) => {
        headers = info.headers;
        got.countDown();
      });
      pub.publish('h.direct', 1, { mode: 'direct', headers: { k: 'v' } });
      await got.wait(5000);
      assert.deepEqual(headers, { k: 'v' });
    });

    test('headers over the bounds or of the wrong type are refused to the caller, never truncated', async () => {
      const pub = await node('h-bounds');
      const many = Object.fromEntries(Array.from({ length: MAX_HEADER_ENTRIES + 1 }, (_, i) => [`h${i}`, 'v']));
      assert.throws(() => pub.publish('h.b', 1, { headers: many }), { code: 'TOO_LARGE' });
      assert.throws(() => pub.publish('h.b', 1, { headers: { big: 'x'.repeat(MAX_HEADERS_BYTES) } }), {
        code: 'TOO_LARGE',
      });
      assert.throws(() => pub.publish('h.b', 1, { headers: { n: 1 as unknown as string } }), { code: 'BAD_OPTION' });
      assert.throws(() => pub.publish('h.b', 1, { headers: { 'bad name': 'v' } }), { code: 'BAD_OPTION' });
      await assert.rejects(pub.request('h.b', 1, { headers: many }), { code: 'TOO_LARGE' });
      // At the limits exactly: accepted.
      const limit = Object.fromEntries(Array.from({ length: MAX_HEADER_ENTRIES }, (_, i) => [`h${i}`, 'v']));
      assert.equal(await pub.publish('h.b', 1, { ack: true, headers: limit }), 0);
      const full = { big: 'x'.repeat(MAX_HEADERS_BYTES - 3) };
      assert.equal(await pub.publish('h.b', 1, { ack: true, headers: full }), 0);
    });
  });
}

describe('message headers from a raw client', () => {
  let dispatcher: Dispatcher;
  before(async () => {
    dispatcher = await startDispatcher();
  });
  after(async () => {
    await dispatcher.stop();
  });

  test('bad headers in a PUB get an ERROR with a code; the dispatcher goes on serving', async () => {
    const sub = await new Node({ name: 'raw-h-sub', dispatcherUrl: dispatcher.url }).start();
    const got: unknown[] = [];
    const latch = new Latch(1);
    await sub.subscribe('raw.h', (_m, info) => {
      got.push(info.headers);
      latch.countDown();
    });
    const raw = await RawClient.connect(dispatcher.address.port, 'raw-h');
    const pub = (r: number, headers: unknown) =>
      raw.send(encodeFrame(FrameKind.PUB, ['raw.h', PubFlag.ACK, r, 0, null, 0, headers], Buffer.from('1')));
    const cases: [unknown, string][] = [
      [{ a: 1 }, 'BAD_FRAME'],
      [['a', 'b'], 'BAD_FRAME'],
      ['text', 'BAD_FRAME'],
      [{ a: { nested: 'x' } }, 'BAD_FRAME'],
      [{ 'a b': 'x' }, 'BAD_FRAME'],
      [Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 'v'])), 'TOO_LARGE'],
      [{ big: 'y'.repeat(5000) }, 'TOO_LARGE'],
    ];
    let r = 1;
    for (const [headers, code] of cases) {
      pub(r, headers);
      const err = await raw.nextError();
      assert.equal(err.code, code, JSON.stringify(headers).slice(0, 60));
      assert.equal(err.r, r);
      assert.notEqual(err.fatal, true);
      r++;
    }
    assert.deepEqual(got, [], 'nothing refused was delivered');
    // Nil headers and good headers from the same connection are delivered.
    pub(r, null);
    await raw.next((f) => f.kind === FrameKind.OK);
    await latch.wait(5000);
    pub(r + 1, { ok: 'yes' });
    await raw.next((f) => f.kind === FrameKind.OK);
    assert.equal(raw.closed, false);
    assert.deepEqual(got[0], {});
    raw.destroy();
    await sub.stop();
  });

  test('a subscriber gets headers as a 9-element MSG; one without, exactly the 8 elements', async () => {
    const raw = await RawClient.connect(dispatcher.address.port, 'raw-h-reader');
    raw.send(encodeFrame(FrameKind.SUB, { sid: 3, uri: 'raw.msg', r: 1 }));
    await raw.next((f) => f.kind === FrameKind.OK);
    const pub = await new Node({ name: 'raw-h-pub', dispatcherUrl: dispatcher.url }).start();
    pub.publish('raw.msg', 'a', { headers: { k: 'v' } });
    pub.publish('raw.msg', 'b');
    const first = await raw.next((f) => f.kind === FrameKind.MSG);
    const second = await raw.next((f) => f.kind === FrameKind.MSG);
    // Element 4: the publishing connection's stream id, the same with headers (tail packed per message) and without (cached tail).
    const stream = (first.header as unknown[])[4];
    assert.ok(typeof stream === 'number' && stream > 0);
    assert.deepEqual(first.header, [3, 'raw.msg', 'raw-h-pub', 0, stream, 0, 0, 1, { k: 'v' }]);
    assert.deepEqual(second.header, [3, 'raw.msg', 'raw-h-pub', 0, stream, 0, 0, 2]);
    raw.destroy();
    await pub.stop();
  });
});
