// Subscriptions as objects (unsubscribe, drain, stats, async iteration with
// the queue bound as back-pressure, `await using`) and AbortSignal on start,
// request, acked publish, subscribe and drain; against a real dispatcher.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  type Delivered,
  type Dispatcher,
  defineMessage,
  Node,
  NodeCollection,
  type NodesetError,
  type OverflowEvent,
  type Subscription,
  z,
} from '../src/index.js';
import { Latch, startDispatcher, startNode, until } from './helpers.js';

/** An error with the ABORTED code. */
const aborted = (err: unknown): boolean => (err as NodesetError).code === 'ABORTED';

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('subscriptions as objects', () => {
  let dispatcher: Dispatcher;
  let pub: Node;
  let sub: Node;
  let collection: NodeCollection;

  before(async () => {
    dispatcher = await startDispatcher();
    pub = await startNode(dispatcher, { name: 'subs-pub', statsIntervalMs: 0 });
    sub = await startNode(dispatcher, { name: 'subs-sub', statsIntervalMs: 0 });
    collection = new NodeCollection({ dispatcherUrl: dispatcher.url, name: 'subs-collection' });
    await collection.start();
  });

  after(async () => {
    await pub.stop();
    await sub.stop();
    await collection.stop();
    await dispatcher.stop();
  });

  test('unsubscribe() stops delivery; stats count what was received and handled', async () => {
    const got: unknown[] = [];
    const s = await sub.subscribe('objects.unsub', (m) => {
      got.push(m);
    });
    assert.equal(s.uri, 'objects.unsub');
    assert.equal(await pub.publish('objects.unsub', 1, { ack: true }), 1);
    await until(() => got.length === 1, 5000, 'the first message');
    assert.deepEqual(s.stats, { received: 1, handled: 1, dropped: 0, queued: 0 });
    await s.unsubscribe();
    assert.equal(s.closed, true);
    assert.equal(await pub.publish('objects.unsub', 2, { ack: true }), 0);
    assert.deepEqual(got, [1]);
    assert.deepEqual(sub.subscriptions(), []);
    await s.unsubscribe(); // idempotent
  });

  test('subscribing again resolves with the same Subscription; node.unsubscribe() still works and closes it', async () => {
    const a = await sub.subscribe('objects.same', () => {});
    const b = await sub.subscribe('objects.same', () => {});
    assert.equal(a, b);
    await sub.unsubscribe('objects.same');
    assert.equal(a.closed, true);
    assert.equal(await pub.publish('objects.same', 1, { ack: true }), 0);
  });

  test('the async iterator yields messages in order; break unsubscribes', async () => {
    const s = await sub.subscribe<number>('objects.iter');
    const seen: Delivered<number>[] = [];
    const loop = (async () => {
      for await (const delivered of s) {
        seen.push(delivered);
        if (seen.length === 5) break;
      }
    })();
    for (let i = 1; i <= 8; i++) pub.publish('objects.iter', i);
    await loop;
    assert.deepEqual(
      seen.map((d) => d.message),
      [1, 2, 3, 4, 5],
    );
    assert.equal(seen[0]?.info.from, 'subs-pub');
    assert.equal(seen[0]?.info.uri, 'objects.iter');
    assert.equal(s.closed, true);
    assert.equal(await pub.publish('objects.iter', 9, { ack: true }), 0);
  });

  test('a subscription with a handler cannot be iterated, nor one iterated twice', async () => {
    const s = await sub.subscribe('objects.handled', () => {});
    assert.throws(() => s[Symbol.asyncIterator](), { code: 'BAD_OPTION' });
    await s.unsubscribe();
    const iterable = await sub.subscribe('objects.twice');
    iterable[Symbol.asyncIterator]();
    assert.throws(() => iterable[Symbol.asyncIterator](), { code: 'BAD_OPTION' });
    await iterable.unsubscribe();
  });

  test('typed messages: an iterated subscription checks its type; replyType checks a reply', async () => {
    const Order = defineMessage('Order', { id: z.string(), qty: z.number().default(1) });
    const Price = defineMessage('Price', { total: z.number() });
    const s = await sub.subscribe('objects.typed', undefined, { type: Order });
    const firstOrder = (async () => {
      for await (const { message } of s) return message; // message: Order
      return undefined;
    })();
    pub.publish('objects.typed', { id: 'A1' }, { type: Order });
    assert.deepEqual(await firstOrder, { id: 'A1', qty: 1 });
    const responder = await sub.respond('objects.price', (order) => ({ total: order.qty * 10 }), { type: Order });
    const price = await pub.request('objects.price', { id: 'A2', qty: 3 }, { type: Order, replyType: Price });
    assert.equal(price.total, 30);
    await assert.rejects(pub.request('objects.price', { id: 'A3' }, { type: Order, replyType: Order }), {
      code: 'VALIDATION',
    });
    await responder.unsubscribe();
  });

  test('node.unsubscribe() and node.stop() end an iteration', async () => {
    const s = await sub.subscribe('objects.end');
    const iterator = s[Symbol.asyncIterator]();
    const next = iterator.next();
    await sub.unsubscribe('objects.end');
    assert.deepEqual(await next, { done: true, value: undefined });
    const other = await startNode(dispatcher, { name: 'subs-stopping', statsIntervalMs: 0 });
    const s2 = await other.subscribe('objects.end');
    const next2 = s2[Symbol.asyncIterator]().next();
    await other.stop();
    assert.deepEqual(await next2, { done: true, value: undefined });
    assert.equal(s2.closed, true);
  });

  test('unsubscribe() during a drain ends the drain', async () => {
    const release = new Latch();
    const s = await sub.subscribe('objects.drain-unsub', () => release.wait());
    pub.publish('objects.drain-unsub', 1);
    pub.publish('objects.drain-unsub', 2);
    await until(() => s.stats.received === 2, 5000, 'two messages received');
    const draining = s.drain();
    await s.unsubscribe();
    await draining;
    assert.equal(s.closed, true);
    release.countDown();
  });

  test('await using unsubscribes at the end of the block', async () => {
    let held: Subscription | null = null;
    {
      await using s = await sub.subscribe('objects.using', () => {});
      held = s;
      assert.equal(await pub.publish('objects.using', 1, { ack: true }), 1);
    }
    assert.equal(held?.closed, true);
    assert.equal(await pub.publish('objects.using', 2, { ack: true }), 0);
  });

  test('back-pressure: a slow iterator fills the bounded queue, then drop-newest drops and counts', async () => {
    const overflows: OverflowEvent[] = [];
    const onOverflow = (e: OverflowEvent): void => {
      if (e.subscription === 'objects.slow') overflows.push(e);
    };
    sub.on('overflow', onOverflow);
    const s = await sub.subscribe<number>('objects.slow', undefined, { queueLimit: 2 });
    const iterator = s[Symbol.asyncIterator]();
    const first = iterator.next(); // the consumer holds message 1 and does not ask for more
    for (let i = 1; i <= 6; i++) pub.publish('objects.slow', i);
    await until(() => s.stats.received === 6, 5000, 'six messages received');
    assert.equal((await first).value?.message, 1);
    // One in the consumer's hands, two waiting in the queue, three dropped.
    assert.deepEqual(s.stats, { received: 6, handled: 0, dropped: 3, queued: 2 });
    assert.equal(overflows.length, 3);
    assert.deepEqual(overflows[0], { subscription: 'objects.slow', policy: 'drop-newest', dropped: 1 });
    // The consumer goes on: the queued ones come, in order.
    assert.equal((await iterator.next()).value?.message, 2);
    assert.equal((await iterator.next()).value?.message, 3);
    assert.deepEqual(s.stats, { received: 6, handled: 2, dropped: 3, queued: 0 });
    await iterator.return?.();
    assert.equal(s.closed, true);
    sub.off('overflow', onOverflow);
  });

  test('drain() waits until queued messages are handled, then unsubscribes', async () => {
    const release = new Latch();
    const handled: number[] = [];
    const started = new Latch();
    const s = await sub.subscribe<number>('objects.drain', async (m) => {
      started.countDown();
      await release.wait();
      handled.push(m);
    });
    for (let i = 1; i <= 3; i++) pub.publish('objects.drain', i);
    await until(() => s.stats.received === 3, 5000, 'three messages received');
    await started.wait();
    let drained = false;
    const draining = s.drain().then(() => {
      drained = true;
    });
    // The dispatcher sends it nothing more (a publish racing the UNSUB may still
    // reach it, and is handled too), but it is not removed while messages wait.
    let raced = 0;
    await until(
      async () => {
        if ((await pub.publish('objects.drain', 4, { ack: true })) === 0) return true;
        raced++;
        return false;
      },
      5000,
      'intake stopped',
    );
    assert.equal(drained, false);
    assert.equal(s.closed, false);
    release.countDown();
    await draining;
    assert.deepEqual(handled, [1, 2, 3, ...Array<number>(raced).fill(4)]);
    assert.deepEqual(s.stats, { received: 3 + raced, handled: 3 + raced, dropped: 0, queued: 0 });
    assert.equal(s.closed, true);
  });

  test('drain({ signal }): aborting removes it at once and rejects with ABORTED; the queue is dropped, counted', async () => {
    const release = new Latch();
    const s = await sub.subscribe('objects.drain-abort', () => release.wait());
    for (let i = 1; i <= 3; i++) pub.publish('objects.drain-abort', i);
    await until(() => s.stats.received === 3, 5000, 'three messages received');
    const controller = new AbortController();
    const draining = s.drain({ signal: controller.signal });
    controller.abort();
    await assert.rejects(draining, aborted);
    assert.equal(s.closed, true);
    assert.equal(s.stats.dropped, 2);
    release.countDown();
  });

  test('a collection member resolves with a Subscription that iterates and unsubscribes', async () => {
    const member = collection.add(new Node({ name: 'subs-member', statsIntervalMs: 0 }));
    await member.start();
    const s = await member.subscribe<number>('objects.member');
    const seen: number[] = [];
    const loop = (async () => {
      for await (const { message } of s) {
        seen.push(message);
        if (seen.length === 2) break;
      }
    })();
    pub.publish('objects.member', 1);
    pub.publish('objects.member', 2);
    await loop;
    assert.deepEqual(seen, [1, 2]);
    assert.equal(await pub.publish('objects.member', 3, { ack: true }), 0);
    await member.stop();
  });
});

describe('AbortSignal', () => {
  let dispatcher: Dispatcher;
  let node: Node;

  before(async () => {
    dispatcher = await startDispatcher();
    node = await startNode(dispatcher, { name: 'abort-node', statsIntervalMs: 0 });
  });

  after(async () => {
    await node.stop();
    await dispatcher.stop();
  });

  test('request: rejects with ABORTED at once; the late reply is ignored', async () => {
    const responder = await startNode(dispatcher, { name: 'abort-responder', statsIntervalMs: 0 });
    const asked = new Latch();
    const answer = new Latch();
    let replied = false;
    await responder.respond('abort.slow', async () => {
      asked.countDown();
      await answer.wait();
      replied = true;
      return 'late';
    });
    const controller = new AbortController();
    const started = Date.now();
    const pending = node.request('abort.slow', null, { signal: controller.signal, timeoutMs: 30_000 });
    await asked.wait();
    controller.abort(new Error('user gave up'));
    await assert.rejects(pending, (err: NodesetError) => {
      assert.equal(err.code, 'ABORTED');
      assert.equal((err.cause as Error).message, 'user gave up');
      return true;
    });
    assert.ok(Date.now() - started < 5000, 'rejected promptly');
    answer.countDown();
    await until(() => replied, 5000, 'the late reply');
    // The late reply went nowhere; the node goes on.
    await responder.respond('abort.fast', () => 'ok');
    assert.equal(await node.request('abort.fast'), 'ok');
    // An already aborted signal: nothing is sent.
    await assert.rejects(node.request('abort.fast', null, { signal: AbortSignal.abort() }), aborted);
    await responder.stop();
  });

  test('start: aborting stops retrying against a port with no dispatcher', async () => {
    const port = await closedPort();
    const lonely = new Node({ name: 'abort-start', dispatcherUrl: `nodeset://127.0.0.1:${port}`, startTimeoutMs: 0 });
    const controller = new AbortController();
    const starting = lonely.start({ signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    await assert.rejects(starting, aborted);
    // Stopped: no more retries, and it cannot be started again.
    await assert.rejects(lonely.start(), { code: 'CLOSED' });
    await assert.rejects(new Node({ dispatcherUrl: dispatcher.url }).start({ signal: AbortSignal.abort() }), aborted);
  });

  test('acked publish: rejects with ABORTED while the acknowledgement is awaited', async () => {
    // Never started: the publish waits in the offline buffer, its acknowledgement with it.
    const offline = new Node({ name: 'abort-offline', dispatcherUrl: dispatcher.url, ackTimeoutMs: 30_000 });
    const controller = new AbortController();
    const publishing = offline.publish('abort.pub', 1, { ack: true, signal: controller.signal });
    controller.abort();
    await assert.rejects(publishing, aborted);
    await offline.stop();
    // Already aborted: nothing is sent.
    const got: unknown[] = [];
    const listener = await node.subscribe('abort.pub', (m) => got.push(m));
    await assert.rejects(node.publish('abort.pub', 1, { ack: true, signal: AbortSignal.abort() }), aborted);
    // A signal that never aborts changes nothing.
    assert.equal(await node.publish('abort.pub', 2, { ack: true, signal: new AbortController().signal }), 1);
    await until(() => got.length === 1, 5000, 'the second publish');
    assert.deepEqual(got, [2]);
    await listener.unsubscribe();
  });

  test('subscribe: aborting unsubscribes; an aborted signal subscribes nothing', async () => {
    const controller = new AbortController();
    const got: unknown[] = [];
    const s = await node.subscribe('abort.sub', (m) => got.push(m), { signal: controller.signal });
    assert.equal(await node.publish('abort.sub', 1, { ack: true }), 1);
    controller.abort();
    await until(() => s.closed, 5000, 'closed on abort');
    await until(async () => (await node.publish('abort.sub', 2, { ack: true })) === 0, 5000, 'unsubscribed');
    await assert.rejects(
      node.subscribe('abort.none', () => {}, { signal: AbortSignal.abort() }),
      aborted,
    );
    assert.deepEqual(
      node.subscriptions().map((x) => x.uri),
      [],
    );
  });

  test('drain: rejects with ABORTED', async () => {
    await assert.rejects(node.drain({ signal: AbortSignal.abort() }), aborted);
    await node.drain({ signal: new AbortController().signal });
  });
});
