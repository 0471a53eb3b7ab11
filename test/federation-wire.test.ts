import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { connect, type NatsConnection, headers as natsHeaders } from 'nats';
import pino from 'pino';
import type { Arrival, Envelope } from '../src/dispatcher/federation.js';
import { NatsFederation } from '../src/federation/nats-federation.js';
import { BatchReader, BatchWriter, H, readSingle, WIRE_VERSION } from '../src/federation/nats-wire.js';
import { Dispatcher, type Node, NodesetError } from '../src/index.js';
import { packr } from '../src/protocol/frames.js';
import { NatsServer, startNode, until } from './helpers.js';

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
      assert.deepEqual(g.meta.gh, e.gh);
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
});
