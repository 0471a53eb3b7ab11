import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { NatsFederation } from '../src/federation/nats-federation.js';
import { Dispatcher, type Node, NodesetError, StreamNode } from '../src/index.js';
import { CliProcess, federatedNode, NatsServer, until } from './helpers.js';

// CI installs nats-server; there a missing one is a failure, not a skip.
const skip =
  NatsServer.find() !== null || process.env.NODESET_CI
    ? false
    : 'nats-server is not installed (apt-get install nats-server)';

describe('federation over NATS: three hosts', { skip }, () => {
  const nats = new NatsServer();
  const hosts: Record<string, Dispatcher> = {};
  const links: Record<string, NatsFederation> = {};
  const nodes: Node[] = [];
  const at = (host: string, name: string) => federatedNode(nodes, hosts[host]!, name);

  before(async () => {
    await nats.start();
    for (const h of ['hostA', 'hostB', 'hostC']) {
      links[h] = new NatsFederation({ servers: [nats.url] });
      hosts[h] = await new Dispatcher({ port: 0, hostName: h }, links[h]).start();
    }
    // Each dispatcher announced itself; every one knows the two others.
    await until(() => Object.values(links).every((l) => l.hosts.length === 2), 5000, 'host directory');
    // The directory shows in the stats snapshot (/stats).
    assert.deepEqual(hosts.hostA!.snapshot().federation, { connected: true, hosts: ['hostB', 'hostC'] });
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    for (const d of Object.values(hosts)) await d.stop();
    await nats.stop();
  });

  test('B/event and node@B/event published on A reach B only', async () => {
    const got: string[] = [];
    const b1 = await at('hostB', 'b1');
    const b2 = await at('hostB', 'b2');
    const c1 = await at('hostC', 'c1');
    for (const [n, label] of [
      [b1, 'b1'],
      [b2, 'b2'],
      [c1, 'c1'],
    ] as const) {
      await n.subscribe('orders.new', () => void got.push(label));
    }
    const a = await at('hostA', 'a-pub');
    assert.equal(await a.publish('hostB/orders.new', { id: 1 }, { ack: true }), 2);
    assert.equal(await a.publish('b2@hostB/orders.new', { id: 2 }, { ack: true }), 1);
    await until(() => got.length === 3);
    assert.deepEqual(got.sort(), ['b1', 'b2', 'b2']);
    assert.equal(await a.publish('orders.new', 'local only', { ack: true }), 0, 'plain event stays on host A');
  });

  test('*/event reaches every host, the local one included; hosts without interest get nothing', async () => {
    const got: string[] = [];
    for (const h of ['hostA', 'hostB']) {
      const n = await at(h, `alerts-${h}`);
      await n.subscribe('alerts.*', (_m, info) => void got.push(`${h}:${info.uri}`));
    }
    const cBefore = hosts.hostC!.stats.federationIn;
    const pub = await at('hostA', 'alerts-pub');
    // subscribe() at host B resolved once its interest was in effect at the NATS server: one publish reaches it.
    await pub.publish('*/alerts.fire', { level: 3 }, { ack: true });
    await until(() => got.length === 2);
    assert.deepEqual(got.sort(), ['hostA:*/alerts.fire', 'hostB:*/alerts.fire']);
    assert.equal(hosts.hostC!.stats.federationIn, cBefore, 'host C subscribes to nothing of it');
    const cNode = await at('hostC', 'alerts-c');
    await cNode.subscribe('alerts.>', (_m, info) => void got.push(`hostC:${info.uri}`));
    await pub.publish('*/alerts.fire', { level: 4 }, { ack: true });
    await until(() => got.some((g) => g.startsWith('hostC:')), 5000, 'host C to receive after subscribing');
  });

  test('payloads of every size cross hosts intact while several publishers send at once', async () => {
    // Host A reads its publishers into one shared buffer; what it hands to NATS (batched, or alone
    // from 8 KiB) must not change when the next read lands there.
    const sizes = [3, 100, 5000, 8191, 8192, 16_384, 70_000];
    const body = (p: number, i: number) => {
      const b = Buffer.alloc(sizes[i % sizes.length] as number);
      for (let j = 0; j < b.length; j++) b[j] = (p * 97 + i * 13 + j * 5) & 0xff;
      return b;
    };
    const got: Buffer[][] = [[], []];
    const sub = await at('hostB', 'blob-sub');
    await sub.subscribe('blob.*', (m, info) => void got[Number(info.uri.slice(-1))]?.push(Buffer.from(m as Buffer)));
    const pubs = [await at('hostA', 'blob-pub-0'), await at('hostA', 'blob-pub-1')];
    const count = 42;
    for (let i = 0; i < count; i++) {
      for (const [p, pub] of pubs.entries()) pub.publish(`hostB/blob.${p}`, body(p, i));
      if (i % 7 === 6) await Promise.all(pubs.map((n) => n.drain()));
    }
    await Promise.all(pubs.map((n) => n.publish('hostB/blob.flush', null, { ack: true })));
    await until(() => got.every((g) => g.length === count), 10_000, 'every payload at host B');
    for (const [p, g] of got.entries()) {
      for (const [i, b] of g.entries()) assert.ok(b.equals(body(p, i)), `publisher ${p}, message ${i} differs`);
    }
  });

  test('headers cross hosts with the message; the receiver sees the origin host', async () => {
    const seen: { host: string | null; from: string; headers: unknown; uri: string }[] = [];
    const b = await at('hostB', 'hd-b');
    await b.subscribe('hd.event', (_m, info) => {
      seen.push({ host: info.host, from: info.from, headers: info.headers, uri: info.uri });
    });
    await b.respond('hd.ask', (_m, info) => ({ headers: info.headers, host: info.host }));
    const a = await at('hostA', 'hd-a');
    assert.equal(await a.publish('hostB/hd.event', 1, { ack: true, headers: { k: 'to-b' } }), 1);
    await a.publish('*/hd.event', 2, { ack: true, headers: { k: 'everywhere' } });
    b.publish('hd.event', 3, { headers: { k: 'local' } });
    await until(() => seen.length === 3);
    const byKey = Object.fromEntries(seen.map((s) => [(s.headers as { k: string }).k, s]));
    assert.deepEqual(byKey['to-b'], {
      host: 'hostA',
      from: 'hd-a@hostA',
      headers: { k: 'to-b' },
      uri: 'hostB/hd.event',
    });
    assert.deepEqual(byKey.everywhere, {
      host: 'hostA',
      from: 'hd-a@hostA',
      headers: { k: 'everywhere' },
      uri: '*/hd.event',
    });
    assert.deepEqual(byKey.local, { host: null, from: 'hd-b', headers: { k: 'local' }, uri: 'hd.event' });
    const reply = await a.request('hostB/hd.ask', null, { headers: { trace: 'x1' } });
    assert.deepEqual(reply, { headers: { trace: 'x1' }, host: 'hostA' });
    // Without headers a message from another host still names its origin.
    seen.length = 0;
    await a.publish('hostB/hd.event', 4, { ack: true });
    await until(() => seen.length === 1);
    assert.deepEqual(seen[0], { host: 'hostA', from: 'hd-a@hostA', headers: {}, uri: 'hostB/hd.event' });
  });

  test('nodeset sub shows the headers and origin host of a message from another host', async () => {
    const sub = new CliProcess('nodeset', ['sub', 'cli.origin', '--count', '2', '--dispatcher-url', hosts.hostB!.url]);
    try {
      await until(() => sub.stderr.some((l) => l.startsWith('subscribed to cli.origin')), 10_000, 'subscribed');
      const a = await at('hostA', 'cli-a');
      await a.publish('hostB/cli.origin', 1, { ack: true, headers: { k: 'v' } });
      const b = await at('hostB', 'cli-b');
      await b.publish('cli.origin', 2, { ack: true });
      assert.equal(await sub.exit(), 0);
      assert.deepEqual(
        sub.lines.map((l) => JSON.parse(l)),
        [
          { event: 'hostB/cli.origin', from: 'cli-a@hostA', host: 'hostA', headers: { k: 'v' }, message: 1 },
          { event: 'cli.origin', from: 'cli-b', message: 2 },
        ],
      );
    } finally {
      await sub.kill();
    }
  });

  test('direct mode picks one subscriber at the far host; request/reply across hosts', async () => {
    const counts = { w1: 0, w2: 0 };
    const w1 = await at('hostB', 'w1');
    const w2 = await at('hostB', 'w2');
    await w1.subscribe('jobs.run', () => void counts.w1++);
    await w2.subscribe('jobs.run', () => void counts.w2++);
    await w1.respond('math.double', (n: number) => n * 2);
    const a = await at('hostA', 'a-jobs');
    for (let i = 0; i < 10; i++) assert.equal(await a.publish('hostB/jobs.run', i, { mode: 'direct', ack: true }), 1);
    await until(() => counts.w1 + counts.w2 === 10);
    assert.deepEqual(counts, { w1: 5, w2: 5 });
    assert.equal(await a.request('hostB/math.double', 21), 42);
    await assert.rejects(a.request('hostC/math.double', 1), { code: 'NO_RESPONDERS' });
    // No dispatcher of that name announced itself: refused at once, acked or not.
    const t0 = Date.now();
    await assert.rejects(a.publish('hostZ/x', 1, { ack: true, timeoutMs: 3000 }), { code: 'NO_ROUTE' });
    assert.ok(Date.now() - t0 < 1000, 'refused at once, not after the timeout');
  });

  test("stream('B/name') returns B's peers and the data flows directly", async () => {
    const rx = await new StreamNode({ dispatcherUrl: hosts.hostB!.url, name: 'b-archive', statsIntervalMs: 0 }).start();
    const tx = await new StreamNode({ dispatcherUrl: hosts.hostA!.url, name: 'a-sender', statsIntervalMs: 0 }).start();
    try {
      const received = new Promise<string>((resolve) => {
        void rx.subscribeStream('backups', (readable, info) => {
          let text = '';
          readable.on('data', (c: Buffer) => (text += c.toString()));
          readable.on('end', () => resolve(`${info.from}:${text}`));
        });
      });
      await until(async () => ((await rx.subscribers('backups')) as unknown[]).length === 1);
      const stream = await tx.stream('hostB/backups');
      assert.deepEqual(stream.peers, [{ node: 'b-archive', address: rx.streamAddress }]);
      stream.end('across hosts');
      assert.equal(await received, 'a-sender:across hosts');
    } finally {
      await tx.stop();
      await rx.stop();
    }
  });

  test('NATS stopped and restarted during traffic: every publish is delivered or rejected; interest comes back', async (t) => {
    const got = new Set<number>();
    const sub = await at('hostB', 'outage-sub');
    await sub.subscribe('outage.tick', (i: number) => void got.add(i));
    const pub = await at('hostA', 'outage-pub');
    let delivered = 0;
    let rejected = 0;
    const localGot: number[] = [];
    const local = await at('hostA', 'outage-local');
    await local.subscribe('outage.local', (i: number) => void localGot.push(i));
    const total = 150;
    for (let i = 0; i < total; i++) {
      if (i === 40) {
        await nats.stop();
        await until(() => hosts.hostA!.federationConnected === false, 5000, 'link down');
        // An all-hosts publish meanwhile: delivered locally; its cross-host copy refused, not counted as sent.
        const { federationOut, federationRejected } = hosts.hostA!.stats;
        assert.equal(await pub.publish('*/outage.local', -1, { ack: true }), 1);
        assert.equal(hosts.hostA!.stats.federationOut, federationOut, 'not counted as sent');
        assert.equal(hosts.hostA!.stats.federationRejected, federationRejected + 1, 'counted as refused');
      }
      if (i === 90) {
        await nats.start();
        // Both dispatchers reconnect by themselves and re-declare their interest.
        await until(
          () => hosts.hostA!.federationConnected === true && hosts.hostB!.federationConnected === true,
          10_000,
          'reconnect',
        );
      }
      try {
        const n = await pub.publish('hostB/outage.tick', i, { ack: true, timeoutMs: 2000 });
        if (n === 1) delivered++;
        else rejected++;
      } catch (err) {
        assert.ok(err instanceof NodesetError && ['NO_ROUTE', 'TIMEOUT'].includes(err.code), String(err));
        rejected++;
      }
      // Local traffic is untouched by the outage.
      assert.equal(await pub.publish('outage.local', i, { ack: true }), 1);
      await new Promise((r) => setTimeout(r, 5));
    }
    t.diagnostic(
      `${total} cross-host publishes: ${delivered} delivered, ${rejected} rejected; ${got.size} seen at host B`,
    );
    assert.equal(delivered + rejected, total);
    await until(() => got.size >= delivered, 5000, 'every delivered publish seen at host B');
    assert.equal(got.size, delivered, 'reported delivered = arrived');
    assert.ok(delivered >= 40 + 55, `delivered before and after the outage (${delivered})`);
    assert.ok(rejected > 0, 'some were refused while NATS was away');
    for (const i of got) assert.ok(i < 40 || i >= 90 || got.has(i), 'no duplicates');
    await until(() => localGot.length === total + 1, 5000);
    // After the outage, the federation is back by itself.
    await until(async () => (await pub.publish('hostB/outage.tick', -1, { ack: true })) === 1, 10_000, 'link back');
  });
});
