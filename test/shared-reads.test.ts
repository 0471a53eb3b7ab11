// The dispatcher reads every accepted connection into one shared buffer
// (src/transport/shared-reads.ts): what it keeps past a read must be copied.
// These tests send payloads of every size class (small, around the zero-copy
// size, larger than one read) from several connections at once, to a
// subscriber that reads and to one that stalls (so what waits for it sits in
// the dispatcher's backlog while later reads overwrite the shared buffer).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Node } from '../src/index.js';
import { encodeFrame, FrameKind } from '../src/protocol/frames.js';
import { ZERO_COPY_MIN_BYTES } from '../src/transport/frame-socket.js';
import { SHARED_READ_BYTES } from '../src/transport/shared-reads.js';
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
  got.forEach((b, seq) => assert.ok(b.equals(payload(pub, seq)), `publisher ${pub}, message ${seq} differs`));
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
});
