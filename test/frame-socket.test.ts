// FrameSocket over a real TCP connection: frames of every size around the
// zero-copy threshold, interleaved with other frames, arrive whole and in
// order, including when the reader is slow and writes complete late.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { decodeHeader, headerOf, payloadOf } from '../src/protocol/decoder.js';
import { decodeMsgHeader } from '../src/protocol/fast-headers.js';
import { FrameKind, PING_FRAME, packHeader, packMsgTail } from '../src/protocol/frames.js';
import { FrameSocket, ZERO_COPY_MIN_BYTES } from '../src/transport/frame-socket.js';
import { ROOT, spawnOwned, until } from './helpers.js';

interface Received {
  kind: number;
  sid: number;
  payload: Buffer;
}

async function socketPair(): Promise<{ writer: Socket; reader: Socket; close: () => void }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const accepted = once(server, 'connection');
  const writer = connect(port, '127.0.0.1');
  await once(writer, 'connect');
  const [reader] = (await accepted) as [Socket];
  return {
    writer,
    reader,
    close: () => {
      writer.destroy();
      reader.destroy();
      server.close();
    },
  };
}

function reading(socket: Socket): Received[] {
  const got: Received[] = [];
  new FrameSocket(socket, {
    frame: (kind, buf, hs, ps, end) => {
      const payload = Buffer.from(payloadOf(buf, ps, end));
      if (kind === FrameKind.MSG) {
        const fields = decodeMsgHeader(buf, hs, ps);
        got.push({ kind, sid: fields?.sid ?? -1, payload });
      } else {
        decodeHeader(headerOf(buf, hs, ps));
        got.push({ kind, sid: 0, payload });
      }
    },
    refused: () => {},
    closed: () => {},
  });
  return got;
}

const fill = (i: number, size: number) => {
  const b = Buffer.allocUnsafe(size);
  for (let j = 0; j < size; j++) b[j] = (i * 7 + j) & 0xff;
  return b;
};

describe('FrameSocket', () => {
  test('MSG payloads below, at and above the zero-copy size arrive intact, in order, among other frames', async () => {
    const { writer, reader, close } = await socketPair();
    try {
      const out = new FrameSocket(writer, { frame: () => {}, refused: () => {}, closed: () => {} });
      // The reader starts paused: the writes complete late, so queued parts outlive the turn that sent them.
      const got = reading(reader);
      reader.pause();
      const tail = packMsgTail('zc.data', 'writer', 1, 0, 0, false);
      const sizes = [0, 1, 100, ZERO_COPY_MIN_BYTES - 1, ZERO_COPY_MIN_BYTES, ZERO_COPY_MIN_BYTES + 1, 20_000, 70_000];
      const expected: { kind: number; sid: number; size: number; i: number }[] = [];
      // Sizes in a fixed pseudo-random order, turns of 1 to 8 messages: every mix of copied and
      // zero-copy frames, with a turn ending on either kind.
      let seed = 12345;
      const random = (n: number) => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return (seed >>> 16) % n;
      };
      for (let i = 0; i < 1000; ) {
        const turn = 1 + random(8);
        for (let k = 0; k < turn; k++, i++) {
          const size = sizes[random(sizes.length)] as number;
          out.sendMsg(i, tail, fill(i, size));
          expected.push({ kind: FrameKind.MSG, sid: i, size, i });
          if (random(4) === 0) {
            out.send(FrameKind.OK, packHeader({ r: i + 1 }));
            expected.push({ kind: FrameKind.OK, sid: 0, size: 0, i: -1 });
          }
          if (random(9) === 0) {
            out.sendConstant(PING_FRAME);
            expected.push({ kind: FrameKind.PING, sid: 0, size: 0, i: -1 });
          }
        }
        await new Promise((r) => setImmediate(r));
      }
      out.flush();
      // ~14 MB against a paused reader: more than the kernel's socket buffers take.
      assert.ok(
        writer.writableLength > 0,
        `some writes wait for the reader (${out.bytesOut} out, ${reader.bytesRead} read)`,
      );
      reader.resume();
      await until(() => got.length === expected.length, 20_000, `${expected.length} frames`);
      // PINGs go ahead of what waits (they may overtake queued frames); everything else in order.
      const pings = (list: { kind: number }[]) => list.filter((f) => f.kind === FrameKind.PING).length;
      assert.equal(pings(got), pings(expected));
      const ordered = got.filter((f) => f.kind !== FrameKind.PING);
      const wanted = expected.filter((f) => f.kind !== FrameKind.PING);
      for (let k = 0; k < wanted.length; k++) {
        const want = wanted[k] as (typeof wanted)[number];
        const have = ordered[k] as Received;
        assert.equal(have.kind, want.kind, `frame ${k}: kind`);
        if (want.kind !== FrameKind.MSG) continue;
        assert.equal(have.sid, want.sid, `frame ${k}: sid`);
        assert.ok(have.payload.equals(fill(want.i, want.size)), `frame ${k}: payload of ${want.size} bytes`);
      }
      await until(() => out.pendingBytes === 0, 5000, 'the outbound queue to empty');
      const sent = expected.reduce((n, e) => n + e.size, 0);
      assert.ok(out.bytesOut > sent, `bytesOut ${out.bytesOut} counts every payload (${sent})`);
    } finally {
      close();
    }
  });

  test('REPLY frames whose large payloads get buffers of their own arrive intact among MSGs, with a slow reader', async () => {
    const { writer, reader, close } = await socketPair();
    try {
      const out = new FrameSocket(writer, { frame: () => {}, refused: () => {}, closed: () => {} });
      const got = reading(reader);
      reader.pause();
      const tail = packMsgTail('own.data', 'writer', 1, 0, 0, false);
      const sizes = [0, 1000, 128 * 1024 - 1, 128 * 1024, 300_000];
      const expected: { kind: number; payload: Buffer }[] = [];
      for (let i = 0; i < 60; i++) {
        const size = sizes[i % sizes.length] as number;
        out.send(FrameKind.REPLY, packHeader({ r: i, ct: 1 }), fill(i, size));
        expected.push({ kind: FrameKind.REPLY, payload: fill(i, size) });
        out.sendMsg(i, tail, fill(i + 1000, 3000));
        expected.push({ kind: FrameKind.MSG, payload: fill(i + 1000, 3000) });
        if (i % 7 === 6) await new Promise((r) => setImmediate(r));
      }
      out.flush();
      reader.resume();
      await until(() => got.length === expected.length, 20_000, `${expected.length} frames`);
      for (const [k, want] of expected.entries()) {
        const have = got[k] as Received;
        assert.equal(have.kind, want.kind, `frame ${k}: kind`);
        assert.ok(have.payload.equals(want.payload), `frame ${k}: payload of ${want.payload.length} bytes`);
      }
    } finally {
      close();
    }
  });

  test('a connection destroyed with zero-copy parts queued discards them', async () => {
    const { writer, reader, close } = await socketPair();
    try {
      const out = new FrameSocket(writer, { frame: () => {}, refused: () => {}, closed: () => {} });
      reading(reader);
      // Under the flush threshold: queued until the end of the turn.
      out.sendMsg(1, packMsgTail('zc.data', 'writer', 1, 0, 0, false), fill(1, 20_000));
      assert.ok(out.pendingBytes >= 20_000, 'a queued zero-copy payload counts as pending');
      out.destroy();
      assert.equal(out.pendingBytes, writer.writableLength);
      out.flush();
      assert.equal(out.bytesOut, 0);
    } finally {
      close();
    }
  });

  test('an idle connection gives back its outbound buffers once everything is written', async (t) => {
    const { writer, reader, close } = await socketPair();
    try {
      const out = new FrameSocket(writer, { frame: () => {}, refused: () => {}, closed: () => {} });
      const got = reading(reader);
      reader.pause();
      const tail = packMsgTail('idle.data', 'writer', 1, 0, 0, false);
      // More than the kernel's socket buffers take: later frames wait in the backlog, in the
      // rest of a large buffer, which then stays with the connection for its next frames.
      const count = 3000;
      for (let i = 0; i < count; i++) {
        out.sendMsg(i, tail, fill(i, 4000));
        if (i % 100 === 99) await new Promise((r) => setImmediate(r));
      }
      await new Promise((r) => setImmediate(r));
      assert.ok(out.unwrittenBytes > 0, 'some frames wait for the reader');
      reader.resume();
      await until(() => got.length === count && out.pendingBytes === 0, 20_000, 'every frame');
      t.diagnostic(`${out.heldBytes} bytes held once idle`);
      assert.ok(out.heldBytes >= 16 * 1024, `${out.heldBytes} bytes held once idle`);
      out.trim();
      assert.equal(out.heldBytes, 0);
      out.sendMsg(count, tail, fill(count, 5000));
      await until(() => got.length === count + 1);
      for (let i = 0; i <= count; i++) {
        assert.ok((got[i] as Received).payload.equals(fill(i, i === count ? 5000 : 4000)), `frame ${i}`);
      }
    } finally {
      close();
    }
  });

  test('frames waiting in the backlog hold about the memory they count', async (t) => {
    // In a process of its own, so no other test's garbage blurs the figures.
    // Payloads read through the shared buffer are copied, and so are those of other frames (a
    // REPLY): large ones too (up to the default payload limit), which must not leave most of a
    // power-of-two buffer unused.
    for (const [payload, perTurn, turns, mode] of [
      ['100', '1', '4000', ''],
      ['3000', '4', '4000', ''],
      ['600000', '1', '100', 'borrowed'],
      ['1048576', '1', '60', 'borrowed'],
      ['600000', '1', '100', 'reply'],
    ]) {
      const child = spawnOwned(
        process.execPath,
        [
          '--expose-gc',
          '--import',
          'tsx',
          'test/fixtures/backlog-memory.ts',
          payload as string,
          perTurn as string,
          turns as string,
          mode as string,
        ],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let output = '';
      child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
      await once(child, 'exit');
      const { pendingBytes, grewBytes } = JSON.parse(output) as { pendingBytes: number; grewBytes: number };
      const how = mode === '' ? '' : ` (${mode})`;
      t.diagnostic(`${payload} B x${perTurn} a turn${how}: ${grewBytes} bytes held for ${pendingBytes} pending`);
      assert.ok(pendingBytes > 500_000, `${pendingBytes} bytes pending`);
      assert.ok(grewBytes < pendingBytes * 1.3, `${grewBytes} bytes held for ${pendingBytes} pending`);
    }
  });
});
