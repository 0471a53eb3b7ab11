// The dispatcher reads every accepted connection into one shared buffer
// (src/transport/shared-reads.ts): what it keeps past a read must be copied.
// These tests send payloads of every size class (small, around the zero-copy
// size, larger than one read) from several connections at once, to a
// subscriber that reads and to one that stalls (so what waits for it sits in
// the dispatcher's backlog while later reads overwrite the shared buffer).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import type { Node } from '../src/index.js';
import { encodeFrame, FrameKind, PROTOCOL_VERSION } from '../src/protocol/frames.js';
import { FrameSocket, ZERO_COPY_MIN_BYTES } from '../src/transport/frame-socket.js';
import { SHARED_READ_BYTES } from '../src/transport/shared-reads.js';
import { sparesTaken } from '../src/transport/spare-buffers.js';
import { listenTcp } from '../src/transport/tcp.js';
import { startDispatcher, startNode, until } from './helpers.js';
import { isMessage, RawClient } from './raw-client.js';

const SIZES = [
  3,
  100,
  ZERO_COPY_MIN_BYTES - 1,
  ZERO_COPY_MIN_BYTES,
  16 * 1024,
  SHARED_READ_BYTES - 50,
  SHARED_READ_BYTES + 1000,
  3 * SHARED_READ_BYTES,
];
const PUBLISHERS = 3;
const PER_PUBLISHER = 48;

/** Payload `seq` of publisher `pub`: its first bytes name it, the rest follow from it. */
function payload(pub: number, seq: number): Buffer {
  const size = SIZES[seq % SIZES.length] as number;
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (pub * 131 + seq * 17 + i * 7) & 0xff;
  return b;
}

function check(got: Buffer[], pub: number): void {
  assert.equal(got.length, PER_PUBLISHER, `publisher ${pub}: ${got.length} of ${PER_PUBLISHER} arrived`);
  for (const [seq, b] of got.entries()) {
    assert.ok(b.equals(payload(pub, seq)), `publisher ${pub}, message ${seq} differs`);
  }
}

describe('reads through the shared buffer', () => {
  test('payloads of every size, from several connections at once, arrive intact to a fast and a stalled subscriber', async () => {
    const d = await startDispatcher();
    const nodes: Node[] = [];
    const stalled = await RawClient.connect(d.address.port, 'stalled');
    try {
      const fast: Buffer[][] = Array.from({ length: PUBLISHERS }, () => []);
      const sub = await startNode(d, { name: 'fast' });
      nodes.push(sub);
      await sub.subscribe('blob.*', (message, info) => {
        fast[Number(info.uri.slice(info.uri.lastIndexOf('.') + 1))]?.push(Buffer.from(message as Buffer));
      });
      stalled.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'blob.*', r: 1 }));
      await stalled.next((f) => f.kind === FrameKind.OK);
      stalled.socket.pause();

      const pubs = await Promise.all(Array.from({ length: PUBLISHERS }, (_, p) => startNode(d, { name: `pub-${p}` })));
      nodes.push(...pubs);
      // Interleaved: each turn every publisher sends one, so reads of different connections alternate.
      for (let seq = 0; seq < PER_PUBLISHER; seq++) {
        for (let p = 0; p < PUBLISHERS; p++) (pubs[p] as Node).publish(`blob.${p}`, payload(p, seq));
        if (seq % 8 === 7) await Promise.all(pubs.map((n) => n.drain()));
      }
      await Promise.all(pubs.map((n) => n.drain()));
      await until(() => fast.every((g) => g.length === PER_PUBLISHER), 10_000, 'the fast subscriber');
      fast.forEach(check);

      stalled.socket.resume();
      const total = PUBLISHERS * PER_PUBLISHER;
      await until(() => stalled.frames.filter(isMessage).length === total, 10_000, 'the stalled subscriber');
      const late: Buffer[][] = Array.from({ length: PUBLISHERS }, () => []);
      for (const f of stalled.frames.filter(isMessage)) {
        const uri = (f.header as unknown[])[1] as string;
        late[Number(uri.slice(uri.lastIndexOf('.') + 1))]?.push(f.payload);
      }
      late.forEach(check);
      assert.equal(d.stats.slowConsumers, 0);
    } finally {
      stalled.destroy();
      await Promise.all(nodes.map((n) => n.stop()));
      await d.stop();
    }
  });

  test('a frame split across reads, with other connections read in between, decodes whole', async () => {
    const d = await startDispatcher();
    const sub = await RawClient.connect(d.address.port, 'sub');
    const pub = await RawClient.connect(d.address.port, 'pub');
    const other = await RawClient.connect(d.address.port, 'other');
    try {
      sub.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'split', r: 1 }));
      await sub.next((f) => f.kind === FrameKind.OK);
      const body = payload(1, 7);
      const frame = encodeFrame(FrameKind.PUB, ['split', 2, 9, 1], body);
      // The publish arrives in three pieces; between them another connection fills the read buffer.
      const cuts = [0, 3, Math.floor(frame.length / 2), frame.length];
      for (let i = 0; i + 1 < cuts.length; i++) {
        pub.send(frame.subarray(cuts[i], cuts[i + 1]));
        other.send(encodeFrame(FrameKind.PUB, ['noise', 2, i + 1, 1], Buffer.alloc(SHARED_READ_BYTES, 0xee)));
        await other.next((f) => f.kind === FrameKind.OK);
      }
      const ok = await pub.next((f) => f.kind === FrameKind.OK);
      assert.deepEqual(ok.header, { r: 9, n: 1 });
      const msg = await sub.next(isMessage);
      assert.ok(msg.payload.equals(body), 'the split publish arrived byte for byte');
    } finally {
      for (const c of [sub, pub, other]) c.destroy();
      await d.stop();
    }
  });

  test('a subscriber reading in fits and starts gets thousands of mixed-size messages intact from recycled buffers', async () => {
    // The dispatcher's outbound buffers go back to a shared pool once written and are taken again
    // by later flushes (of this connection or another). A subscriber that stops and starts reading
    // keeps writes pending, backlogs forming and draining, and buffers coming back while others
    // wait; as a pushback subscriber it also holds its publishers (their reads stop and start).
    const d = await startDispatcher({ pushbackHighBytes: 1024 * 1024 });
    const sub = await RawClient.connect(d.address.port, false);
    const pubs: Node[] = [];
    const count = 1500;
    const sizes = [0, 1, 60, 700, 4000, ZERO_COPY_MIN_BYTES - 1, ZERO_COPY_MIN_BYTES + 1, 20_000, 70_000, 200_000];
    let seed = 4242;
    const random = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 16) % n;
    };
    /** Mostly small messages, one in ten from the larger sizes. */
    const plan = Array.from({ length: 2 }, () =>
      Array.from({ length: count }, () => sizes[random(10) === 0 ? 5 + random(5) : random(5)] as number),
    );
    const body = (p: number, seq: number) => {
      const b = Buffer.allocUnsafe(plan[p]?.[seq] as number);
      for (let i = 0; i < b.length; i++) b[i] = (p * 97 + seq * 13 + i * 5 + (i >> 8)) & 0xff;
      return b;
    };
    const expected = count * 2;
    let stop = false;
    try {
      sub.send(encodeFrame(FrameKind.HELLO, { v: PROTOCOL_VERSION, name: 'jerky', slow: 'pushback' }));
      await sub.next((f) => f.kind === FrameKind.WELCOME);
      sub.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'jerky.*', r: 1 }));
      await sub.next((f) => f.kind === FrameKind.OK);
      pubs.push(...(await Promise.all([0, 1].map((p) => startNode(d, { name: `jp-${p}` })))));
      const takenBefore = sparesTaken();
      const routedBefore = d.stats.publishes;
      const routedAll = () => d.stats.publishes - routedBefore >= expected;
      const receivedAll = () => sub.frames.filter(isMessage).length >= expected;
      // The reader: paused until the dispatcher holds some for it, then reads a stretch and pauses
      // again, until everything is routed and what is left is short.
      let read = 0;
      let pauseAt = 0;
      sub.socket.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read >= pauseAt) sub.socket.pause();
      });
      const pendingFor = () => d.nodes().find((n) => n.name === 'jerky')?.pendingBytes ?? 0;
      let rounds = 0;
      const reader = (async () => {
        while (!stop) {
          sub.socket.pause();
          const queue = 64 * 1024 + random(256 * 1024);
          await until(() => stop || routedAll() || pendingFor() > queue, 30_000, 'a queue to form');
          if (stop || pendingFor() <= queue) break;
          rounds++;
          pauseAt = read + 16 * 1024 + random(768 * 1024);
          sub.socket.resume();
          await until(() => stop || sub.socket.isPaused() || receivedAll(), 30_000, 'a stretch read');
        }
        pauseAt = Number.POSITIVE_INFINITY;
        sub.socket.resume();
      })();
      await Promise.all(
        pubs.map(async (node, p) => {
          for (let seq = 0; seq < count; seq++) {
            node.publish(`jerky.${p}`, body(p, seq));
            if (seq % 50 === 49) await node.drain();
          }
          await node.drain();
        }),
      );
      await reader;
      await until(() => sub.frames.filter(isMessage).length === expected, 30_000, 'every message');
      const got: Buffer[][] = [[], []];
      for (const f of sub.frames.filter(isMessage)) {
        const uri = (f.header as unknown[])[1] as string;
        got[Number(uri.slice(uri.lastIndexOf('.') + 1))]?.push(f.payload);
      }
      for (let p = 0; p < 2; p++) {
        const list = got[p] as Buffer[];
        assert.equal(list.length, count, `publisher ${p}: ${list.length} of ${count}`);
        for (let seq = 0; seq < count; seq++) {
          assert.ok((list[seq] as Buffer).equals(body(p, seq)), `publisher ${p}, message ${seq} differs`);
        }
      }
      assert.equal(d.stats.slowConsumers, 0);
      assert.ok(d.stats.pushbacks > 0, 'the publishers were held');
      assert.ok(rounds >= 5, `the reader stopped and started ${rounds} times`);
      assert.ok(sparesTaken() - takenBefore >= 10, `${sparesTaken() - takenBefore} written buffers were taken again`);
    } finally {
      stop = true;
      sub.destroy();
      await Promise.all(pubs.map((n) => n.stop()));
      await d.stop();
    }
  });

  test('a connection holds about the bytes of a frame it has received, and nothing large once it is decoded', async () => {
    // A piece of a frame is copied out of the shared buffer into the decoder's own: that buffer
    // grows with what arrives (not with what the frame's length declares), and one left large by
    // a big frame is let go once a read leaves nothing waiting.
    let accepted: FrameSocket | null = null;
    const frames: number[] = [];
    const { server, port } = await listenTcp(
      { host: '127.0.0.1', port: 0 },
      (socket) => {
        accepted = new FrameSocket(
          socket,
          { frame: (_kind, _buf, _hs, ps, end) => void frames.push(end - ps), refused: () => {}, closed: () => {} },
          { maxPayloadBytes: 4 * 1024 * 1024 },
        );
      },
      undefined,
      undefined,
      { sharedReads: true },
    );
    const client = connect(port, '127.0.0.1');
    try {
      await once(client, 'connect');
      await until(() => accepted !== null);
      const fs = accepted as unknown as FrameSocket;
      assert.equal(fs.decoder.stopped, false);
      const big = encodeFrame(FrameKind.PUB, ['held', 0, 0, 0], Buffer.alloc(3 * 1024 * 1024, 0x5a));
      // Only the start of a 3 MiB frame: its declared length reserves nothing.
      client.write(big.subarray(0, 100));
      await until(() => fs.bytesIn === 100);
      assert.ok(fs.decoder.heldBytes < 16 * 1024, `${fs.decoder.heldBytes} bytes held for 100 received`);
      // The rest, then a whole small frame: nothing waits, and the frame's memory goes.
      client.write(big.subarray(100));
      client.write(encodeFrame(FrameKind.PUB, ['held', 0, 0, 0], Buffer.alloc(10)));
      await until(() => frames.length === 2, 10_000, 'both frames');
      assert.deepEqual(frames, [3 * 1024 * 1024, 10]);
      assert.equal(fs.decoder.bufferedBytes, 0);
      assert.ok(fs.decoder.heldBytes <= 4096, `${fs.decoder.heldBytes} bytes held by an idle connection`);
      // A frame of 100 KiB in two reads, then silence.
      const mid = encodeFrame(FrameKind.PUB, ['held', 0, 0, 0], Buffer.alloc(100 * 1024, 0x33));
      client.write(mid.subarray(0, 5000));
      await until(() => fs.decoder.bufferedBytes > 0);
      client.write(mid.subarray(5000));
      await until(() => frames.length === 3, 10_000, 'the third frame');
      assert.ok(fs.decoder.heldBytes <= 4096, `${fs.decoder.heldBytes} bytes held by an idle connection`);
    } finally {
      client.destroy();
      (accepted as FrameSocket | null)?.destroy();
      server.close();
    }
  });

  test('the server counts moved connections: one closed makes room, and the limit holds', async () => {
    // Each accepted connection is moved to a socket of the shared buffer: the server's count of
    // open connections (maxConnections, stop() waiting for them) must follow the moved socket.
    const d = await startDispatcher({ maxConnections: 3 });
    try {
      for (let i = 0; i < 12; i++) {
        const c = await RawClient.connect(d.address.port, `one-${i}`);
        c.destroy();
        await c.waitClosed();
        await until(() => d.connectionCount === 0, 5000, 'the closed connection to be forgotten');
      }
      const three = await Promise.all([0, 1, 2].map((i) => RawClient.connect(d.address.port, `held-${i}`)));
      const refusedBefore = d.stats.connectionsRefused;
      const fourth = await RawClient.connect(d.address.port, false);
      await fourth.waitClosed();
      assert.ok(d.stats.connectionsRefused > refusedBefore, 'a fourth connection was refused');
      three[0]?.destroy();
      await until(() => d.connectionCount === 2, 5000, 'room for one more');
      const again = await RawClient.connect(d.address.port, 'again');
      assert.equal(again.closed, false);
      for (const c of [...three, again]) c.destroy();
    } finally {
      await d.stop();
    }
  });
});
