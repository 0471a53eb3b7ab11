import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { decodeHeader, FrameDecoder, type FrameSink, headerOf, payloadOf } from '../src/protocol/decoder.js';
import type { NodesetError } from '../src/protocol/errors.js';
import { formatEventUri, matchesPattern, parseEventUri } from '../src/protocol/event-uri.js';
import { encodeFrame, FrameKind, msgFrameSize, packMsgTail, writeMsgFrame } from '../src/protocol/frames.js';
import { decodePayload, encodePayload } from '../src/protocol/payload.js';
import { parseDispatcherUrl, parseHostPort } from '../src/protocol/url.js';

interface Seen {
  frames: { kind: number; header: unknown; payload: string }[];
  refused: { code: string; fatal: boolean }[];
}

function collector(): { sink: FrameSink; seen: Seen } {
  const seen: Seen = { frames: [], refused: [] };
  return {
    seen,
    sink: {
      frame: (kind, buf, headerStart, payloadStart, end) =>
        seen.frames.push({
          kind,
          header: decodeHeader(headerOf(buf, headerStart, payloadStart)),
          payload: payloadOf(buf, payloadStart, end).toString(),
        }),
      refused: (error: NodesetError, fatal) => seen.refused.push({ code: error.code, fatal }),
    },
  };
}

const sample = [
  encodeFrame(FrameKind.PUB, ['a.b', 0, 0, 0], Buffer.from('{"x":1}')),
  encodeFrame(FrameKind.PING),
  encodeFrame(FrameKind.SUB, { sid: 1, uri: 'a.*' }),
  encodeFrame(FrameKind.PUB, ['c', 1, 7, 1], Buffer.alloc(3000, 'z')),
];
const stream = Buffer.concat(sample);

describe('frame decoder', () => {
  test('many frames in one chunk', () => {
    const { sink, seen } = collector();
    new FrameDecoder(sink).push(stream);
    assert.deepEqual(
      seen.frames.map((f) => f.kind),
      [FrameKind.PUB, FrameKind.PING, FrameKind.SUB, FrameKind.PUB],
    );
    assert.deepEqual(seen.frames[0], { kind: FrameKind.PUB, header: ['a.b', 0, 0, 0], payload: '{"x":1}' });
    assert.equal(seen.frames[1]?.header, null);
    assert.equal(seen.frames[3]?.payload.length, 3000);
    assert.equal(seen.refused.length, 0);
  });

  test('one byte at a time gives the same frames', () => {
    const whole = collector();
    new FrameDecoder(whole.sink).push(stream);
    const bytewise = collector();
    const decoder = new FrameDecoder(bytewise.sink);
    for (let i = 0; i < stream.length; i++) decoder.push(stream.subarray(i, i + 1));
    assert.deepEqual(bytewise.seen, whole.seen);
    assert.equal(decoder.bufferedBytes, 0);
  });

  test('every split point of the stream gives the same frames', () => {
    const whole = collector();
    new FrameDecoder(whole.sink).push(stream);
    for (let cut = 1; cut < stream.length; cut += 7) {
      const split = collector();
      const decoder = new FrameDecoder(split.sink);
      decoder.push(stream.subarray(0, cut));
      decoder.push(stream.subarray(cut));
      assert.deepEqual(split.seen, whole.seen, `split at ${cut}`);
    }
  });

  test('an oversize frame is refused before it is buffered, and the stream goes on', () => {
    const { sink, seen } = collector();
    const decoder = new FrameDecoder(sink, { maxPayloadBytes: 1024 });
    const big = encodeFrame(FrameKind.PUB, ['a', 0, 0, 0], Buffer.alloc(200_000));
    decoder.push(big.subarray(0, 10));
    assert.deepEqual(seen.refused, [{ code: 'TOO_LARGE', fatal: false }]);
    assert.equal(decoder.bufferedBytes, 0);
    decoder.push(big.subarray(10));
    decoder.push(encodeFrame(FrameKind.PING));
    assert.deepEqual(
      seen.frames.map((f) => f.kind),
      [FrameKind.PING],
    );
  });

  test('a huge declared length is fatal', () => {
    const { sink, seen } = collector();
    const decoder = new FrameDecoder(sink);
    decoder.push(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 0, 0]));
    assert.deepEqual(seen.refused, [{ code: 'TOO_LARGE', fatal: true }]);
    assert.ok(decoder.stopped);
  });

  test('a length shorter than the fixed part is fatal; a header past the end is not', () => {
    const short = collector();
    new FrameDecoder(short.sink).push(Buffer.from([0, 0, 0, 1, 5]));
    assert.deepEqual(short.seen.refused, [{ code: 'BAD_FRAME', fatal: true }]);
    const overrun = collector();
    const d = new FrameDecoder(overrun.sink);
    d.push(Buffer.from([0, 0, 0, 3, 5, 0, 9]));
    d.push(encodeFrame(FrameKind.PING));
    assert.deepEqual(overrun.seen.refused, [{ code: 'BAD_FRAME', fatal: false }]);
    assert.equal(overrun.seen.frames.length, 1);
  });

  test('transient chunks: reading through one reused buffer gives the same frames, however the stream is split', () => {
    // What a connection on the shared read buffer sees: every chunk lies in the same memory, which
    // the next read overwrites. Payloads around the read size make frames span several reads.
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 150_000 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 40 }),
        (sizes, cuts) => {
          const frames = sizes.map((size, i) =>
            encodeFrame(FrameKind.PUB, [`e.${i}`, 0, i, 0], Buffer.alloc(size, (i * 37 + 1) & 0xff)),
          );
          const bytes = Buffer.concat([...frames, encodeFrame(FrameKind.PING)]);
          const whole = collector();
          new FrameDecoder(whole.sink).push(bytes);
          const reused = collector();
          const decoder = new FrameDecoder(reused.sink, { transient: true });
          const readBuffer = Buffer.alloc(70_000);
          let at = 0;
          for (let i = 0; at < bytes.length; i++) {
            const n = Math.min(cuts[i % cuts.length] as number, bytes.length - at);
            bytes.copy(readBuffer, 0, at, at + n);
            decoder.push(readBuffer.subarray(0, n));
            readBuffer.fill(0xee); // the next read lands here
            at += n;
          }
          assert.deepEqual(reused.seen, whole.seen);
          assert.equal(decoder.bufferedBytes, 0);
        },
      ),
      { numRuns: 60 },
    );
  });

  test('an undecodable header is BAD_FRAME', () => {
    assert.throws(() => decodeHeader(Buffer.from([0x92, 0x01])), { code: 'BAD_FRAME' });
  });

  test('a MSG tail with headers and origin host decodes as a 10-element array; without, as today', () => {
    const plain = packMsgTail('orders.new', 'pub-1', 0, 0, 0, false, 41);
    assert.equal(plain[0], 0x98);
    const tail = packMsgTail('orders.new', 'pub-1', 0, 0, 0, true, 7, { traceparent: 'x', k: 'v' }, 'hostb');
    const out = Buffer.alloc(msgFrameSize(tail, 2));
    writeMsgFrame(out, 0, 5, tail, Buffer.from('{}'));
    const { sink, seen } = collector();
    new FrameDecoder(sink).push(out);
    assert.deepEqual(seen.frames, [
      {
        kind: FrameKind.MSG,
        header: [5, 'orders.new', 'pub-1', 0, 0, 0, 1, 7, { traceparent: 'x', k: 'v' }, 'hostb'],
        payload: '{}',
      },
    ]);
  });

  test('MSG frames built from a shared tail decode as an 8-element array', () => {
    const tail = packMsgTail('orders.new', 'pub-1', 0, 0, 0, false, 41);
    const payload = Buffer.from('"hello"');
    const out = Buffer.alloc(msgFrameSize(tail, payload.length));
    writeMsgFrame(out, 0, 0xdeadbeef, tail, payload);
    const { sink, seen } = collector();
    new FrameDecoder(sink).push(out);
    assert.deepEqual(seen.frames, [
      { kind: FrameKind.MSG, header: [0xdeadbeef, 'orders.new', 'pub-1', 0, 0, 0, 0, 41], payload: '"hello"' },
    ]);
  });
});

/** Message headers as a publisher may send them (empty: none). */
const HEADERS = fc.dictionary(
  fc.stringMatching(/^[a-z0-9-]{1,20}$/).filter((k) => k !== '__proto__'),
  fc.string({ maxLength: 60 }),
  { maxKeys: 8, noNullPrototype: true },
);

describe('header fast paths', () => {
  test('PUB: agrees with the general decoder, and declines what it does not handle', async () => {
    const { default: fc } = await import('fast-check');
    const { decodePubHeader, pubFields, pubFieldsOf } = await import('../src/protocol/fast-headers.js');
    const { packHeader } = await import('../src/protocol/frames.js');
    const read = (bytes: Buffer) => {
      // At an offset inside a larger buffer, as the decoder hands it over.
      const framed = Buffer.concat([Buffer.from([1, 2, 3]), bytes, Buffer.from([4, 5])]);
      const out = pubFields();
      return decodePubHeader(framed, 3, 3 + bytes.length, out) ? out : null;
    };
    fc.assert(
      fc.property(
        fc.string({ maxLength: 300 }),
        fc.nat(),
        fc.nat(),
        fc.integer({ min: 0, max: 70000 }),
        fc.option(fc.string({ maxLength: 40 }), { nil: undefined }),
        fc.option(fc.nat(), { nil: undefined }),
        fc.option(HEADERS, { nil: undefined }),
        (uri, flags, r, ct, sender, seq, headers) => {
          const value =
            headers !== undefined
              ? [uri, flags, r, ct, sender ?? null, seq ?? 0, headers]
              : seq !== undefined
                ? [uri, flags, r, ct, sender ?? null, seq]
                : sender === undefined
                  ? [uri, flags, r, ct]
                  : [uri, flags, r, ct, sender];
          const bytes = packHeader(value);
          const general = decodeHeader(bytes) as unknown[];
          const expected = {
            uri: general[0],
            flags: general[1],
            r: general[2],
            ct: general[3],
            sender: general[4] ?? null,
            seq: general[5] ?? 0,
            headers: Object.keys(headers ?? {}).length === 0 ? null : general[6],
          };
          // With headers the fast path declines and the general decoding is read: both agree with msgpackr.
          const fast = read(bytes);
          if (headers !== undefined) {
            assert.equal(fast, null);
            const out = pubFields();
            pubFieldsOf(general, out);
            assert.deepEqual(out, expected);
            assert.deepEqual(out.headers ?? {}, headers);
          } else {
            assert.deepEqual(fast, expected);
          }
        },
      ),
      { numRuns: 5000 },
    );
    for (const odd of [[1, 2, 3, 4], ['a', -1, 0, 0], ['a', 1.5, 0, 0], ['a', 0, 0], { uri: 'a' }, ['a', 0, 0, 0, 7]]) {
      assert.equal(read(packHeader(odd)), null, JSON.stringify(odd));
    }
    assert.equal(read(Buffer.from([0x94, 0xa5, 0x61])), null, 'truncated');
    // A string running past the header's end is declined even when the buffer goes on.
    const whole = packHeader(['abcdef', 0, 0, 0]);
    const out = pubFields();
    assert.equal(decodePubHeader(whole, 0, 4, out), false);
  });

  test('MSG: agrees with the general decoder', async () => {
    const { default: fc } = await import('fast-check');
    const { decodeMsgHeader, msgFieldsOf } = await import('../src/protocol/fast-headers.js');
    const { unpackHeader } = await import('../src/protocol/frames.js');
    fc.assert(
      fc.property(
        fc.nat(),
        fc.string({ maxLength: 300 }),
        fc.string({ maxLength: 60 }),
        fc.nat({ max: 2 }),
        fc.nat(),
        fc.oneof(fc.constant(0), fc.nat()),
        fc.nat({ max: 2 }),
        fc.nat(),
        fc.option(HEADERS, { nil: null }),
        fc.option(fc.string({ minLength: 1, maxLength: 30 }), { nil: null }),
        (sid, uri, from, ct, rc, ri, mode, seq, hd, host) => {
          const headers = hd === null || Object.keys(hd).length === 0 ? null : hd;
          const tail = packMsgTail(uri, from, ct, rc, ri, mode, seq, headers, host);
          const frame = Buffer.alloc(msgFrameSize(tail, 0));
          writeMsgFrame(frame, 0, sid, tail, Buffer.alloc(0));
          const general = unpackHeader(frame.subarray(7)) as unknown[];
          assert.equal(general.length, host !== null ? 10 : headers !== null ? 9 : 8);
          // Element 4 is the requester's connection for a request (replyId set), else the publisher's stream id.
          const expected = {
            sid,
            uri,
            from,
            ct,
            replyConn: ri !== 0 ? rc : 0,
            replyId: ri,
            stream: ri !== 0 ? 0 : rc,
            single: mode === 1,
            announce: mode === 2,
            seq,
            headers,
            host,
          };
          assert.deepEqual(msgFieldsOf(general), expected);
          const fast = decodeMsgHeader(frame, 7, frame.length);
          // The fast path reads today's 8 elements; headers or an origin host take the general decoder.
          if (headers === null && host === null) assert.deepEqual(fast, expected);
          else assert.equal(fast, null);
        },
      ),
      { numRuns: 5000 },
    );
  });

  test('MSG: one sid alternating between URIs and senders decodes each one right', async () => {
    const { decodeMsgHeader } = await import('../src/protocol/fast-headers.js');
    const uris = ['orders.new', 'orders.old', 'orders.nex', 'x', 'a-much-longer-event-name.that.is.over.31.bytes'];
    const senders = ['n1', 'n2', 'node-3'];
    for (let i = 0; i < 60; i++) {
      const [uri, from] = [uris[i % uris.length] as string, senders[i % senders.length] as string];
      for (const sid of [9, 9 + 256]) {
        const tail = packMsgTail(uri, from, 0, 7, 0, false, i);
        const frame = Buffer.alloc(msgFrameSize(tail, 0));
        writeMsgFrame(frame, 0, sid, tail, Buffer.alloc(0));
        assert.deepEqual(decodeMsgHeader(frame, 7, frame.length), {
          sid,
          uri,
          from,
          ct: 0,
          replyConn: 0,
          replyId: 0,
          stream: 7,
          single: false,
          announce: false,
          seq: i,
          headers: null,
          host: null,
        });
      }
    }
  });

  test('interned strings: equal bytes give the same string, different bytes never do', async () => {
    const { default: fc } = await import('fast-check');
    const { internUtf8 } = await import('../src/protocol/fast-headers.js');
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 80 }), { minLength: 1, maxLength: 50 }), (names) => {
        for (const name of [...names, ...names]) {
          const bytes = Buffer.concat([Buffer.from('xx'), Buffer.from(name)]);
          assert.equal(internUtf8(bytes, 2, bytes.length - 2), bytes.toString('utf8', 2));
        }
      }),
      { numRuns: 2000 },
    );
    // Invalid UTF-8 decodes as Buffer#toString does.
    const bad = Buffer.from([0xff, 0xfe, 0x61]);
    assert.equal(internUtf8(bad, 0, 3), bad.toString('utf8'));
  });
});

describe('event URIs', () => {
  test('the three forms', () => {
    assert.deepEqual(parseEventUri('orders.new', false), {
      node: null,
      host: null,
      event: 'orders.new',
      wildcard: false,
    });
    assert.deepEqual(parseEventUri('h1/orders', false), { node: null, host: 'h1', event: 'orders', wildcard: false });
    assert.deepEqual(parseEventUri('n1@h1/orders', false), {
      node: 'n1',
      host: 'h1',
      event: 'orders',
      wildcard: false,
    });
    assert.deepEqual(parseEventUri('*/orders', false), { node: null, host: '*', event: 'orders', wildcard: false });
    assert.equal(formatEventUri({ node: 'n1', host: 'h1', event: 'e' }), 'n1@h1/e');
  });

  test('malformed URIs are BAD_URI', () => {
    for (const bad of [
      '',
      'node@host',
      'a..b',
      '.a',
      'a.',
      'h/a/b',
      'n@*/e',
      'a b',
      'h/',
      '/e',
      'a.>.b',
      'x'.repeat(2000),
      5,
    ]) {
      assert.throws(() => parseEventUri(bad, true), { code: 'BAD_URI' }, String(bad));
    }
    assert.throws(() => parseEventUri('a.*', false), { code: 'BAD_URI' });
    assert.throws(() => parseEventUri('a.>', false), { code: 'BAD_URI' });
    assert.equal(parseEventUri('a.*.>', true).wildcard, true);
  });

  test('wildcard matching', () => {
    assert.ok(matchesPattern('a.*', 'a.b'));
    assert.ok(!matchesPattern('a.*', 'a.b.c'));
    assert.ok(!matchesPattern('a.*', 'a'));
    assert.ok(matchesPattern('a.>', 'a.b.c'));
    assert.ok(!matchesPattern('a.>', 'a'));
    assert.ok(matchesPattern('*.b.>', 'x.b.c'));
    assert.ok(matchesPattern('>', 'anything.at.all'));
  });
});

describe('payloads and URLs', () => {
  test('payload round trips by content type', () => {
    for (const v of [1, 'x', null, { a: [1, 2] }, true]) {
      const { ct, bytes } = encodePayload(v);
      assert.deepEqual(decodePayload(ct, bytes), v);
    }
    const bin = encodePayload(new Uint8Array([1, 2, 3]));
    assert.deepEqual([...(decodePayload(bin.ct, bin.bytes) as Buffer)], [1, 2, 3]);
    assert.equal(decodePayload(encodePayload(undefined).ct, Buffer.alloc(0)), undefined);
    assert.throws(() => encodePayload(10n), { code: 'VALIDATION' });
    assert.throws(() => decodePayload(0, Buffer.from('{')), { code: 'BAD_FRAME' });
  });

  test('dispatcher URLs', () => {
    assert.deepEqual(parseDispatcherUrl('nodeset://127.0.0.1:5333'), {
      host: '127.0.0.1',
      port: 5333,
      tls: false,
      token: null,
    });
    assert.deepEqual(parseDispatcherUrl('nodesets://s3cret@example:99'), {
      host: 'example',
      port: 99,
      tls: true,
      token: 's3cret',
    });
    assert.deepEqual(parseDispatcherUrl('nodeset://[::1]:7'), { host: '::1', port: 7, tls: false, token: null });
    assert.throws(() => parseDispatcherUrl('http://x'), { code: 'BAD_OPTION' });
    assert.deepEqual(parseHostPort('0.0.0.0:0'), { host: '0.0.0.0', port: 0 });
    assert.deepEqual(parseHostPort('[::1]:5333'), { host: '::1', port: 5333 });
    assert.throws(() => parseHostPort('nope'), { code: 'BAD_OPTION' });
  });
});
