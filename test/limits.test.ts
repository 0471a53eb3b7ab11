import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { PublishDroppedEvent, SlowConsumerEvent } from '../src/index.js';
import { encodeFrame, FrameKind, PROTOCOL_VERSION, PubFlag } from '../src/protocol/frames.js';
import { startDispatcher, startNode, until } from './helpers.js';
import { RawClient } from './raw-client.js';

describe('limits', () => {
  test('half-open connections and handshake floods are bounded; a well-behaved node is served throughout', async (t) => {
    const d = await startDispatcher({ handshakeTimeoutMs: 1000, maxConnections: 40 });
    const sub = await startNode(d);
    const pub = await startNode(d);
    // The dispatcher runs in this process: sampled once per event-loop turn, the
    // session count's peak is exact (sessions are only added while accepting).
    let peak = 0;
    let sampling = true;
    const sample = () => {
      peak = Math.max(peak, d.connectionCount);
      if (sampling) setImmediate(sample);
    };
    sample();
    try {
      let got = 0;
      await sub.subscribe('steady', () => void got++);
      const hello = encodeFrame(FrameKind.HELLO, { v: PROTOCOL_VERSION, name: 'slow' });
      const raws = await Promise.all(Array.from({ length: 100 }, () => RawClient.connect(d.address.port, false)));
      raws.forEach((raw, i) => {
        if (i % 3 === 1) raw.send(Buffer.from([0, 0])); // half a length prefix
        if (i % 3 === 2) raw.send(hello.subarray(0, hello.length - 1)); // all but the last byte of HELLO
      });
      // Meanwhile the good pair keeps talking.
      for (let i = 0; i < 20; i++) assert.equal(await pub.publish('steady', i, { ack: true }), 1);
      await until(() => raws.every((r) => r.closed), 5000, 'every half-open connection closed');
      // How many are refused depends on how fast the 100 connect against the
      // handshake timeout; the bound itself does not.
      t.diagnostic(`${d.stats.connectionsRefused} refused over the limit; at most ${peak} sessions at once`);
      assert.ok(peak <= 40, `${peak} sessions at once, limit 40`);
      assert.ok(d.stats.connectionsRefused > 0, 'connections over the limit were refused');
      await until(() => d.connectionCount === 2, 5000, 'the dispatcher to drop every half-open session');
      assert.equal(await pub.publish('steady', 'after', { ack: true }), 1);
      await until(() => got === 21);
    } finally {
      sampling = false;
      await sub.stop();
      await pub.stop();
      await d.stop();
    }
  });

  test('subscriptions per connection are limited', async () => {
    const d = await startDispatcher({ maxSubscriptionsPerConnection: 3 });
    const n = await startNode(d);
    try {
      for (const e of ['a', 'b', 'c']) await n.subscribe(e);
      await assert.rejects(n.subscribe('d'), { code: 'LIMIT_EXCEEDED' });
      assert.ok(n.connected);
    } finally {
      await n.stop();
      await d.stop();
    }
  });

  test('a subscriber falling behind is warned once past half its limit, and again after its queue drained', async () => {
    const limit = 4 * 1024 * 1024;
    const d = await startDispatcher({ maxPendingBytes: limit });
    const sub = await startNode(d, { statsIntervalMs: 0 });
    const pub = await startNode(d, { statsIntervalMs: 0 });
    try {
      const warnings: SlowConsumerEvent[] = [];
      sub.on('slow-consumer', (e) => warnings.push(e));
      let received = 0;
      // About 1,000 messages of 16 KiB a second; a full queue stops its reading.
      await sub.subscribe(
        'behind',
        async () => {
          await new Promise((r) => setTimeout(r, 1));
          received++;
        },
        { queueLimit: 4, overflow: 'block' },
      );
      const payload = Buffer.alloc(16 * 1024, 2);
      let sent = 0;
      const burst = async (warned: number) => {
        // Faster than the subscriber, until the dispatcher has warned it (seen here in-process);
        // acknowledged in fours, so little is still on its way to the dispatcher when it stops.
        while (d.stats.slowWarnings < warned && sent < 5000) {
          await Promise.all([0, 1, 2, 3].map(() => pub.publish('behind', payload, { ack: true })));
          sent += 4;
        }
        await until(() => received === sent, 30_000, 'the subscriber to catch up').catch((err: Error) => {
          throw new Error(
            `${err.message}: received ${received} of ${sent}, warnings ${d.stats.slowWarnings}, cut ${d.stats.slowConsumers}`,
          );
        });
      };
      await burst(1);
      assert.equal(warnings.length, 1, 'told once');
      assert.ok(warnings[0]!.pendingBytes > limit / 2, `warned at ${warnings[0]!.pendingBytes} bytes`);
      assert.equal(warnings[0]!.limitBytes, limit);
      assert.equal(d.stats.slowConsumers, 0, 'warned, not cut');
      // Its queue drained while it caught up: the warning is armed again.
      await burst(2);
      assert.equal(warnings.length, 2);
      assert.equal(d.stats.slowWarnings, 2);
      assert.equal(d.stats.slowConsumers, 0);
    } finally {
      await sub.stop();
      await pub.stop();
      await d.stop();
    }
  });

  test('a subscriber that stops reading is cut off as a slow consumer; the others get everything', async () => {
    const maxPendingBytes = 512 * 1024;
    const d = await startDispatcher({ maxPendingBytes, closeTimeoutMs: 500 });
    const raw = await RawClient.connect(d.address.port, 'stuck');
    const good = await startNode(d);
    const pub = await startNode(d);
    try {
      raw.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'flood', r: 1 }));
      await raw.next((f) => f.kind === FrameKind.OK);
      raw.socket.pause();
      let received = 0;
      await good.subscribe('flood', () => void received++);
      const payload = Buffer.alloc(32 * 1024, 1);
      let peakPending = 0;
      const pendingFor = (name: string) => d.nodes().find((n) => n.name === name)?.pendingBytes ?? 0;
      let sent = 0;
      while (d.stats.slowConsumers === 0 && sent < 4000) {
        await pub.publish('flood', payload, { ack: true });
        sent++;
        peakPending = Math.max(peakPending, pendingFor('stuck'));
      }
      assert.equal(d.stats.slowConsumers, 1);
      assert.ok(peakPending <= maxPendingBytes + 64 * 1024 + payload.length, `peak pending ${peakPending}`);
      // What was queued for it and never written is counted, not lost silently.
      assert.ok(d.stats.droppedBytes >= maxPendingBytes, `${d.stats.droppedBytes} bytes counted as dropped`);
      await raw.waitClosed(3000);
      assert.ok(raw.closed);
      await until(() => received === sent, 5000, 'the good subscriber got every message');
      assert.equal(await pub.publish('flood', payload, { ack: true }), 1);
    } finally {
      raw.destroy();
      await good.stop();
      await pub.stop();
      await d.stop();
    }
  });
  test('messages lost with a cut connection are counted one by one, apart from the cut; the acked publish that met the cut says so', async () => {
    const maxPendingBytes = 256 * 1024;
    const d = await startDispatcher({ maxPendingBytes, closeTimeoutMs: 500 });
    const stuck = await RawClient.connect(d.address.port, 'stuck');
    const pub = await RawClient.connect(d.address.port, 'raw-pub');
    try {
      stuck.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'counted', r: 1 }));
      await stuck.next((f) => f.kind === FrameKind.OK);
      stuck.socket.pause();
      const payload = Buffer.alloc(16 * 1024, 2);
      let sent = 0;
      let cutAnswer: Record<string, unknown> | undefined;
      for (let r = 1; d.stats.slowConsumers === 0 && r < 20_000; r++) {
        pub.send(encodeFrame(FrameKind.PUB, ['counted', PubFlag.ACK, r, 1], payload));
        const ok = await pub.next((f) => f.kind === FrameKind.OK && (f.header as { r: number }).r === r);
        sent++;
        if (d.stats.slowConsumers > 0) cutAnswer = ok.header as Record<string, unknown>;
      }
      assert.equal(d.stats.slowConsumers, 1, 'one cut');
      // The publish that found the queue over its limit reached nobody, and its answer says a copy was dropped.
      assert.equal(cutAnswer?.n, 0);
      assert.equal(cutAnswer?.dropped, 1);
      // Every message is either in what the kernel took for the stuck reader, or counted as dropped.
      stuck.socket.resume();
      await stuck.waitClosed(10_000);
      const got = stuck.frames.filter((f) => f.kind === FrameKind.MSG).length;
      // It is told why, ahead of the queue that was discarded: the notice is the last frame it reads.
      const last = stuck.frames.at(-1);
      assert.equal(last?.kind, FrameKind.ERROR);
      const notice = last?.header as { code: string; fatal: boolean; pending: number; limit: number };
      assert.equal(notice.code, 'SLOW_CONSUMER');
      assert.equal(notice.fatal, true);
      assert.equal(notice.limit, maxPendingBytes);
      assert.ok(notice.pending > maxPendingBytes, `pending ${notice.pending}`);
      const dropped = d.stats.dropped;
      assert.ok(dropped > 1, `${dropped} messages counted, not one per cut`);
      assert.ok(got + dropped >= sent, `${got} read + ${dropped} dropped covers the ${sent} sent`);
      assert.ok(got + dropped <= sent + 2, `${got} read + ${dropped} dropped: at most one write over ${sent}`);
      assert.ok(d.stats.droppedBytes >= dropped * payload.length, `${d.stats.droppedBytes} bytes`);
      // An acked publish nobody subscribes to has nothing dropped.
      pub.send(encodeFrame(FrameKind.PUB, ['counted', PubFlag.ACK, 99_999, 1], payload));
      const after = await pub.next((f) => f.kind === FrameKind.OK && (f.header as { r: number }).r === 99_999);
      assert.deepEqual(after.header, { r: 99_999, n: 0 });
    } finally {
      stuck.destroy();
      pub.destroy();
      await d.stop();
    }
  });

  test('a node cut off as a slow consumer is told ahead of its discarded queue, then comes back', async () => {
    const maxPendingBytes = 256 * 1024;
    const d = await startDispatcher({ maxPendingBytes, closeTimeoutMs: 5000 });
    const sub = await startNode(d, { statsIntervalMs: 0 });
    const pub = await startNode(d, { statsIntervalMs: 0 });
    try {
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      // `block`: a full queue stops the node reading, so the dispatcher's queue for it grows to the cut.
      await sub.subscribe('behind', () => held, { queueLimit: 1, overflow: 'block' });
      const told: SlowConsumerEvent[] = [];
      sub.on('slow-consumer', (e) => told.push(e));
      const back = new Promise((r) => sub.once('reconnect', r));
      const lostCopies: PublishDroppedEvent[] = [];
      pub.on('dropped', (e) => lostCopies.push(e));
      const payload = Buffer.alloc(16 * 1024, 3);
      for (let i = 0; d.stats.slowConsumers === 0 && i < 10_000; i++)
        await pub.publish('behind', payload, { ack: true });
      assert.equal(d.stats.slowConsumers, 1);
      assert.ok(d.stats.dropped > 1, `${d.stats.dropped} dropped`);
      // The acked publish that met the cut resolved with 0 and told its publisher a copy was lost.
      assert.deepEqual(lostCopies, [{ uri: 'behind', delivered: 0, dropped: 1 }]);
      release();
      await until(() => told.some((e) => e.cut), 10_000, 'the cut notice');
      const cut = told.find((e) => e.cut) as SlowConsumerEvent;
      assert.equal(cut.limitBytes, maxPendingBytes);
      assert.ok(cut.pendingBytes > maxPendingBytes);
      await back;
      assert.equal(await pub.publish('behind', payload, { ack: true }), 1, 'subscribed again after the reconnect');
    } finally {
      await sub.stop();
      await pub.stop();
      await d.stop();
    }
  });
});
