import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type NatsConnection, headers as natsHeaders } from 'nats';
import pino from 'pino';
import type { Arrival, Envelope } from '../src/dispatcher/federation.js';
import { NatsFederation } from '../src/federation/nats-federation.js';
import { BatchReader, BatchWriter, H, readSingle, WIRE_VERSION } from '../src/federation/nats-wire.js';
import { Dispatcher, type Node, NodesetError } from '../src/index.js';
import { encodeFrame, FrameKind, packr } from '../src/protocol/frames.js';
import { NatsServer, startNatsProcess, startNode, stopProcess, until } from './helpers.js';
import { RawClient } from './raw-client.js';

const skip =
  NatsServer.find() !== null || process.env.NODESET_CI
    ? false
    : 'nats-server is not installed (apt-get install nats-server)';

const envelope = (over: Partial<Envelope> = {}): Envelope => ({
  uri: 'b/orders.new',
  from: 'pub',
  host: 'a',
  ct: 1,
  flags: 0,
  st: 7,
  seq: 1,
  payload: Buffer.from('x'),
  ...over,
});

function readAll(reader: BatchReader, batch: Buffer, host = 'a') {
  const got: { meta: Arrival; seq: number; payload: Buffer }[] = [];
  reader.read(batch, host, (meta, seq, payload) => void got.push({ meta, seq, payload: Buffer.from(payload) }));
  return got;
}

describe('cross-host wire format: batches', () => {
  test('a batch reads back as written: metadata, sequence numbers and payload bytes, in order', () => {
    const w = new BatchWriter();
    const sent: Envelope[] = [];
    for (let i = 1; i <= 300; i++) {
      // Runs of one stream, a second URI, a second sender, and records with headers and queue-group hosts.
      const over: Partial<Envelope> =
        i % 50 === 0
          ? { uri: 'b/other', hd: { trace: `t${i}` } }
          : i % 70 === 0
            ? { from: 'other-pub', gh: { workers: 'b' } }
            : {};
      const e = envelope({ seq: i, payload: randomBytes(i % 17), ...over });
      sent.push(e);
      assert.equal(w.add(e, 1 << 20), true);
    }
    assert.equal(w.count, 300);
    const got = readAll(new BatchReader(), w.take());
    assert.equal(got.length, 300);
    for (const [i, g] of got.entries()) {
      const e = sent[i] as Envelope;
      assert.equal(g.seq, e.seq);
      assert.deepEqual(g.payload, Buffer.from(e.payload));
      assert.equal(g.meta.uri, e.uri);
      assert.equal(g.meta.from, e.from);
      assert.equal(g.meta.host, 'a');
      assert.equal(g.meta.ct, e.ct);
      assert.equal(g.meta.st, e.st);
      assert.deepEqual(g.meta.hd, e.hd);
      assert.deepEqual(g.meta.gh === undefined ? undefined : { ...g.meta.gh }, e.gh);
    }
  });

  test('a stream repeats no metadata, and keeps one Arrival across batches (tails are packed once)', () => {
    const w = new BatchWriter();
    for (let i = 1; i <= 100; i++) w.add(envelope({ seq: i, payload: Buffer.alloc(10) }), 1 << 20);
    const first = w.take();
    // 5 bytes of length and mark per record (the sequence numbers follow on), plus the first record's metadata once.
    assert.ok(first.length < 100 * (5 + 10) + 64, `${first.length} bytes`);
    // A gap in the sequence numbers is written out (`same` with its seq), not implied.
    for (const seq of [101, 102, 200, 201, 0, 0]) w.add(envelope({ seq }), 1 << 20);
    const reader = new BatchReader();
    const a = readAll(reader, first);
    const b = readAll(reader, w.take());
    assert.deepEqual(
      a.map((g) => g.seq),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      b.map((g) => g.seq),
      [101, 102, 200, 201, 0, 0],
    );
    assert.equal(new Set([...a, ...b].map((g) => g.meta)).size, 1, 'one Arrival for the whole stream');
    // Another origin host with the same bytes is another stream.
    for (let i = 1; i <= 3; i++) w.add(envelope({ seq: i }), 1 << 20);
    const c = readAll(reader, w.take(), 'c');
    assert.notEqual(c[0]?.meta, a[0]?.meta);
    assert.equal(c[0]?.meta.host, 'c');
  });

  test('a batch stops short of its bound; a record alone may pass it', () => {
    const w = new BatchWriter();
    assert.equal(w.add(envelope({ payload: Buffer.alloc(600) }), 1000), true);
    assert.equal(w.add(envelope({ payload: Buffer.alloc(600) }), 1000), false, 'would pass 1,000 bytes');
    assert.equal(w.count, 1);
    w.take();
    assert.equal(w.add(envelope({ payload: Buffer.alloc(2000) }), 1000), true, 'first of its batch');
  });

  test('taken batches stay intact while later ones are written', () => {
    const w = new BatchWriter();
    const batches: Buffer[] = [];
    for (let b = 0; b < 50; b++) {
      for (let i = 0; i < 40; i++) w.add(envelope({ seq: b * 40 + i + 1, payload: Buffer.alloc(200, b) }), 1 << 20);
      batches.push(w.take());
    }
    const reader = new BatchReader();
    for (const [b, batch] of batches.entries()) {
      const got = readAll(reader, batch);
      assert.equal(got.length, 40);
      assert.ok(got.every((g) => g.payload.every((x) => x === b)));
    }
  });

  test('malformed batches are refused with BAD_FRAME, never another error', () => {
    const w = new BatchWriter();
    for (let i = 1; i <= 5; i++) w.add(envelope({ seq: i }), 1 << 20);
    const good = Buffer.from(w.take());
    const isBadFrame = (e: unknown) => e instanceof NodesetError && e.code === 'BAD_FRAME';
    const cases: [string, Buffer][] = [
      ['cut short', good.subarray(0, good.length - 3)],
      ['cut in a header', good.subarray(0, 7)],
      ['length past the end', Buffer.concat([Buffer.from([0xff, 0xff, 0, 0]), good.subarray(4)])],
      ['length too small', Buffer.concat([Buffer.from([1, 0, 0, 0]), good.subarray(4)])],
    ];
    // The first record claims to repeat metadata (mark 1), or to follow a record (mark 2), or has an unknown mark.
    for (const mark of [1, 2, 9]) {
      const marked = Buffer.from(good);
      marked[4] = mark;
      cases.push([`first record marked ${mark}`, marked]);
    }
    const badSeq = Buffer.from(good);
    badSeq.writeDoubleLE(-1, 5);
    cases.push(['negative sequence number', badSeq]);
    const nanSeq = Buffer.from(good);
    nanSeq.writeDoubleLE(Number.NaN, 5);
    cases.push(['NaN sequence number', nanSeq]);
    const longUri = Buffer.from(good);
    longUri.writeUInt16LE(60000, 15);
    cases.push(['strings past the record', longUri]);
    for (const [what, data] of cases) {
      assert.throws(() => new BatchReader().read(data, 'a', () => {}), isBadFrame, what);
    }
    // Random bytes: read or refused, never anything else.
    for (let i = 0; i < 2000; i++) {
      const junk = randomBytes(1 + (i % 200));
      try {
        new BatchReader().read(junk, 'a', () => {});
      } catch (e) {
        assert.ok(isBadFrame(e), `random input ${junk.toString('hex')}: ${e}`);
      }
    }
  });

  test('a publish alone: its metadata read from NATS headers, and refused with BAD_FRAME when any is bad', () => {
    const h = natsHeaders();
    for (const [k, v] of Object.entries({
      [H.host]: 'a',
      [H.uri]: 'b/x',
      [H.from]: 'p',
      [H.ct]: '2',
      [H.flags]: '0',
      [H.seq]: '9',
      [H.stream]: '3',
    })) {
      h.set(k, v);
    }
    assert.deepEqual(readSingle(h), { meta: { uri: 'b/x', from: 'p', host: 'a', ct: 2, flags: 0, st: 3 }, seq: 9 });
    for (const [name, value] of [
      [H.ct, 'two'],
      [H.seq, '-1'],
      [H.stream, '1.5'],
      [H.groups, '{'],
      [H.groups, '["a"]'],
      [H.headers, 'nope'],
      [H.conn, 'x'],
      [H.from, 'not a name'],
      [H.host, ''],
    ] as const) {
      const bad = natsHeaders();
      for (const [k, v] of h) bad.set(k, v[0] as string);
      bad.set(name, value);
      assert.throws(() => readSingle(bad), { code: 'BAD_FRAME' }, `${name}: ${value}`);
    }
    const missing = natsHeaders();
    missing.set(H.uri, 'b/x');
    assert.throws(() => readSingle(missing), { code: 'BAD_FRAME' });
  });
});

describe('cross-host wire format on NATS', { skip }, () => {
  const nats = new NatsServer();
  const hosts: Record<string, Dispatcher> = {};
  const nodes: Node[] = [];
  let raw: NatsConnection;
  const links: NatsFederation[] = [];
  const logs: { level: number; msg: string; host?: string; wire?: number }[] = [];

  before(async () => {
    await nats.start();
    for (const h of ['wa', 'wb']) {
      const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
      const link = new NatsFederation({ servers: [nats.url], logger });
      links.push(link);
      hosts[h] = await new Dispatcher({ port: 0, hostName: h }, link).start();
    }
    await until(() => links.every((l) => l.hosts.length === 1), 5000, 'host directory');
    raw = await connect({ servers: nats.url });
  });
  after(async () => {
    await raw.close();
    await Promise.all(nodes.map((n) => n.stop()));
    for (const d of Object.values(hosts)) await d.stop();
    await nats.stop();
  });
  const at = async (host: string, name: string) => {
    const n = await startNode(hosts[host] as Dispatcher, { name, statsIntervalMs: 0 });
    nodes.push(n);
    return n;
  };

  test('a burst of plain publishes crosses in few NATS messages, all delivered in order', async () => {
    const sub = await at('wb', 'burst-sub');
    const got: number[] = [];
    await sub.subscribe('burst', (m: number) => void got.push(m));
    // A raw NATS subscriber on host wb's subject sees what crosses (NATS gives it a copy).
    let natsMessages = 0;
    let records = 0;
    raw.subscribe('nodeset.h.wb.wa', {
      callback: (_e, m) => {
        natsMessages++;
        records += Number(m.headers?.get(H.batch) || 1);
      },
    });
    await raw.flush();
    const pub = await at('wa', 'burst-pub');
    const N = 5000;
    for (let i = 0; i < N; i++) pub.publish('wb/burst', i);
    await pub.publish('wb/burst', N, { ack: true });
    await until(() => got.length === N + 1, 10_000, `all delivered (${got.length})`);
    assert.deepEqual(
      got,
      Array.from({ length: N + 1 }, (_, i) => i),
    );
    await until(() => records === N + 1, 5000, `every record seen (${records})`);
    assert.ok(natsMessages < N / 10, `${natsMessages} NATS messages for ${N + 1} publishes`);
  });

  test('publishes leave in the order they were made: batched, alone, acked, large, to another subject', async () => {
    const sub = await at('wb', 'order-sub');
    const got: number[] = [];
    // `wb/order` travels on wb's subject, `*/order` on the all-hosts one: both reach this subscription.
    await sub.subscribe('order', (m: { i: number }) => void got.push(m.i));
    const pub = await at('wa', 'order-pub');
    const pad = 'x'.repeat(9000); // 8 KiB or more: sent alone
    let i = 0;
    const acked: Promise<number>[] = [];
    for (let round = 0; round < 40; round++) {
      // One turn: a mix of every shape, to two subjects.
      const kind = round % 5;
      for (let k = 0; k < 5; k++) {
        const shape = (kind + k) % 5;
        const n = i++;
        if (shape === 0) pub.publish('wb/order', { i: n });
        else if (shape === 1) pub.publish('*/order', { i: n });
        else if (shape === 2) pub.publish('wb/order', { i: n, pad });
        else if (shape === 3) acked.push(pub.publish('wb/order', { i: n }, { ack: true }));
        else pub.publish('*/order', { i: n, pad });
      }
      if (round % 8 === 7) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(acked);
    await until(() => got.length === i, 10_000, `all delivered (${got.length} of ${i})`);
    assert.deepEqual(
      got,
      Array.from({ length: i }, (_, n) => n),
    );
  });

  test("a responder's publish made before its reply reaches the requesting host before the reply", async () => {
    // Raw clients on both sides: the order of the frames is what is checked.
    const requester = await RawClient.connect(hosts.wa!.address.port, 'progress-requester');
    const responder = await RawClient.connect(hosts.wb!.address.port, 'progress-responder');
    try {
      requester.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'progress', r: 1 }));
      responder.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'work', r: 1, reply: true }));
      await requester.next((f) => f.kind === FrameKind.OK);
      await responder.next((f) => f.kind === FrameKind.OK);
      await until(() => links[0]!.pickHost('work', true) === 'wb', 5000, 'responder known');
      for (let n = 0; n < 5; n++) {
        requester.send(encodeFrame(FrameKind.PUB, ['wb/work', 4, 100 + n, 0], Buffer.from(String(n))));
        const msg = await responder.next((f) => f.kind === FrameKind.MSG);
        const [, , , , conn, replyId] = msg.header as number[];
        // Its PUB and its REPLY leave in one write, so wb routes them in one turn.
        responder.send(
          Buffer.concat([
            encodeFrame(FrameKind.PUB, ['wa/progress', 0, 0, 0], Buffer.from(String(n))),
            encodeFrame(FrameKind.REPLY, { r: replyId, to: conn, ct: 0 }, Buffer.from(String(n))),
          ]),
        );
        await until(() => requester.frames.some((f) => f.kind === FrameKind.REPLY), 5000, `reply ${n}`);
        const order = requester.frames.map((f) =>
          f.kind === FrameKind.REPLY ? 'reply' : f.kind === FrameKind.MSG ? 'msg' : 'other',
        );
        assert.deepEqual(
          order.filter((o) => o !== 'other'),
          ['msg', 'reply'],
          `request ${n}`,
        );
        requester.frames.length = 0;
      }
    } finally {
      requester.destroy();
      responder.destroy();
    }
  });

  test('a publish alone crosses with its metadata in NATS headers and its payload untouched', async () => {
    const sub = await at('wb', 'alone-sub');
    await sub.subscribe('alone', () => {});
    const seen = new Promise<{ data: Uint8Array; uri: string; from: string }>((resolve) => {
      const s = raw.subscribe('nodeset.h.wb.*', {
        callback: (_e, m) => {
          if (m.headers?.get(H.uri) !== 'wb/alone') return;
          s.unsubscribe();
          resolve({ data: m.data, uri: m.headers.get(H.uri), from: m.headers.get(H.from) });
        },
      });
    });
    await raw.flush();
    const pub = await at('wa', 'alone-pub');
    const payload = randomBytes(300);
    assert.equal(await pub.publish('wb/alone', payload, { ack: true }), 1);
    const m = await seen;
    assert.deepEqual(Buffer.from(m.data), payload, 'the NATS message data is the payload, byte for byte');
    assert.equal(m.from, 'alone-pub');
  });

  test('unreadable messages on a host subject are counted and dropped; the dispatcher goes on', async () => {
    const sub = await at('wb', 'junk-sub');
    const got: string[] = [];
    await sub.subscribe('after-junk', (m: string) => void got.push(m));
    const before = hosts.wb!.stats.federationUnreadable;
    const batch = natsHeaders();
    batch.set(H.batch, '3');
    batch.set(H.host, 'wa');
    const single = natsHeaders();
    single.set(H.uri, 'wb/after-junk');
    single.set(H.ct, 'NaN');
    raw.publish('nodeset.h.wb.wa', randomBytes(64)); // no headers at all
    raw.publish('nodeset.h.wb.wa', randomBytes(64), { headers: batch });
    raw.publish('nodeset.h.wb.wa', randomBytes(64), { headers: single });
    // A well-formed publish whose subject names another origin than it claims.
    const forged = new BatchWriter();
    forged.add(envelope({ uri: 'wb/after-junk', host: 'wa', payload: Buffer.from('\xa6forged') }), 1 << 20);
    raw.publish('nodeset.h.wb.intruder', forged.take(), { headers: batch });
    await raw.flush();
    await until(() => hosts.wb!.stats.federationUnreadable === before + 4, 5000, 'four counted');
    const pub = await at('wa', 'junk-pub');
    assert.equal(await pub.publish('wb/after-junk', 'fine', { ack: true }), 1);
    await until(() => got.length === 1);
  });

  test('an answer is taken only from the host the request went to: a forged one is dropped and counted', async () => {
    const responder = await at('wb', 'slow-responder');
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    await responder.respond('slow', async () => {
      await held;
      return 'real';
    });
    // A raw client sees the request cross (NATS gives it a copy) and answers first, as another host.
    const forged = new Promise<void>((resolve) => {
      const s = raw.subscribe('nodeset.h.wb.*', {
        callback: (_e, m) => {
          if (m.headers?.get(H.uri) !== 'wb/slow') return;
          s.unsubscribe();
          const conn = Number(m.headers.get(H.conn));
          const r = Number(m.headers.get(H.r));
          const answer = { conn, r, kind: 'reply', ct: 0, payload: Buffer.from('\xa6forged') };
          raw.publish('nodeset.r.wa.intruder', packr.pack(answer));
          raw.publish('nodeset.r.wa.wa', packr.pack(answer));
          // Not an answer at all, though from the right host.
          raw.publish('nodeset.r.wa.wb', Buffer.from([0xc1, 0xff, 0x00]));
          void raw.flush().then(() => resolve());
        },
      });
    });
    await raw.flush();
    const before = hosts.wa!.stats.federationUnreadable;
    const pub = await at('wa', 'asker');
    const reply = pub.request('wb/slow', 'q', { timeoutMs: 5000 });
    await forged;
    await until(() => hosts.wa!.stats.federationUnreadable === before + 3, 5000, 'the forged answers dropped');
    release();
    assert.equal(await reply, 'real');
  });

  test('a host that speaks another wire format is left out of the directory, with an error logged once', async () => {
    const announce = (host: string, id: string, wire?: number) =>
      raw.publish(
        'nodeset.dir',
        packr.pack({
          host,
          id,
          startedAt: Date.now(),
          version: '0.0.1',
          patterns: [],
          ...(wire === undefined ? {} : { wire }),
        }),
      );
    // An earlier version announces no wire format (its publishes are MessagePack envelopes).
    announce('old-host', 'old-1');
    announce('old-host', 'old-1');
    announce('new-host', 'new-1', WIRE_VERSION);
    await raw.flush();
    const [wa] = links as [NatsFederation];
    await until(() => wa.knows('new-host'), 5000, 'the compatible host joins');
    assert.equal(wa.knows('old-host'), false);
    const errors = logs.filter((l) => l.level === 50 && l.host === 'old-host');
    assert.equal(errors.length, 2, 'logged once per dispatcher');
    assert.equal(errors[0]?.wire, 1);
    const pub = await at('wa', 'old-pub');
    await assert.rejects(pub.publish('old-host/x', 1, { ack: true }), { code: 'NO_ROUTE' });
  });

  test('a batch that names no origin host is unreadable: counted and dropped, never delivered as from nowhere', async () => {
    const sub = await at('wb', 'nohost-sub');
    const froms: string[] = [];
    await sub.subscribe('nohost', (_m, info) => void froms.push(info.from));
    const before = hosts.wb!.stats.federationUnreadable;
    const w = new BatchWriter();
    for (let i = 1; i <= 3; i++)
      w.add(envelope({ uri: 'wb/nohost', host: 'wa', seq: i, payload: Buffer.from('1') }), 1 << 20);
    const noHost = natsHeaders();
    noHost.set(H.batch, '3');
    raw.publish('nodeset.h.wb.wa', w.take(), { headers: noHost });
    // A record that names no publishing node, in a batch that names its host.
    w.add(envelope({ uri: 'wb/nohost', from: '', seq: 1, payload: Buffer.from('1') }), 1 << 20);
    const noFrom = natsHeaders();
    noFrom.set(H.batch, '1');
    noFrom.set(H.host, 'wa');
    raw.publish('nodeset.h.wb.wa', w.take(), { headers: noFrom });
    await raw.flush();
    await until(() => hosts.wb!.stats.federationUnreadable === before + 2, 5000, 'both counted as unreadable');
    const pub = await at('wa', 'nohost-pub');
    assert.equal(await pub.publish('wb/nohost', 2, { ack: true }), 1);
    assert.deepEqual(froms, ['nohost-pub@wa'], 'only the real publish was delivered');
  });

  test('a plain publish from another host that the dispatcher refuses (bad headers, not for this host) is counted', async () => {
    const sub = await at('wb', 'refused-sub');
    let got = 0;
    await sub.subscribe('refused', () => void got++);
    const before = hosts.wb!.stats.federationUnreadable;
    const single = (uri: string, hd?: string) => {
      const h = natsHeaders();
      for (const [k, v] of Object.entries({ [H.host]: 'wa', [H.uri]: uri, [H.from]: 'p', [H.ct]: '0' })) h.set(k, v);
      for (const k of [H.flags, H.seq, H.stream]) h.set(k, '0');
      if (hd !== undefined) h.set(H.headers, hd);
      raw.publish('nodeset.h.wb.wa', Buffer.from('1'), { headers: h });
    };
    single('wb/refused', '{"n":1}'); // a header value that is not a string
    single('wc/refused'); // for another host
    await raw.flush();
    await until(() => hosts.wb!.stats.federationUnreadable === before + 2, 5000, 'both counted');
    const pub = await at('wa', 'refused-pub');
    assert.equal(await pub.publish('wb/refused', 1, { ack: true }), 1);
    assert.equal(got, 1, 'only the real one delivered');
  });

  test('unknown PUB flag bits on a publish to another host do not break the batch it joins', async () => {
    const sub = await at('wb', 'flags-sub');
    const got: unknown[] = [];
    await sub.subscribe('flags', (m) => void got.push(m));
    const rawNode = await RawClient.connect(hosts.wa!.address.port, 'flags-raw');
    try {
      // Three publishes in one write (one turn, one batch): the first with a flag bit nodeset does not define.
      rawNode.send(
        Buffer.concat([
          encodeFrame(FrameKind.PUB, ['wb/flags', 0x10000, 0, 0], Buffer.from('"a"')),
          encodeFrame(FrameKind.PUB, ['wb/flags', 0, 0, 0], Buffer.from('"b"')),
          encodeFrame(FrameKind.PUB, ['wb/flags', 0, 0, 0], Buffer.from('"c"')),
        ]),
      );
      rawNode.send(encodeFrame(FrameKind.PUB, ['wb/flags', 2, 7, 0], Buffer.from('"d"')));
      const ok = await rawNode.next((f) => f.kind === FrameKind.OK || f.kind === FrameKind.ERROR);
      assert.deepEqual(ok.header, { r: 7, n: 1 });
      assert.equal(rawNode.frames.filter((f) => f.kind === FrameKind.ERROR).length, 0, 'no error frame');
      await until(() => got.length === 4, 5000, `all four delivered (${got.length})`);
    } finally {
      rawNode.destroy();
    }
  });

  test('headers count towards NATS max_payload: TOO_LARGE before any delivery, not an internal error', async () => {
    const pub = await at('wa', 'hdbig-pub');
    const local = await at('wa', 'hdbig-local');
    let got = 0;
    await local.subscribe('hdbig', () => void got++);
    const max = links[0]!.maxPayload;
    assert.ok(max > 0);
    const headers: Record<string, string> = {};
    for (let i = 0; i < 8; i++) headers[`h${i}`] = 'v'.repeat(480);
    const big = Buffer.alloc(max - 1024 - 'wb/hdbig'.length - 16);
    await assert.rejects(pub.publish('wb/hdbig', big, { ack: true, headers }), { code: 'TOO_LARGE' });
    await assert.rejects(pub.publish('*/hdbig', big, { ack: true, headers }), { code: 'TOO_LARGE' });
    assert.equal(got, 0, 'the refused one was not delivered locally');
  });
  test('queue groups named like Object properties are served across hosts, in a batch and alone', async () => {
    const names = ['constructor', 'toString', '__proto__'];
    const counts = new Map<string, number>();
    for (const group of names) {
      const w = await at('wb', `proto-${group}`);
      await w.subscribe('proto.work', () => void counts.set(group, (counts.get(group) ?? 0) + 1), { group });
    }
    await until(() => links[0]!.groupHosts('proto.work')?.size === names.length, 5000, 'groups announced');
    const pub = await at('wa', 'proto-pub');
    // Three in one turn (a batch), then one alone.
    for (let i = 0; i < 3; i++) pub.publish('*/proto.work', i);
    await pub.publish('*/proto.work', Buffer.alloc(10_000), { ack: true });
    await until(
      () => names.every((g) => counts.get(g) === 4),
      5000,
      `each group got every publish once: ${JSON.stringify([...counts])}`,
    );
  });
});

const LONG_HOST = `g${'h'.repeat(200)}`;

describe('NATS messages larger than max_payload', { skip }, () => {
  let dir: string;
  let nats: ChildProcess;
  const dispatchers: Dispatcher[] = [];
  const nodes: Node[] = [];
  const logged: { level: number; msg: string }[] = [];
  let big: NatsFederation;
  let other: NatsFederation;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nodeset-announce-'));
    const conf = join(dir, 'nats.conf');
    writeFileSync(conf, 'max_payload: 16384\n');
    const started = await startNatsProcess(['-c', conf, '-a', '127.0.0.1', '-p', '-1']);
    nats = started.child;
    const url = `nats://127.0.0.1:${started.port}`;
    const logger = pino({ level: 'info' }, { write: (line: string) => void logged.push(JSON.parse(line)) });
    const fast = { heartbeatIntervalMs: 50, hostTimeoutMs: 400 };
    big = new NatsFederation({ servers: [url], logger, ...fast });
    other = new NatsFederation({ servers: [url], ...fast });
    dispatchers.push(await new Dispatcher({ port: 0, hostName: 'big' }, big).start());
    dispatchers.push(await new Dispatcher({ port: 0, hostName: 'other' }, other).start());
    // A host with a long name: the queue group → host map naming it many times outgrows the NATS message.
    const long = new NatsFederation({ servers: [url], ...fast });
    dispatchers.push(await new Dispatcher({ port: 0, hostName: LONG_HOST }, long).start());
    await until(() => other.knows('big') && other.knows(LONG_HOST), 5000, 'big and the long-named host known to other');
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    for (const d of dispatchers) await d.stop();
    await stopProcess(nats);
    rmSync(dir, { recursive: true, force: true });
  });

  test('an announcement too large is not sent and logged, the dispatcher goes on; once it fits again the host is back', async () => {
    const node = await startNode(dispatchers[0] as Dispatcher, { name: 'many', statsIntervalMs: 0 });
    nodes.push(node);
    // 20 patterns of 1,000 characters: an announcement of about 20 KB, over the server's 16 KiB.
    const long = 'p'.repeat(1000);
    for (let i = 0; i < 20; i++) await node.subscribe(`${long}.${i}`, () => {});
    await until(() => logged.some((l) => l.level === 50 && /announcement larger than NATS max_payload/.test(l.msg)));
    // Heartbeats go on without one: the other host sees it leave, and the dispatcher still serves.
    await until(() => !other.knows('big'), 5000, 'big left the directory of other (silent)');
    let got = 0;
    await node.subscribe('still.here', () => void got++);
    assert.equal(await node.publish('still.here', 1, { ack: true }), 1);
    assert.equal(got, 1);
    for (let i = 5; i < 20; i++) await node.unsubscribe(`${long}.${i}`);
    await until(() => other.knows('big'), 5000, 'big back in the directory of other');
    assert.ok(big.knows('other'));
    assert.ok(logged.some((l) => /announcement fits in a NATS message again/.test(l.msg)));
  });

  test('publishes whose queue group hosts outgrow the NATS message are counted as lost, the dispatcher goes on', async () => {
    const workers = await startNode(dispatchers[2] as Dispatcher, { name: 'workers', statsIntervalMs: 0 });
    nodes.push(workers);
    // 80 groups, each served by the long-named host: about 16.5 KB of group hosts in every */gx publish.
    await Promise.all(Array.from({ length: 80 }, (_, i) => workers.subscribe('gx', () => {}, { group: `q${i}` })));
    await until(() => other.groupHosts('gx')?.size === 80, 5000, 'the 80 groups announced');
    const pub = await startNode(dispatchers[1] as Dispatcher, { name: 'gx-pub', statsIntervalMs: 0 });
    nodes.push(pub);
    const stats = (dispatchers[1] as Dispatcher).stats;
    const lostBefore = stats.federationLost;
    pub.publish('*/gx', 1); // alone in its turn
    await until(() => stats.federationLost === lostBefore + 1, 5000, 'the one alone counted as lost');
    for (let i = 0; i < 3; i++) pub.publish('*/gx', i); // in one turn: batches of one record, each too large
    await until(() => stats.federationLost === lostBefore + 4, 5000, `all four counted (${stats.federationLost})`);
    let got = 0;
    await pub.subscribe('gx.after', () => void got++);
    assert.equal(await pub.publish('gx.after', 1, { ack: true }), 1, 'the dispatcher still serves');
    assert.equal(got, 1);
  });
});
