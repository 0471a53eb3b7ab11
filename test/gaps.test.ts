import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { StreamIds } from '../src/dispatcher/stream-ids.js';
import { NatsFederation } from '../src/federation/nats-federation.js';
import { Dispatcher, type GapEvent, Node, NodeCollection } from '../src/index.js';
import { NatsServer, startDispatcher, startNode, TcpProxy, until, WAIT_SCALE } from './helpers.js';

/** Publishes `count` numbers in rounds of `round`, letting the event loop turn between rounds (so publishers interleave). */
async function publishMany(node: Node, uri: string, count: number, round = 50): Promise<void> {
  for (let i = 1; i <= count; i++) {
    node.publish(uri, i);
    if (i % round === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  await node.drain();
}

/** Waits for `predicate`'s stats to say `n` more announces went through the dispatcher. */
async function announcesPass(d: Dispatcher, n: number): Promise<void> {
  const target = d.stats.announces + n;
  await until(() => d.stats.announces >= target, 5000, `${n} announces`);
}

describe('gap detection', () => {
  test('a subscriber that missed messages while reconnecting is told exactly which', async () => {
    const d = await startDispatcher();
    const proxy = await new TcpProxy(d.address.port).start();
    const sub = await startNode(proxy.url, {
      name: 'gap-sub',
      statsIntervalMs: 0,
      reconnect: { initialMs: 50, maxMs: 200 },
    });
    const pub = await startNode(d, { name: 'gap-pub', statsIntervalMs: 0 });
    try {
      const got: number[] = [];
      const gaps: GapEvent[] = [];
      sub.on('gap', (g) => gaps.push(g));
      await sub.subscribe('gap.ev', (n: number) => void got.push(n));
      for (let i = 1; i <= 3; i++) assert.equal(await pub.publish('gap.ev', i, { ack: true }), 1);
      await until(() => got.length === 3);
      const lost = once(sub, 'disconnect');
      await proxy.stop();
      await lost;
      await until(async () => ((await pub.subscribers('gap.ev')) as unknown[]).length === 0, 5000, 'routes dropped');
      for (let i = 4; i <= 6; i++) assert.equal(await pub.publish('gap.ev', i, { ack: true }), 0);
      const back = once(sub, 'reconnect');
      await proxy.start();
      await back;
      await until(async () => ((await pub.subscribers('gap.ev')) as unknown[]).length === 1, 5000, 'resubscribed');
      assert.equal(await pub.publish('gap.ev', 7, { ack: true }), 1);
      await until(() => got.length === 4);
      assert.deepEqual(got, [1, 2, 3, 7]);
      assert.deepEqual(
        gaps.map(({ stream: _s, ...g }) => g),
        [{ subscription: 'gap.ev', from: 'gap-pub', uri: 'gap.ev', missed: [4, 6] }],
      );
      assert.ok((gaps[0]?.stream ?? 0) > 0, 'the stream id the dispatcher gave the publishing connection');
    } finally {
      await sub.stop();
      await pub.stop();
      await proxy.stop();
      await d.stop();
    }
  });

  test('publishes refused with BUFFER_FULL are not reported as gaps', async () => {
    const d = await startDispatcher();
    const proxy = await new TcpProxy(d.address.port).start();
    const sub = await startNode(d, { statsIntervalMs: 0 });
    const pub = await startNode(proxy.url, {
      name: 'refused-pub',
      statsIntervalMs: 0,
      reconnect: { initialMs: 50, maxMs: 200 },
      offlineMaxMessages: 3,
    });
    try {
      const got: number[] = [];
      const gaps: GapEvent[] = [];
      sub.on('gap', (g) => gaps.push(g));
      await sub.subscribe('refused.ev', (n: number) => void got.push(n));
      assert.equal(await pub.publish('refused.ev', 1, { ack: true }), 1);
      const lost = once(pub, 'disconnect');
      await proxy.stop();
      await lost;
      for (let i = 2; i <= 4; i++) pub.publish('refused.ev', i); // buffered offline
      assert.throws(() => pub.publish('refused.ev', 99), { code: 'BUFFER_FULL' });
      await assert.rejects(pub.publish('refused.ev', 98, { ack: true }), { code: 'BUFFER_FULL' });
      const back = once(pub, 'reconnect');
      await proxy.start();
      await back;
      assert.equal(await pub.publish('refused.ev', 5, { ack: true }), 1);
      await until(() => got.length === 5);
      assert.deepEqual(got, [1, 2, 3, 4, 5]);
      assert.deepEqual(gaps, [], 'the refused ones were never sent, so nobody missed them');
    } finally {
      await sub.stop();
      await pub.stop();
      await proxy.stop();
      await d.stop();
    }
  });

  test('no false gaps: queue groups, direct mode, two URIs, a restarted publisher', async () => {
    const d = await startDispatcher();
    const a = await startNode(d, { statsIntervalMs: 0 });
    const b = await startNode(d, { statsIntervalMs: 0 });
    const all = await startNode(d, { statsIntervalMs: 0 });
    let pub = await startNode(d, { name: 'restarting-pub', statsIntervalMs: 0 });
    try {
      const gaps: GapEvent[] = [];
      for (const n of [a, b, all]) n.on('gap', (g) => gaps.push(g));
      let received = 0;
      await a.subscribe('nogap.work', () => void received++, { group: 'g' });
      await b.subscribe('nogap.work', () => void received++, { group: 'g' });
      await all.subscribe('nogap.>', () => void received++);
      for (let i = 0; i < 10; i++) await pub.publish('nogap.work', i, { ack: true });
      for (let i = 0; i < 10; i++) await pub.publish('nogap.other', i, { ack: true });
      for (let i = 0; i < 6; i++) await pub.publish('nogap.work', i, { ack: true, mode: 'direct' });
      for (let i = 0; i < 2; i++) await pub.publish('nogap.work', i, { ack: true });
      await pub.stop();
      pub = await startNode(d, { name: 'restarting-pub', statsIntervalMs: 0 });
      for (let i = 0; i < 3; i++) await pub.publish('nogap.work', i, { ack: true });
      await until(() => received === 10 * 2 + 10 + 6 + 2 * 2 + 3 * 2);
      assert.deepEqual(gaps, []);
    } finally {
      for (const n of [a, b, all, pub]) await n.stop();
      await d.stop();
    }
  });

  test('two publishers with the same name are two streams: no false gaps, nothing lost', async () => {
    const d = await startDispatcher();
    const sub = await startNode(d, { name: 'svc-sub', statsIntervalMs: 0 });
    // Announces every 100 ms interleave with the messages: they must not raise gaps either.
    const pubs = [
      await startNode(d, { name: 'svc', statsIntervalMs: 0, announceIntervalMs: 100 }),
      await startNode(d, { name: 'svc', statsIntervalMs: 0, announceIntervalMs: 100 }),
    ];
    try {
      const gaps: GapEvent[] = [];
      sub.on('gap', (g) => gaps.push(g));
      const got: unknown[] = [];
      await sub.subscribe('svc.ev', (n: unknown, info) => {
        assert.equal(info.from, 'svc');
        got.push(n);
      });
      // Uneven rounds: one runs ahead of the other, as two real services do.
      await Promise.all([
        publishMany(pubs[0] as Node, 'svc.ev', 2000, 50),
        publishMany(pubs[1] as Node, 'svc.ev', 2000, 7),
      ]);
      await until(() => got.length >= 4000, 10_000, 'every message');
      // A few announces from both after the last message: still no gap, and no handler call.
      await announcesPass(d, 4);
      assert.equal(got.length, 4000);
      assert.ok(got.every((n) => typeof n === 'number'));
      const sum = got.reduce((a: number, n) => a + (n as number), 0);
      assert.equal(sum, 2 * ((2000 * 2001) / 2), 'every number of both publishers');
      assert.deepEqual(gaps, []);
    } finally {
      for (const n of [sub, ...pubs]) await n.stop();
      await d.stop();
    }
  });

  test('a publisher that reconnects keeps its stream: what a subscriber missed meanwhile is a gap', async () => {
    const d = await startDispatcher();
    const subProxy = await new TcpProxy(d.address.port).start();
    const pubProxy = await new TcpProxy(d.address.port).start();
    const reconnect = { initialMs: 50, maxMs: 200 };
    const sub = await startNode(subProxy.url, { name: 'keep-sub', statsIntervalMs: 0, reconnect });
    // No announces: the gap must come from the numbers alone, on the stream kept across the reconnect.
    const pub = await startNode(pubProxy.url, {
      name: 'keep-pub',
      statsIntervalMs: 0,
      reconnect,
      announceIntervalMs: 0,
    });
    try {
      const got: number[] = [];
      const gaps: GapEvent[] = [];
      sub.on('gap', (g) => gaps.push(g));
      await sub.subscribe('keep.ev', (n: number) => void got.push(n));
      for (let i = 1; i <= 3; i++) assert.equal(await pub.publish('keep.ev', i, { ack: true }), 1);
      await until(() => got.length === 3);
      // The subscriber is away while 4..6 are published…
      const subLost = once(sub, 'disconnect');
      await subProxy.stop();
      await subLost;
      await until(async () => ((await pub.subscribers('keep.ev')) as unknown[]).length === 0, 5000, 'routes dropped');
      for (let i = 4; i <= 6; i++) assert.equal(await pub.publish('keep.ev', i, { ack: true }), 0);
      // …and the publisher's connection drops and is made again.
      const pubLost = once(pub, 'disconnect');
      await pubProxy.stop();
      await pubLost;
      const pubBack = once(pub, 'reconnect');
      await pubProxy.start();
      await pubBack;
      const subBack = once(sub, 'reconnect');
      await subProxy.start();
      await subBack;
      await until(async () => ((await pub.subscribers('keep.ev')) as unknown[]).length === 1, 5000, 'resubscribed');
      assert.equal(await pub.publish('keep.ev', 7, { ack: true }), 1);
      await until(() => got.length === 4);
      assert.deepEqual(got, [1, 2, 3, 7]);
      assert.deepEqual(
        gaps.map((g) => [g.from, g.uri, g.missed]),
        [['keep-pub', 'keep.ev', [4, 6]]],
      );
    } finally {
      await sub.stop();
      await pub.stop();
      await subProxy.stop();
      await pubProxy.stop();
      await d.stop();
    }
  });

  test('a subscriber that missed the end of a stream learns of it from the announce, with nothing more published', async () => {
    const d = await startDispatcher();
    const proxy = await new TcpProxy(d.address.port).start();
    const sub = await startNode(proxy.url, {
      name: 'tail-sub',
      statsIntervalMs: 0,
      reconnect: { initialMs: 50, maxMs: 200 },
    });
    const pub = await startNode(d, { name: 'tail-pub', statsIntervalMs: 0, announceIntervalMs: 200 });
    try {
      const got: unknown[] = [];
      const events: unknown[] = [];
      const gaps: GapEvent[] = [];
      sub.on('gap', (g) => gaps.push(g));
      sub.on('event', (_e, m) => void events.push(m));
      await sub.subscribe('tail.ev', (n: unknown) => void got.push(n));
      await sub.subscribe('tail.>'); // no handler: onEvent / 'event'
      for (let i = 1; i <= 3; i++) assert.equal(await pub.publish('tail.ev', i, { ack: true }), 2);
      await until(() => got.length === 3 && events.length === 3);
      const lost = once(sub, 'disconnect');
      await proxy.stop();
      await lost;
      await until(async () => ((await pub.subscribers('tail.ev')) as unknown[]).length === 0, 5000, 'routes dropped');
      for (let i = 4; i <= 5; i++) assert.equal(await pub.publish('tail.ev', i, { ack: true }), 0);
      const reconnectedAt = Date.now();
      await proxy.start();
      await until(() => gaps.length === 2, 3000, 'the announce to tell of the missed tail');
      const tookMs = Date.now() - reconnectedAt;
      assert.ok(tookMs < 3000 * WAIT_SCALE, `told within a few seconds (${tookMs} ms)`);
      assert.deepEqual(gaps.map((g) => [g.subscription, g.from, g.uri, g.missed]).sort(), [
        ['tail.>', 'tail-pub', 'tail.ev', [4, 5]],
        ['tail.ev', 'tail-pub', 'tail.ev', [4, 5]],
      ]);
      // More announces of the same number: told once, and no handler ever sees one.
      await announcesPass(d, 3);
      assert.equal(gaps.length, 2);
      assert.deepEqual(got, [1, 2, 3]);
      assert.deepEqual(events, [1, 2, 3]);
    } finally {
      await sub.stop();
      await pub.stop();
      await proxy.stop();
      await d.stop();
    }
  });
});

describe('announces', () => {
  test('a publisher announces right after its reconnect: a subscriber that missed the tail is told', async () => {
    const d = await startDispatcher();
    const subProxy = await new TcpProxy(d.address.port).start();
    const pubProxy = await new TcpProxy(d.address.port).start();
    const reconnect = { initialMs: 50, maxMs: 200 };
    const sub = await startNode(subProxy.url, { name: 'rea-sub', statsIntervalMs: 0, reconnect });
    // An interval far past the test: the only announce is the one made on reconnecting.
    const pub = await startNode(pubProxy.url, {
      name: 'rea-pub',
      statsIntervalMs: 0,
      reconnect,
      announceIntervalMs: 600_000,
    });
    try {
      const got: number[] = [];
      const gaps: GapEvent[] = [];
      sub.on('gap', (g) => gaps.push(g));
      await sub.subscribe('rea.ev', (n: number) => void got.push(n));
      for (let i = 1; i <= 3; i++) assert.equal(await pub.publish('rea.ev', i, { ack: true }), 1);
      await until(() => got.length === 3);
      const subLost = once(sub, 'disconnect');
      await subProxy.stop();
      await subLost;
      await until(async () => ((await pub.subscribers('rea.ev')) as unknown[]).length === 0, 5000, 'routes dropped');
      for (let i = 4; i <= 5; i++) assert.equal(await pub.publish('rea.ev', i, { ack: true }), 0);
      const subBack = once(sub, 'reconnect');
      await subProxy.start();
      await subBack;
      await until(async () => ((await pub.subscribers('rea.ev')) as unknown[]).length === 1, 5000, 'resubscribed');
      assert.equal(gaps.length, 0, 'nothing has told it yet');
      const before = d.stats.announces;
      const pubLost = once(pub, 'disconnect');
      await pubProxy.stop();
      await pubLost;
      await pubProxy.start();
      await until(() => gaps.length === 1, 3000, 'the announce made on reconnecting');
      assert.deepEqual(
        gaps.map((g) => [g.from, g.uri, g.missed]),
        [['rea-pub', 'rea.ev', [4, 5]]],
      );
      assert.equal(d.stats.announces, before + 1);
      assert.deepEqual(got, [1, 2, 3]);
    } finally {
      await sub.stop();
      await pub.stop();
      await subProxy.stop();
      await pubProxy.stop();
      await d.stop();
    }
  });

  test('in a node collection: members that got a message in-process see its announces as no gap', async () => {
    const d = await startDispatcher();
    const m1 = new Node({ name: 'coll-pub', statsIntervalMs: 0, announceIntervalMs: 100 });
    const m2 = new Node({ name: 'coll-sub', statsIntervalMs: 0 });
    const coll = new NodeCollection({ dispatcherUrl: d.url, name: 'gap-coll' });
    coll.add(m1);
    coll.add(m2);
    await coll.start();
    const outside = await startNode(d, { name: 'outside-sub', statsIntervalMs: 0 });
    try {
      const gaps: GapEvent[] = [];
      const got: unknown[] = [];
      for (const n of [m2, outside]) {
        n.on('gap', (g) => gaps.push(g));
        await n.subscribe('coll.ev', (m: unknown) => void got.push(m));
      }
      for (let i = 1; i <= 5; i++) m1.publish('coll.ev', i);
      await until(() => got.length === 10);
      await announcesPass(d, 3);
      for (let i = 6; i <= 8; i++) m1.publish('coll.ev', i);
      await until(() => got.length === 16);
      await announcesPass(d, 3);
      assert.equal(got.length, 16, 'no announce reached a handler');
      assert.deepEqual(gaps, []);
    } finally {
      await outside.stop();
      await coll.stop();
      await d.stop();
    }
  });

  test('announceIntervalMs: 0 or at least 100', () => {
    assert.throws(() => new Node({ announceIntervalMs: 50 }), { code: 'BAD_OPTION' });
    assert.throws(() => new Node({ announceIntervalMs: -1 }), { code: 'BAD_OPTION' });
    assert.doesNotThrow(() => new Node({ announceIntervalMs: 0 }));
  });
});

describe('stream ids', () => {
  test('a resume token keeps the stream only for the same name and identity, and only once closed', () => {
    const ids = new StreamIds();
    const first = ids.open(1, undefined, 'a', null);
    assert.deepEqual([first.stream, first.resumed], [1, false]);
    assert.equal(ids.open(2, first.token, 'a', null).stream, 2, 'still live: not resumed');
    ids.closed(first, 'a', null);
    assert.equal(ids.open(3, first.token, 'b', null).stream, 3, 'another name');
    assert.equal(ids.open(4, first.token, 'a', 'someone-else').stream, 4, 'another identity');
    assert.equal(ids.open(5, 'made-up', 'a', null).stream, 5, 'an unknown token');
    const again = ids.open(6, first.token, 'a', null);
    assert.deepEqual([again.stream, again.resumed, again.token], [1, true, first.token]);
    assert.equal(ids.open(7, first.token, 'a', null).stream, 7, 'held by a live connection again');
  });

  test('resume tokens are bounded: the last 10,000 closed connections, for 10 minutes', (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    const ids = new StreamIds();
    const grants = [];
    for (let id = 1; id <= 10_001; id++) {
      const grant = ids.open(id, undefined, 'n', null);
      ids.closed(grant, 'n', null);
      grants.push(grant);
    }
    assert.equal(ids.resumable, 10_000);
    assert.equal(ids.open(20_000, grants[0]?.token, 'n', null).resumed, false, 'the oldest was forgotten');
    t.mock.timers.tick(10 * 60_000);
    assert.equal(ids.open(20_001, grants[1]?.token, 'n', null).stream, 2, 'still within 10 minutes');
    t.mock.timers.tick(1);
    assert.equal(ids.open(20_002, grants[2]?.token, 'n', null).resumed, false, 'past 10 minutes');
  });
});

const natsSkip =
  NatsServer.find() !== null || process.env.NODESET_CI
    ? false
    : 'nats-server is not installed (apt-get install nats-server)';

describe('gaps across hosts', { skip: natsSkip }, () => {
  test('two same-named publishers on host A are two streams at host B', async () => {
    const nats = await new NatsServer().start();
    const links = [new NatsFederation({ servers: [nats.url] }), new NatsFederation({ servers: [nats.url] })];
    const a = await new Dispatcher({ port: 0, hostName: 'gapA' }, links[0]).start();
    const b = await new Dispatcher({ port: 0, hostName: 'gapB' }, links[1]).start();
    const nodes: Node[] = [];
    try {
      await until(() => links.every((l) => l.hosts.length === 1), 5000, 'host directory');
      const sub = await startNode(b, { name: 'far-sub', statsIntervalMs: 0 });
      nodes.push(sub);
      const gaps: GapEvent[] = [];
      sub.on('gap', (g) => gaps.push(g));
      let got = 0;
      const froms = new Set<string>();
      await sub.subscribe('far.ev', (_n, info) => {
        froms.add(info.from);
        got++;
      });
      const pubs = [
        await startNode(a, { name: 'svc', statsIntervalMs: 0 }),
        await startNode(a, { name: 'svc', statsIntervalMs: 0 }),
      ];
      nodes.push(...pubs);
      await Promise.all([
        publishMany(pubs[0] as Node, 'gapB/far.ev', 300, 20),
        publishMany(pubs[1] as Node, 'gapB/far.ev', 300, 3),
      ]);
      await until(() => got >= 600, 10_000, 'every message');
      assert.equal(got, 600);
      assert.deepEqual([...froms], ['svc@gapA']);
      assert.deepEqual(gaps, []);
    } finally {
      for (const n of nodes) await n.stop();
      await a.stop();
      await b.stop();
      await nats.stop();
    }
  });
});
