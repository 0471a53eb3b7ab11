import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import type { Dispatcher, Node, OverflowEvent } from '../src/index.js';
import { startDispatcher, startNode, until } from './helpers.js';

/** A handler that holds every message until `release()`. */
function gate() {
  let open!: () => void;
  let opened = new Promise<void>((r) => (open = r));
  return {
    wait: () => opened,
    release: () => {
      open();
      opened = Promise.resolve();
    },
  };
}

describe('per-subscription queues and in-flight limits', () => {
  let dispatcher: Dispatcher;
  let pub: Node;
  const nodes: Node[] = [];
  const node = async () => {
    const n = await startNode(dispatcher, { statsIntervalMs: 0 });
    nodes.push(n);
    return n;
  };

  before(async () => {
    dispatcher = await startDispatcher();
    pub = await node();
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await dispatcher.stop();
  });

  test('by default async handlers of one subscription run one at a time, in order', async () => {
    const sub = await node();
    const done: number[] = [];
    let running = 0;
    let peak = 0;
    await sub.subscribe('order.kept', async (n: number) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, (n * 7) % 5));
      done.push(n);
      running--;
    });
    for (let i = 0; i < 20; i++) pub.publish('order.kept', i);
    await until(() => done.length === 20);
    assert.deepEqual(
      done,
      Array.from({ length: 20 }, (_, i) => i),
    );
    assert.equal(peak, 1);
  });

  test('once unsubscribe() resolves, its handler is never called again; what was queued is dropped and counted', async () => {
    const sub = await node();
    const g = gate();
    const calls: number[] = [];
    await sub.subscribe('unsub.queued', async (n: number) => {
      calls.push(n);
      await g.wait();
    });
    let barrier = false;
    await sub.subscribe('unsub.barrier', () => {
      barrier = true;
    });
    for (let i = 0; i < 5; i++) pub.publish('unsub.queued', i);
    pub.publish('unsub.barrier', 0);
    // The first runs and waits at the gate; the barrier, sent after the other four on the
    // same connection, says they wait in the subscription's queue.
    await until(() => calls.length === 1 && barrier);
    const stats = new Promise<{ droppedUnsubscribed: number }>((resolve) => {
      void pub.subscribe('$nodeset.stats', (m: { node: string; droppedUnsubscribed: number }) => {
        if (m.node === sub.name) resolve(m);
      });
    });
    await sub.unsubscribe('unsub.queued');
    g.release();
    // Turns of the event loop for any queued handler that would still start.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.deepEqual(calls, [0]);
    await sub.publishStats();
    assert.equal((await stats).droppedUnsubscribed, 4);
  });

  test('maxInFlight bounds concurrency; a slow subscription does not stall another on the same connection', async () => {
    const sub = await node();
    const g = gate();
    let running = 0;
    let peak = 0;
    let slowDone = 0;
    let fastDone = 0;
    await sub.subscribe(
      'flow.slow',
      async () => {
        running++;
        peak = Math.max(peak, running);
        await g.wait();
        running--;
        slowDone++;
      },
      { maxInFlight: 3 },
    );
    await sub.subscribe('flow.fast', () => void fastDone++);
    for (let i = 0; i < 10; i++) pub.publish('flow.slow', i);
    for (let i = 0; i < 10; i++) pub.publish('flow.fast', i);
    await until(() => fastDone === 10);
    assert.equal(peak, 3);
    assert.equal(slowDone, 0);
    g.release();
    await until(() => slowDone === 10);
  });

  test('drop-newest and drop-oldest keep the queue bounded; each overflow is counted and emitted', async () => {
    for (const policy of ['drop-newest', 'drop-oldest'] as const) {
      const sub = await node();
      const g = gate();
      const handled: number[] = [];
      const overflows: OverflowEvent[] = [];
      sub.on('overflow', (e) => overflows.push(e));
      await sub.subscribe(
        `drop.${policy}`,
        async (n: number) => {
          await g.wait();
          handled.push(n);
        },
        { queueLimit: 5, overflow: policy },
      );
      for (let i = 0; i < 20; i++) await pub.publish(`drop.${policy}`, i, { ack: true });
      await until(() => overflows.length === 14);
      g.release();
      await until(() => handled.length === 6);
      const expected = policy === 'drop-newest' ? [0, 1, 2, 3, 4, 5] : [0, 15, 16, 17, 18, 19];
      assert.deepEqual(handled, expected, policy);
      assert.ok(overflows.every((e) => e.policy === policy && e.dropped === 1));
    }
  });

  test('block pauses the connection until the queue has room; nothing is lost', async () => {
    const sub = await node();
    const g = gate();
    const handled: number[] = [];
    const overflows: OverflowEvent[] = [];
    sub.on('overflow', (e) => overflows.push(e));
    await sub.subscribe(
      'flow.block',
      async (n: number) => {
        await g.wait();
        handled.push(n);
      },
      { queueLimit: 3, overflow: 'block' },
    );
    for (let i = 0; i < 30; i++) pub.publish('flow.block', i);
    await until(() => overflows.length >= 1);
    assert.equal(overflows[0]?.dropped, 0);
    g.release();
    await until(() => handled.length === 30, 5000);
    assert.deepEqual(
      handled,
      Array.from({ length: 30 }, (_, i) => i),
    );
  });

  test('disconnect drops the connection, which comes back by itself', async () => {
    const sub = await node();
    const g = gate();
    await sub.subscribe('flow.disconnect', () => g.wait(), { queueLimit: 2, overflow: 'disconnect' });
    const back = once(sub, 'reconnect');
    for (let i = 0; i < 10; i++) pub.publish('flow.disconnect', i);
    await back;
    g.release();
    assert.ok(sub.connected);
  });

  test('with the default bounds a publisher may queue 1,000 messages of 16 KiB between drain() calls', async () => {
    const sub = await node();
    let received = 0;
    let bytes = 0;
    await sub.subscribe('flow.big', (m: Buffer) => {
      received++;
      bytes += m.length;
    });
    const payload = Buffer.alloc(16 * 1024, 7);
    for (let round = 0; round < 2; round++) {
      // 16 MiB handed to publish() in one synchronous loop: within the live connection's bound.
      for (let i = 0; i < 1000; i++) pub.publish('flow.big', payload);
      assert.ok(pub.pendingBytes > 8 * 1024 * 1024, `${pub.pendingBytes} bytes queued`);
      await pub.drain();
    }
    await until(() => received === 2000, 30_000, '2,000 messages delivered');
    assert.equal(bytes, 2000 * payload.length);
  });

  test('past maxPendingBytes on a live connection, publish throws BUFFER_FULL and drain() lets it go on', async () => {
    const small = await startNode(dispatcher, { statsIntervalMs: 0, maxPendingBytes: 256 * 1024 });
    nodes.push(small);
    const payload = Buffer.alloc(16 * 1024);
    let accepted = 0;
    let refused: unknown;
    try {
      for (let i = 0; i < 1000; i++) {
        small.publish('flow.bounded', payload);
        accepted++;
      }
    } catch (err) {
      refused = err;
    }
    assert.equal((refused as { code?: string } | undefined)?.code, 'BUFFER_FULL');
    assert.ok(accepted >= 16 && accepted < 1000, `${accepted} accepted before the bound`);
    await small.drain();
    small.publish('flow.bounded', payload);
  });
});
