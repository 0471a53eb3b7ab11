import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import type { Dispatcher, Node } from '../src/index.js';
import { decodeHeader, FrameDecoder } from '../src/protocol/decoder.js';
import { encodeFrame, FrameKind, PROTOCOL_VERSION, packHeader } from '../src/protocol/frames.js';
import { startDispatcher, startNode } from './helpers.js';
import { RawClient } from './raw-client.js';

/** Cases per property; the total over this file is well over 100,000 per run. */
const DECODER_RUNS = 40_000;
const HEADER_RUNS = 30_000;
const LIVE_RUNS = 40_000;

const kinds = fc.oneof(fc.constantFrom(...Object.values(FrameKind)), fc.integer({ min: 0, max: 255 }));
const oddValue = fc.oneof(
  fc.anything({ maxDepth: 4, withBigInt: true, withDate: true, withTypedArray: true, withNullPrototype: true }),
  fc.integer({ min: 1, max: 2000 }).map((depth) => {
    let v: unknown = [];
    for (let i = 0; i < depth; i++) v = [v];
    return v;
  }),
  fc.tuple(fc.string(), fc.integer(), fc.integer(), fc.integer()),
  fc.record({ sid: fc.anything(), uri: fc.anything(), r: fc.anything(), group: fc.anything() }),
  // PUB headers with a message-headers map of any shape (never to the bystanders' event).
  fc.tuple(
    fc.constantFrom('fuzz.headers', '*/fuzz.headers'),
    fc.nat(15),
    fc.nat(),
    fc.nat(3),
    fc.constantFrom(null, 'fuzzer'),
    fc.nat(),
    fc.oneof(
      fc.dictionary(fc.string({ maxLength: 12 }), fc.oneof(fc.string({ maxLength: 20 }), fc.anything({ maxDepth: 2 }))),
      fc.anything({ maxDepth: 3, withNullPrototype: true }),
    ),
  ),
);

/** A frame with an arbitrary kind and an odd (but packable) header. */
const frame = fc.tuple(kinds, oddValue, fc.uint8Array({ maxLength: 64 })).map(([kind, header, payload]) => {
  try {
    return encodeFrame(kind, header, payload);
  } catch {
    return encodeFrame(kind, null, payload);
  }
});

/** Valid-looking frames, then mutated: bytes flipped, truncated, length prefixes forged. */
const mutated = fc
  .tuple(
    frame,
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    fc.nat(),
    fc.boolean(),
  )
  .map(([bytes, flips, cut, truncate]) => {
    const b = Buffer.from(bytes);
    for (const [at, v] of flips) b[at % b.length] = v;
    return truncate ? b.subarray(0, cut % (b.length + 1)) : b;
  });

describe('fuzzing', () => {
  test('the frame decoder never throws, whatever the bytes and however they are split', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 256 }), mutated),
        fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 8 }),
        (bytes, cuts) => {
          const decoder = new FrameDecoder(
            {
              frame: (_kind, header) => {
                try {
                  decodeHeader(header);
                } catch (err) {
                  assert.equal((err as { code?: string }).code, 'BAD_FRAME');
                }
              },
              refused: () => {},
            },
            { maxPayloadBytes: 1024 },
          );
          let at = 0;
          for (const cut of cuts) {
            decoder.push(Buffer.from(bytes.subarray(at, at + cut)));
            at += cut;
          }
          decoder.push(Buffer.from(bytes.subarray(at)));
          assert.ok(decoder.bufferedBytes <= 3 + 0xffff + 1024 + 4);
        },
      ),
      { numRuns: DECODER_RUNS },
    );
  });

  test('odd MessagePack headers decode or fail with BAD_FRAME, never anything else', () => {
    fc.assert(
      fc.property(oddValue, (value) => {
        let bytes: Buffer;
        try {
          bytes = packHeader(value);
        } catch {
          return;
        }
        try {
          decodeHeader(bytes);
        } catch (err) {
          assert.equal((err as { code?: string }).code, 'BAD_FRAME');
        }
      }),
      { numRuns: HEADER_RUNS },
    );
  });

  describe('a live dispatcher session', () => {
    let dispatcher: Dispatcher;
    let sub: Node;
    let pub: Node;
    let received = 0;

    before(async () => {
      dispatcher = await startDispatcher({ maxPayloadBytes: 4096, handshakeTimeoutMs: 2000 });
      sub = await startNode(dispatcher, { name: 'bystander-sub' });
      pub = await startNode(dispatcher, { name: 'bystander-pub' });
      await sub.subscribe('bystander.tick', () => void received++);
    });
    after(async () => {
      await sub.stop();
      await pub.stop();
      await dispatcher.stop();
    });

    test('random and mutated frames never crash it, never stop a well-behaved node, memory stays bounded', async () => {
      const arbitrary = fc.oneof(
        mutated,
        fc.uint8Array({ maxLength: 128 }).map((u) => Buffer.from(u)),
      );
      const seed = Date.now() >>> 0;
      const hello = encodeFrame(FrameKind.HELLO, { v: PROTOCOL_VERSION, name: 'fuzzer' });
      const heapBefore = process.memoryUsage().heapUsed;
      const perConnection = 500;
      let connections = 0;
      for (let i = 0; i < LIVE_RUNS; i += perConnection) {
        // Cases are drawn a batch at a time, so the event loop (the dispatcher's too) keeps turning.
        const batch = fc.sample(arbitrary, { numRuns: perConnection, seed: seed + i });
        // Half the connections fuzz before the handshake, half after it.
        const raw = await RawClient.connect(dispatcher.address.port, false);
        connections++;
        if (connections % 2 === 0) raw.send(hello);
        for (const bytes of batch) raw.send(bytes);
        // The bystanders keep working while the fuzzer runs.
        assert.equal(await pub.publish('bystander.tick', connections, { ack: true }), 1);
        raw.destroy();
      }
      assert.equal(received, connections);
      global.gc?.();
      const heapAfter = process.memoryUsage().heapUsed;
      assert.ok(heapAfter - heapBefore < 200 * 1024 * 1024, `heap grew by ${heapAfter - heapBefore} bytes`);
      assert.ok(dispatcher.stats.errorsSent > 0, 'the fuzzer provoked error frames');
      await pub.publish('bystander.tick', 'last', { ack: true });
    });
  });
});
