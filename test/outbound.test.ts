// The dispatcher's outbound queue seen from its connections: a PONG keeps its
// place behind what was routed before the PING, copies are counted once and
// only when lost, a pushback hold is released even when no 'drain' comes, a
// node that says GOODBYE still gets what was routed to it before, and drain()
// resolves once a small write that waited is written.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { encodeFrame, FrameKind, PROTOCOL_VERSION, PubFlag } from '../src/protocol/frames.js';
import { startDispatcher, startNode, until } from './helpers.js';
import { RawClient } from './raw-client.js';

describe('outbound queue', () => {
  test('a PONG answers a PING only after the MSGs its earlier PUB routed to the same connection', async () => {
    const d = await startDispatcher();
    const raw = await RawClient.connect(d.address.port, 'self');
    try {
      raw.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'echo', r: 1 }));
      await raw.next((f) => f.kind === FrameKind.OK);
      raw.frames.length = 0;
      // One write: a publish to its own subscription, then a PING (the classic "flush" barrier).
      raw.send(
        Buffer.concat([encodeFrame(FrameKind.PUB, ['echo', 0, 0, 0], Buffer.from('x')), encodeFrame(FrameKind.PING)]),
      );
      await until(
        () => raw.frames.some((f) => f.kind === FrameKind.MSG) && raw.frames.some((f) => f.kind === FrameKind.PONG),
        2000,
        'the MSG and the PONG',
      );
      const order = raw.frames.map((f) =>
        f.kind === FrameKind.MSG ? 'MSG' : f.kind === FrameKind.PONG ? 'PONG' : f.kind,
      );
      assert.deepEqual(order, ['MSG', 'PONG']);
    } finally {
      raw.destroy();
      await d.stop();
    }
  });

  test('a queue-group copy refused by a member cut off, then taken by another member, is not counted as dropped', async () => {
    const d = await startDispatcher({ maxPendingBytes: 256 * 1024, closeTimeoutMs: 500 });
    const stuck = await RawClient.connect(d.address.port, 'stuck');
    const good = await RawClient.connect(d.address.port, 'good');
    const pub = await RawClient.connect(d.address.port, 'pub');
    try {
      for (const c of [stuck, good]) {
        c.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'work', group: 'g', r: 1 }));
        await c.next((f) => f.kind === FrameKind.OK);
      }
      stuck.socket.pause();
      const payload = Buffer.alloc(16 * 1024, 7);
      let cutAnswer: Record<string, unknown> | undefined;
      for (let r = 1; d.stats.slowConsumers === 0 && r < 20_000; r++) {
        pub.send(encodeFrame(FrameKind.PUB, ['work', PubFlag.ACK, r, 1], payload));
        const ok = await pub.next((f) => f.kind === FrameKind.OK && (f.header as { r: number }).r === r);
        if (d.stats.slowConsumers > 0) cutAnswer = ok.header as Record<string, unknown>;
        good.frames.length = 0;
      }
      assert.equal(d.stats.slowConsumers, 1);
      // The publish that found 'stuck' over its limit went to 'good' (n: 1): no copy of it was lost.
      assert.equal(cutAnswer?.n, 1);
      assert.equal(cutAnswer?.dropped, undefined, `answer ${JSON.stringify(cutAnswer)}`);
    } finally {
      stuck.destroy();
      good.destroy();
      pub.destroy();
      await d.stop();
    }
  });

  test('the cut counts as dropped only what it discards, not what the socket still delivers (small messages)', async () => {
    const d = await startDispatcher({ maxPendingBytes: 256 * 1024, closeTimeoutMs: 5000 });
    const stuck = await RawClient.connect(d.address.port, 'stuck');
    const pub = await RawClient.connect(d.address.port, 'pub');
    try {
      stuck.answerPings = false;
      stuck.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'small', r: 1 }));
      await stuck.next((f) => f.kind === FrameKind.OK);
      stuck.socket.pause();
      const payload = Buffer.alloc(100, 1);
      const frame = encodeFrame(FrameKind.PUB, ['small', 0, 0, 0], payload);
      const batch = Buffer.concat(Array.from({ length: 500 }, () => frame));
      let sent = 0;
      for (let r = 1; d.stats.slowConsumers === 0 && r < 2000; r++) {
        // 500 publishes, then an acked one: its OK says all before it were routed.
        pub.send(batch);
        pub.send(encodeFrame(FrameKind.PUB, ['small', PubFlag.ACK, r, 0], payload));
        await pub.next((f) => f.kind === FrameKind.OK && (f.header as { r: number }).r === r);
        sent += 501;
      }
      assert.equal(d.stats.slowConsumers, 1);
      const dropped = d.stats.dropped;
      stuck.socket.resume();
      await stuck.waitClosed(20_000);
      const got = stuck.frames.filter((f) => f.kind === FrameKind.MSG).length;
      assert.equal(stuck.frames.at(-1)?.kind, FrameKind.ERROR, 'the notice is the last frame');
      // Every copy is read or counted, once: read + dropped should be what was sent (the one
      // that found the queue over the limit is counted and not read).
      assert.ok(got + dropped >= sent - 500, `${got} read + ${dropped} dropped of ${sent}`);
      assert.ok(
        got + dropped <= sent + 2,
        `${got} read + ${dropped} dropped = ${got + dropped}: ${got + dropped - sent} copies over the ${sent} sent counted as dropped yet delivered`,
      );
    } finally {
      stuck.destroy();
      pub.destroy();
      await d.stop();
    }
  });

  test('a pushback hold taken while the queue is only the unflushed buffer is released (no drain ever comes)', async () => {
    // maxPendingBytes 128 KiB: the pushback high-water mark follows at 32 KiB, under the 64 KiB flush threshold.
    const d = await startDispatcher({ maxPendingBytes: 128 * 1024, maxPushbackMs: 1500, heartbeatIntervalMs: 500 });
    const sub = await RawClient.connect(d.address.port, 'reader');
    const pub = await RawClient.connect(d.address.port, 'pub');
    try {
      sub.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'pb', slow: 'pushback', r: 1 }));
      await sub.next((f) => f.kind === FrameKind.OK);
      // One write of 48 publishes of 1 KiB: routed in one turn, so the reader's buffer holds 48 KiB before its flush.
      const frame = encodeFrame(FrameKind.PUB, ['pb', 0, 0, 0], Buffer.alloc(1024, 5));
      pub.send(
        Buffer.concat([
          ...Array.from({ length: 48 }, () => frame),
          encodeFrame(FrameKind.PUB, ['pb', PubFlag.ACK, 1, 0], Buffer.from('a')),
        ]),
      );
      await pub.next((f) => f.kind === FrameKind.OK && (f.header as { r: number }).r === 1);
      // The reader reads everything at once (a fast consumer, nothing left queued).
      await until(() => sub.frames.filter((f) => f.kind === FrameKind.MSG).length === 49, 2000, 'all 49 read');
      assert.equal(d.stats.pushbacks, 1, 'the publisher was held');
      // Its next publish should be read once the reader's queue is empty (it is, at once).
      pub.send(encodeFrame(FrameKind.PUB, ['pb', PubFlag.ACK, 2, 0], Buffer.from('b')));
      const answered = await pub
        .next((f) => f.kind === FrameKind.OK && (f.header as { r: number }).r === 2, 1000)
        .then(
          () => true,
          () => false,
        );
      assert.ok(answered, 'the publisher reads again once the reader has read everything');
      assert.equal(d.stats.slowConsumers, 0, 'the fast reader is not cut');
    } finally {
      sub.destroy();
      pub.destroy();
      await d.stop();
    }
  });

  test('after GOODBYE, a publish routed to the leaving node does not destroy what was queued for it before', async () => {
    const d = await startDispatcher({ maxPendingBytes: 64 * 1024 * 1024, closeTimeoutMs: 10_000 });
    const leaving = await RawClient.connect(d.address.port, 'leaving');
    const pub = await RawClient.connect(d.address.port, 'pub');
    try {
      leaving.answerPings = false;
      leaving.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'bye', r: 1 }));
      await leaving.next((f) => f.kind === FrameKind.OK);
      leaving.socket.pause();
      // Enough that the dispatcher holds a backlog for it (the kernel's buffers are full).
      const frame = encodeFrame(FrameKind.PUB, ['bye', 0, 0, 0], Buffer.alloc(4096, 3));
      const batch = Buffer.concat(Array.from({ length: 256 }, () => frame));
      let routed = 0;
      for (let r = 1; r <= 16; r++) {
        pub.send(batch);
        pub.send(encodeFrame(FrameKind.PUB, ['bye', PubFlag.ACK, r, 0], Buffer.alloc(4096, 3)));
        await pub.next((f) => f.kind === FrameKind.OK && (f.header as { r: number }).r === r);
        routed += 257;
      }
      // It says GOODBYE (it still reads what was sent before); the dispatcher lists it no more.
      leaving.send(encodeFrame(FrameKind.GOODBYE, {}));
      await until(() => !d.nodes().some((n) => n.name === 'leaving'), 5000, 'the GOODBYE handled');
      // It reads a little, enough for the socket to drain: the dispatcher writes its backlog, then ends.
      leaving.socket.resume();
      await until(() => leaving.frames.length >= 300, 5000, 'some read');
      leaving.socket.pause();
      pub.send(encodeFrame(FrameKind.PUB, ['bye', PubFlag.ACK, 100, 0], Buffer.from('late')));
      const late = await pub.next((f) => f.kind === FrameKind.OK && (f.header as { r: number }).r === 100);
      // Its routes went with its GOODBYE: the late publish is not routed to it.
      assert.deepEqual(late.header, { r: 100, n: 0 });
      leaving.socket.resume();
      await leaving.waitClosed(20_000);
      const got = leaving.frames.filter((f) => f.kind === FrameKind.MSG).length;
      assert.ok(got >= routed, `read ${got} of the ${routed} MSGs routed to it before its GOODBYE`);
    } finally {
      leaving.destroy();
      pub.destroy();
      await d.stop();
    }
  });

  test("a dispatcher event's copy refused by a closing connection is counted as dropped, as a node's publish is", async () => {
    const d = await startDispatcher({ closeTimeoutMs: 10_000 });
    const closing = await RawClient.connect(d.address.port, 'closing');
    const pub = await RawClient.connect(d.address.port, 'pub');
    let late: RawClient | undefined;
    try {
      closing.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: '$nodeset.node.joined', r: 1 }));
      await closing.next((f) => f.kind === FrameKind.OK);
      closing.send(encodeFrame(FrameKind.SUB, { sid: 2, uri: 'user.event', r: 2 }));
      await closing.next((f) => f.kind === FrameKind.OK);
      // A fatal protocol error: the session is closing (its routes stay until the socket closes); it reads nothing more.
      closing.socket.pause();
      closing.send(Buffer.from([0, 0, 0, 1, 0]));
      await until(() => d.stats.errorsSent > 0, 2000, 'the fatal error');
      // A node's publish to it: the refused copy is counted.
      pub.send(encodeFrame(FrameKind.PUB, ['user.event', PubFlag.ACK, 1, 0], Buffer.from('u')));
      const ok = await pub.next((f) => f.kind === FrameKind.OK);
      assert.deepEqual(ok.header, { r: 1, n: 0, dropped: 1 });
      assert.equal(d.stats.dropped, 1);
      // The dispatcher's own event (presence here; last wills go the same way): refused alike, and counted.
      pub.send(encodeFrame(FrameKind.SUB, { sid: 9, uri: '$nodeset.node.joined', r: 9 }));
      await pub.next((f) => f.kind === FrameKind.OK && (f.header as { r: number }).r === 9);
      late = await RawClient.connect(d.address.port, 'late');
      // Published: the healthy subscriber gets it.
      await pub.next((f) => f.kind === FrameKind.MSG);
      assert.equal(d.stats.dropped, 2, 'the joined event refused by the closing connection is counted');
    } finally {
      closing.destroy();
      pub.destroy();
      late?.destroy();
      await d.stop();
    }
  });

  test('node.drain() resolves once a write below the high-water mark that waited on a full kernel buffer is written', async () => {
    // A dispatcher that answers HELLO, then stops reading until told.
    let peer: Socket | undefined;
    const server = createServer((socket) => {
      peer = socket;
      socket.once('data', () => {
        socket.write(
          encodeFrame(FrameKind.WELCOME, { v: PROTOCOL_VERSION, host: 'fake', id: 1, hb: 0, maxPayload: 1 << 20 }),
        );
        socket.pause();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const node = await startNode(`nodeset://127.0.0.1:${port}`, { statsIntervalMs: 0 });
    try {
      // One small publish per turn until one waits in the socket: the kernel is full, the socket holds
      // less than its high-water mark (so write() returned true and no 'drain' is owed).
      const body = 'x'.repeat(1000);
      for (let i = 0; i < 100_000 && node.pendingBytes === 0; i++) {
        node.publish('fill', body);
        await new Promise((r) => setImmediate(r));
      }
      assert.ok(node.pendingBytes > 0 && node.pendingBytes < 16 * 1024, `pending ${node.pendingBytes}`);
      const drained = node.drain().then(() => true);
      peer?.resume(); // the dispatcher reads again: everything goes out
      await until(() => node.pendingBytes === 0, 5000, 'the write to complete');
      const resolved = await Promise.race([drained, new Promise((r) => setTimeout(() => r(false), 1000))]);
      assert.equal(resolved, true, 'drain() still waits 1 s after pendingBytes reached 0');
    } finally {
      await Promise.race([node.stop(), new Promise((r) => setTimeout(r, 2000))]);
      peer?.destroy();
      server.close();
    }
  });
});
