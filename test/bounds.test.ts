import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Dispatcher, Node, NodeCollection, NodesetError } from '../src/index.js';
import { encodeFrame, FrameKind, frameSize, MAX_HEADER_BYTES } from '../src/protocol/frames.js';
import { startDispatcher, startNode, until } from './helpers.js';

/** Sizes past what one frame header holds: every frame writer refuses them with a code, and answers page. */
describe('frame bounds', () => {
  let dispatcher: Dispatcher;
  before(async () => {
    dispatcher = await startDispatcher({ maxConnections: 2000 });
  });
  after(async () => {
    await dispatcher.stop();
  });

  test('a header past the frame limit is refused with TOO_LARGE, never a RangeError', () => {
    assert.throws(() => frameSize(MAX_HEADER_BYTES + 1, 0), { code: 'TOO_LARGE' });
    assert.throws(() => encodeFrame(FrameKind.OK, { r: 1, junk: 'x'.repeat(MAX_HEADER_BYTES) }), {
      code: 'TOO_LARGE',
    });
    assert.equal(frameSize(MAX_HEADER_BYTES, 0) > MAX_HEADER_BYTES, true);
  });

  test('a last will too large for the handshake is refused when the node is made', async () => {
    assert.throws(
      () => new Node({ dispatcherUrl: dispatcher.url, lastWill: { uri: 'gone', message: 'w'.repeat(100_000) } }),
      (err: unknown) => err instanceof NodesetError && err.code === 'TOO_LARGE',
    );
    // One that fits is published when the node disappears.
    const watcher = await startNode(dispatcher);
    const wills: unknown[] = [];
    await watcher.subscribe('gone', (m) => void wills.push(m));
    const will = 'w'.repeat(30_000);
    const node = new Node({ dispatcherUrl: dispatcher.url, name: 'willful', lastWill: { uri: 'gone', message: will } });
    await node.start();
    dispatcher.kick('willful');
    await until(() => wills.length === 1, 5000, 'the last will');
    assert.equal(wills[0], will);
    await node.stop();
    await watcher.stop();
  });

  test('2,000 collection members share one subscription; member targets reach each', async () => {
    const collection = new NodeCollection({ dispatcherUrl: dispatcher.url, name: 'big-coll' });
    const got = new Map<string, number>();
    const members = Array.from({ length: 2000 }, (_, i) => new Node({ name: `member-${i}` }));
    for (const m of members) collection.add(m);
    await collection.start();
    try {
      await Promise.all(
        members.map((m) => m.subscribe('big.topic', () => void got.set(m.name, (got.get(m.name) ?? 0) + 1))),
      );
      for (const m of members) assert.deepEqual(m.subscriptions(), [{ uri: 'big.topic', group: null }]);
      const subs = dispatcher.subscribers('big.topic');
      assert.equal(subs.length, 1);
      assert.equal(subs[0]?.nodes.length, 2000);
      const pub = await startNode(dispatcher);
      assert.equal(await pub.publish('member-1999@localhost/big.topic', 'last', { ack: true }), 1);
      assert.equal(await pub.publish('big.topic', 'all', { ack: true }), 1);
      await until(() => got.size === 2000 && got.get('member-1999') === 2, 10_000, 'every member to get it');
      // The answer to a subscribers query with a 2,000-name entry arrives whole.
      const answer = (await pub.subscribers('big.topic')) as { nodes: string[] }[];
      assert.equal(answer[0]?.nodes.length, 2000);
      await pub.stop();
    } finally {
      await collection.stop();
    }
  });

  test('nodes() with 1,000 connected nodes: the answer comes in pages, every node in it once', async () => {
    const nodes = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        startNode(dispatcher, { name: `many-${i}-${'n'.repeat(100)}`, statsIntervalMs: 0 }),
      ),
    );
    try {
      // Each with a few long subscriptions: the whole answer is well past one page.
      await Promise.all(nodes.map((n, i) => n.subscribe(`many.${i}.${'s'.repeat(200)}`)));
      const list = (await (nodes[0] as Node).nodes()) as { name: string; subscriptions: string[] }[];
      const names = list.map((n) => n.name).filter((n) => n.startsWith('many-'));
      assert.equal(names.length, 1000);
      assert.equal(new Set(names).size, 1000);
      assert.ok(list.every((n) => !n.name.startsWith('many-') || n.subscriptions.length === 1));
    } finally {
      await Promise.all(nodes.map((n) => n.stop()));
    }
  });
});
