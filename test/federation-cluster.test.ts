// Federation on a 3-server NATS cluster (routes between the servers on
// 127.0.0.1), dispatchers attached to different servers: one receiver across
// the cluster, the host directory, refusals instead of silent drops, payload
// limits, interest that holds across servers, start-up without NATS, stale links.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { connect } from 'nats';
import { HostDirectory } from '../src/federation/host-directory.js';
import { NatsFederation } from '../src/federation/nats-federation.js';
import { WIRE_VERSION } from '../src/federation/nats-wire.js';
import { Dispatcher, type Node, type NodesetError, StreamNode } from '../src/index.js';
import { packr } from '../src/protocol/frames.js';
import {
  freePort,
  NatsServer,
  ROOT,
  spawnOwned,
  startNatsProcess,
  startNode,
  stopProcess,
  until,
  WAIT_SCALE,
  waitForExit,
} from './helpers.js';

const skip =
  NatsServer.find() !== null || process.env.NODESET_CI
    ? false
    : 'nats-server is not installed (apt-get install nats-server)';

/** One nats-server of a cluster; owned, so it never outlives the test file. */
class ClusterServer {
  child: ChildProcess | null = null;
  port = 0;
  constructor(
    readonly clusterPort: number,
    readonly routes: number[],
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    const args = ['-a', '127.0.0.1', '-p', String(this.port === 0 ? -1 : this.port)];
    args.push('--cluster_name', 'nodeset-test', '--cluster', `nats://127.0.0.1:${this.clusterPort}`);
    args.push('--routes', this.routes.map((p) => `nats://127.0.0.1:${p}`).join(','));
    const { child, port } = await startNatsProcess(args);
    this.child = child;
    this.port = port;
    return this;
  }

  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (child !== null) await stopProcess(child);
  }
}

test('host directory: joins, duplicates, silent hosts expire, one host picked per single delivery', () => {
  const dir = new HostDirectory('a', 'id-a');
  const ann = (host: string, id: string, patterns: string[] = []) => ({
    host,
    id,
    startedAt: 0,
    version: '',
    patterns,
  });
  assert.equal(dir.knows('a'), true);
  assert.equal(dir.knows('b'), false);
  assert.equal(dir.announced(ann('b', 'id-b', ['jobs.*']), 0), 'joined');
  assert.equal(dir.announced(ann('b', 'id-b', ['jobs.*']), 500), 'updated');
  assert.equal(dir.announced(ann('c', 'id-c', ['jobs.run']), 500), 'joined');
  assert.equal(dir.announced(ann('a', 'id-other'), 500), 'duplicate');
  assert.equal(dir.announced(ann('a', 'id-a'), 500), 'none');
  const picked = new Set([dir.pickHost('jobs.run'), dir.pickHost('jobs.run'), dir.pickHost('jobs.run')]);
  assert.deepEqual([...picked].sort(), ['b', 'c'], 'round robin over hosts with interest');
  assert.equal(dir.pickHost('other'), null);
  // Requests: only hosts that announce a responder for the event (an older host without the field: its patterns).
  dir.announced({ ...ann('b', 'id-b', ['jobs.*']), responders: [] }, 500);
  dir.announced({ ...ann('c', 'id-c', ['jobs.run']), responders: ['jobs.run'] }, 500);
  assert.deepEqual(
    [...new Set([dir.pickHost('jobs.run', true), dir.pickHost('jobs.run', true), dir.pickHost('jobs.run', true)])],
    ['c'],
  );
  dir.announced({ ...ann('c', 'id-c', ['jobs.run']), responders: [] }, 500);
  assert.equal(dir.pickHost('jobs.run', true), null, 'passive subscribers only: nobody to ask');
  dir.announced(ann('c', 'id-c', ['jobs.run']), 500);
  assert.equal(dir.pickHost('jobs.run', true), 'c', 'no responders field: its patterns count');
  assert.deepEqual(dir.expire(3000, 2600), [], 'nobody silent yet');
  assert.deepEqual(
    dir.expire(3200, 2600).map(([h]) => h),
    ['b', 'c'],
  );
  assert.equal(dir.knows('b'), false);
  assert.equal(dir.announced({ ...ann('d', 'id-d'), bye: true }, 0), 'none');
  dir.announced(ann('d', 'id-d'), 0);
  assert.equal(dir.announced({ ...ann('d', 'id-d'), bye: true }, 0), 'left');
});

test('a dispatcher stopped before NATS was ever reached lets its process exit', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodeset-fed-'));
  const script = join(dir, 'probe.mts');
  const src = (f: string) => JSON.stringify(pathToFileURL(join(ROOT, f)).href);
  writeFileSync(
    script,
    `import { NatsFederation } from ${src('src/federation/nats-federation.ts')};
import { Dispatcher } from ${src('src/index.ts')};
const link = new NatsFederation({ servers: ['nats://127.0.0.1:1'], startWaitMs: 100 });
const d = await new Dispatcher({ port: 0, hostName: 'never' }, link).start();
await d.stop();
`,
  );
  try {
    const child = spawnOwned(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, stdio: 'ignore' });
    // Killed (exit code null) if it is still running after the wait.
    assert.equal(await waitForExit(child, 10_000 * WAIT_SCALE), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('federation on a 3-server NATS cluster', { skip }, () => {
  const servers: ClusterServer[] = [];
  /** One more server, routed to the cluster's (the test stops it). */
  const joinCluster = async () =>
    new ClusterServer(
      await freePort(),
      servers.map((x) => x.clusterPort),
    ).start();
  const hosts: Record<string, Dispatcher> = {};
  const links: Record<string, NatsFederation> = {};
  const nodes: Node[] = [];
  const names = ['a', 'b', 'c', 'd'];
  const at = async (host: string, name: string) => {
    const n = await startNode(hosts[host] as Dispatcher, { name, statsIntervalMs: 0, ackTimeoutMs: 5000 });
    nodes.push(n);
    return n;
  };
  const server = (i: number) => servers[i % servers.length] as ClusterServer;

  before(async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    for (const p of ports)
      servers.push(
        new ClusterServer(
          p,
          ports.filter((q) => q !== p),
        ),
      );
    await Promise.all(servers.map((s) => s.start()));
    // Host i is attached to server i mod 3: a and d share one; b and c each have their own.
    for (const [i, h] of names.entries()) {
      links[h] = new NatsFederation({ servers: [server(i).url] });
      hosts[h] = await new Dispatcher({ port: 0, hostName: h }, links[h]).start();
    }
    // The directory also proves the routes: announcements crossed every server.
    await until(
      () => Object.values(links).every((l) => l.hosts.length === names.length - 1),
      10_000,
      'every host in every directory',
    );
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    for (const d of Object.values(hosts)) await d.stop();
    await Promise.all(servers.map((s) => s.stop()));
  });

  test('direct */jobs ×20 with a worker on 3 other hosts: 20 deliveries in all; with a local worker, 20 too', async () => {
    const counts: Record<string, number> = {};
    for (const h of ['b', 'c', 'd']) {
      const w = await at(h, `worker-${h}`);
      await w.subscribe('jobs.run', () => {
        counts[h] = (counts[h] ?? 0) + 1;
      });
    }
    // subscribe() resolved once every host knew of the interest: no wait for the directory here.
    const pub = await at('a', 'jobs-pub');
    for (let i = 0; i < 20; i++) assert.equal(await pub.publish('*/jobs.run', i, { mode: 'direct', ack: true }), 1);
    const total = () => Object.values(counts).reduce((x, y) => x + y, 0);
    await until(() => total() === 20);
    assert.equal(Object.keys(counts).length, 3, `spread over the hosts with interest: ${JSON.stringify(counts)}`);
    // Published to a host that has a worker: the local one takes it, no copies elsewhere.
    const pubB = await at('b', 'jobs-pub-b');
    for (let i = 0; i < 20; i++) await pubB.publish('*/jobs.run', i, { mode: 'direct', ack: true });
    await until(() => total() === 40);
    // A last acked publish through host a: everything before it has arrived; no extra copies.
    await pub.publish('d/jobs.run', 'last', { mode: 'direct', ack: true });
    await until(() => total() === 41);
    assert.equal(total(), 41);
  });

  test("request('*/math') with responders on b and c: one reply, one handler run; none anywhere: NO_RESPONDERS at once", async () => {
    let runs = 0;
    for (const h of ['b', 'c']) {
      const r = await at(h, `math-${h}`);
      await r.respond('math.double', (n: number) => {
        runs++;
        return n * 2;
      });
    }
    const req = await at('a', 'math-req');
    for (let i = 0; i < 10; i++) assert.equal(await req.request('*/math.double', i), i * 2);
    assert.equal(runs, 10, 'each request ran one handler');
    const t0 = Date.now();
    await assert.rejects(req.request('*/nobody.home', 1, { timeoutMs: 5000 }), { code: 'NO_RESPONDERS' });
    assert.ok(Date.now() - t0 < 1000, 'at once, not after the timeout');
  });

  test("request('*/ask') goes only to hosts with a responder: b has a passive subscriber, c a responder; passive only: NO_RESPONDERS at once", async () => {
    const seenAtB: number[] = [];
    const passiveB = await at('b', 'ask-passive-b');
    await passiveB.subscribe('ask.x', (n: number) => {
      seenAtB.push(n);
    });
    const runs: Record<string, number> = {};
    const responderC = await at('c', 'ask-responder-c');
    await responderC.respond('ask.x', (n: number) => {
      runs.c = (runs.c ?? 0) + 1;
      return `c:${n}`;
    });
    const req = await at('a', 'ask-req');
    for (let i = 0; i < 20; i++) assert.equal(await req.request('*/ask.x', i, { timeoutMs: 5000 }), `c:${i}`);
    assert.equal(runs.c, 20, 'every request answered by c');
    assert.equal(Object.keys(runs).length, 1);
    assert.equal(seenAtB.length, 0, "b's passive subscriber was never handed a request");
    // A responder appears at b on a pattern b already had: once respond() resolves, a knows it.
    const responderB = await at('b', 'ask-responder-b');
    await responderB.respond('ask.x', (n: number) => {
      runs.b = (runs.b ?? 0) + 1;
      return `b:${n}`;
    });
    for (let i = 0; i < 20; i++) assert.match(String(await req.request('*/ask.x', i, { timeoutMs: 5000 })), /^[bc]:/);
    assert.ok((runs.b ?? 0) > 0 && (runs.c ?? 0) > 20, `spread over b and c: ${JSON.stringify(runs)}`);
    // Passive subscribers only, on two hosts: refused here at once, never sent to them.
    for (const h of ['b', 'd']) {
      const n = await at(h, `passive-only-${h}`);
      await n.subscribe('ask.passive', (v: number) => {
        seenAtB.push(v);
      });
    }
    await until(() => links.a!.pickHost('ask.passive', false) !== null, 5000, 'a to know the passive interest');
    const out = hosts.a!.stats.federationOut;
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) {
      await assert.rejects(req.request('*/ask.passive', i, { timeoutMs: 5000 }), { code: 'NO_RESPONDERS' });
    }
    assert.ok(Date.now() - t0 < 1000, `at once, well under the timeout (${Date.now() - t0} ms)`);
    assert.equal(hosts.a!.stats.federationOut, out, 'nothing was sent to another host');
    assert.equal(seenAtB.length, 0);
  });

  test('a queue group present on 3 hosts, */grp ×10: 10 deliveries in all; ungrouped subscribers still get every one', async () => {
    const counts: Record<string, number> = {};
    let ungrouped = 0;
    for (const h of ['b', 'c', 'd']) {
      const w = await at(h, `grp-${h}`);
      await w.subscribe(
        'grp.work',
        () => {
          counts[h] = (counts[h] ?? 0) + 1;
        },
        { group: 'workers' },
      );
    }
    const plain = await at('c', 'grp-plain');
    await plain.subscribe('grp.work', () => void ungrouped++);
    await until(() => links.a!.groupHosts('grp.work')?.get('workers')?.length === 3, 5000, 'groups announced');
    const pub = await at('a', 'grp-pub');
    for (let i = 0; i < 10; i++) await pub.publish('*/grp.work', i, { ack: true });
    const total = () => Object.values(counts).reduce((x, y) => x + y, 0);
    await until(() => total() === 10 && ungrouped === 10);
    // A host with a member serves the group itself: published on b, b's member takes every one.
    const pubB = await at('b', 'grp-pub-b');
    for (let i = 0; i < 10; i++) await pubB.publish('*/grp.work', i, { ack: true });
    await until(() => total() === 20 && ungrouped === 20);
    await pub.publish('d/grp.work', 'last', { ack: true });
    await until(() => total() === 21);
    assert.equal(total(), 21, `one member per publish across the cluster: ${JSON.stringify(counts)}`);
    assert.ok((counts.b ?? 0) >= 10);
  });

  test("stream('*/backups') finds the receivers of every host", async () => {
    const rxs = [];
    const received: Promise<string>[] = [];
    for (const h of ['b', 'c']) {
      const rx = await new StreamNode({
        dispatcherUrl: hosts[h]!.url,
        name: `archive-${h}`,
        statsIntervalMs: 0,
      }).start();
      rxs.push(rx);
      received.push(
        new Promise<string>((resolve) => {
          void rx.subscribeStream('backups', (readable) => {
            let text = '';
            readable.on('data', (c: Buffer) => (text += c.toString()));
            readable.on('end', () => resolve(`${h}:${text}`));
          });
        }),
      );
    }
    const tx = await new StreamNode({ dispatcherUrl: hosts.a!.url, name: 'a-backup', statsIntervalMs: 0 }).start();
    try {
      await until(async () => ((await tx.subscribers('*/backups')) as unknown[]).length === 2, 5000, 'both receivers');
      const stream = await tx.stream('*/backups');
      assert.equal(stream.peers.length, 2);
      stream.end('everywhere');
      assert.deepEqual((await Promise.all(received)).sort(), ['b:everywhere', 'c:everywhere']);
    } finally {
      await tx.stop();
      for (const rx of rxs) await rx.stop();
    }
  });

  test('same-named nodes on two hosts: delivered as from node@host, no false gaps', async () => {
    const rx = await at('c', 'twin-rx');
    const froms = new Map<string, number>();
    let gaps = 0;
    rx.on('gap', () => void gaps++);
    await rx.subscribe('twin.tick', (_m, info) => void froms.set(info.from, (froms.get(info.from) ?? 0) + 1));
    const twinA = await at('a', 'twin');
    const twinB = await at('b', 'twin');
    // B's twin ahead by 10: one sender key for both would see its sequence jump back and forth (false gaps).
    for (let i = 0; i < 10; i++) await twinB.publish('*/twin.tick', i);
    for (let i = 0; i < 40; i++) {
      await twinA.publish('*/twin.tick', i);
      await twinB.publish('*/twin.tick', i);
    }
    for (let i = 0; i < 10; i++) await twinA.publish('*/twin.tick', i);
    await twinA.publish('*/twin.tick', 'last', { ack: true });
    await twinB.publish('*/twin.tick', 'last', { ack: true });
    await until(() => (froms.get('twin@a') ?? 0) + (froms.get('twin@b') ?? 0) === 102, 5000, 'all 102');
    assert.deepEqual([...froms.keys()].sort(), ['twin@a', 'twin@b']);
    assert.equal(gaps, 0);
  });

  test('an unknown host is refused at once; a stopped host leaves the directory and is refused; a duplicate name cannot start', async () => {
    const pub = await at('a', 'route-pub');
    const errors: NodesetError[] = [];
    pub.on('error', (e) => void errors.push(e as NodesetError));
    await assert.rejects(pub.publish('zz/x', 1, { ack: true }), { code: 'NO_ROUTE' });
    // A plain publish learns it as an 'error' event.
    await pub.publish('zz/x', 1);
    await until(() => errors.length === 1);
    assert.equal(errors[0]?.code, 'NO_ROUTE');

    const presence: string[] = [];
    const watcher = await at('a', 'host-watcher');
    await watcher.subscribe('$nodeset.host.joined', (p: { host: string }) => void presence.push(`joined:${p.host}`));
    await watcher.subscribe('$nodeset.host.left', (p: { host: string; reason: string }) => {
      presence.push(`left:${p.host}:${p.reason}`);
    });
    const link = new NatsFederation({ servers: [server(1).url] });
    const e = await new Dispatcher({ port: 0, hostName: 'e' }, link).start();
    try {
      await until(() => links.a!.knows('e'), 5000, 'a to learn about e');
      assert.equal(await pub.publish('e/x', 1, { ack: true }), 0);
      // A dispatcher named like a live one refuses to start.
      const dupLink = new NatsFederation({ servers: [server(2).url] });
      const dup = new Dispatcher({ port: 0, hostName: 'e' }, dupLink);
      await assert.rejects(dup.start(), /host name e is already taken/);
      await dup.stop();
    } finally {
      await e.stop();
    }
    // Its goodbye removes it from the directory at once.
    await until(() => !links.a!.knows('e'), 2000, 'e to leave');
    await assert.rejects(pub.publish('e/x', 1, { ack: true }), { code: 'NO_ROUTE' });
    await until(() => presence.length === 2, 2000, 'presence events');
    assert.deepEqual(presence, ['joined:e', 'left:e:stopped']);
  });

  test('a host in the directory whose dispatcher is gone: acked publishes and requests learn it at once (NATS no-responders)', async () => {
    // A ghost: announced on the directory (as a crashed dispatcher was, until its heartbeat times out),
    // with nobody subscribed to its subject.
    const raw = await connect({ servers: [server(1).url] });
    try {
      const ghost = {
        host: 'ghost',
        id: 'ghost-1',
        startedAt: Date.now(),
        version: '',
        patterns: [],
        wire: WIRE_VERSION,
      };
      raw.publish('nodeset.dir', packr.pack(ghost));
      await raw.flush();
      await until(() => links.a!.knows('ghost'), 5000, 'a to learn about the ghost');
      const pub = await at('a', 'ghost-pub');
      const t0 = Date.now();
      await assert.rejects(pub.publish('ghost/x', 1, { ack: true, timeoutMs: 4000 }), { code: 'NO_ROUTE' });
      await assert.rejects(pub.request('ghost/x', 1, { timeoutMs: 4000 }), { code: 'NO_ROUTE' });
      assert.ok(Date.now() - t0 < 1000, `at once, not after the timeout (${Date.now() - t0} ms)`);
      // The no-responders status took it out of the directory: B/… is refused before NATS is asked.
      assert.equal(links.a!.knows('ghost'), false, 'unreachable: left the directory');
      await assert.rejects(pub.publish('ghost/x', 1, { ack: true }), { code: 'NO_ROUTE', message: /not known/ });
    } finally {
      await raw.close();
    }
  });

  test('a dispatcher killed (SIGKILL): plain publishes to it are counted as lost, it leaves the directory at once, later ones are refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nodeset-fed-'));
    const script = join(dir, 'doomed.mts');
    const src = (f: string) => JSON.stringify(pathToFileURL(join(ROOT, f)).href);
    writeFileSync(
      script,
      `import { NatsFederation } from ${src('src/federation/nats-federation.ts')};
import { Dispatcher } from ${src('src/index.ts')};
const link = new NatsFederation({ servers: [${JSON.stringify(server(0).url)}] });
await new Dispatcher({ port: 0, hostName: 'doomed' }, link).start();
`,
    );
    const raw = await connect({ servers: [server(0).url] });
    const child = spawnOwned(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, stdio: 'ignore' });
    try {
      const left: string[] = [];
      const watcher = await at('a', 'doomed-watcher');
      await watcher.subscribe('$nodeset.host.left', (p: { host: string; reason: string }) => {
        if (p.host === 'doomed') left.push(p.reason);
      });
      await until(() => links.a!.knows('doomed'), 20_000, 'a to learn about the doomed host');
      const pub = await at('a', 'doomed-pub');
      const errors: string[] = [];
      pub.on('error', (e) => void errors.push((e as NodesetError).code));
      await pub.publish('doomed/x', 'before', { ack: true });
      child.kill('SIGKILL');
      await waitForExit(child, 10_000 * WAIT_SCALE);
      // Its connection closed with the process: wait until its server no longer has its subscription.
      await until(
        () =>
          raw.request('nodeset.id.doomed', undefined, { timeout: 500 }).then(
            () => false,
            (e: { code?: string }) => e.code === '503',
          ),
        5000,
        'the NATS server to drop the killed dispatcher',
      );
      const t0 = Date.now();
      const before = { ...hosts.a!.stats };
      for (let i = 0; i < 50; i++) await pub.publish('doomed/x', i);
      const lost = () => hosts.a!.stats.federationLost - before.federationLost;
      const refused = () => hosts.a!.stats.federationRejected - before.federationRejected;
      // Nothing lost silently: each of the 50 is counted as lost (sent, then the server said nobody
      // subscribes) or refused (the host had left the directory: an error event at the publisher).
      await until(() => lost() + refused() === 50, 5000, `50 counted (lost ${lost()}, refused ${refused()})`);
      assert.ok(lost() >= 1, 'the first one was sent and counted as lost');
      await until(() => errors.length === refused(), 5000, 'an error event per refused publish');
      assert.ok(errors.every((c) => c === 'NO_ROUTE'));
      assert.equal(links.a!.knows('doomed'), false);
      await until(() => left.length === 1, 2000, 'the left event');
      assert.deepEqual(left, ['unreachable']);
      assert.ok(Date.now() - t0 < 2000, `well within the host timeout (${Date.now() - t0} ms)`);
    } finally {
      await stopProcess(child, 'SIGKILL');
      await raw.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a payload larger than NATS max_payload is refused with TOO_LARGE before any delivery', async () => {
    const pub = await at('a', 'big-pub');
    const local = await at('a', 'big-local');
    let got = 0;
    await local.subscribe('big', () => void got++);
    const max = links.a!.maxPayload;
    assert.ok(max > 0, 'max_payload learnt from the server');
    const big = Buffer.alloc(max - 100);
    await assert.rejects(pub.publish('b/big', big, { ack: true }), { code: 'TOO_LARGE' });
    await assert.rejects(pub.publish('*/big', big, { ack: true }), { code: 'TOO_LARGE' });
    assert.equal(await pub.publish('*/big', Buffer.alloc(1000), { ack: true }), 1);
    assert.equal(got, 1, 'the refused one was not delivered locally either');
  });

  test('subscribe() on b resolving means a */ publish from a host on another server reaches it (200 fresh patterns)', async () => {
    const sub = await at('b', 'interest-sub');
    const pub = await at('c', 'interest-pub');
    const got = new Set<number>();
    for (let i = 0; i < 200; i++) {
      await sub.subscribe(`probe.p${i}`, () => void got.add(i));
      await pub.publish(`*/probe.p${i}`, i, { ack: true });
    }
    await until(() => got.size === 200, 5000, `all 200 (got ${got.size})`);
  });

  test('start-up with NATS down: serves local traffic at once, connects in the background', async () => {
    const port = await freePort();
    const link = new NatsFederation({ servers: [`nats://127.0.0.1:${port}`], startWaitMs: 200 });
    const t0 = Date.now();
    const lone = await new Dispatcher({ port: 0, hostName: 'lone' }, link).start();
    const late = new NatsServer();
    try {
      assert.ok(Date.now() - t0 < 2000, 'start() did not wait for NATS');
      assert.equal(lone.federationConnected, false);
      const n = await startNode(lone, { name: 'lone-node', statsIntervalMs: 0 });
      try {
        await n.subscribe('here', () => {});
        assert.equal(await n.publish('here', 1, { ack: true }), 1, 'local traffic');
        await assert.rejects(n.publish('a/x', 1, { ack: true }), { code: 'NO_ROUTE' });
        await late.start(port);
        await until(() => lone.federationConnected === true, 10_000, 'background connect');
      } finally {
        await n.stop();
      }
    } finally {
      await lone.stop();
      await late.stop();
    }
  });

  test('a frozen NATS server: what it has not confirmed is bounded; past the bound publishes get BUFFER_FULL, and pass again once it is back', async () => {
    const s = await joinCluster();
    const link = new NatsFederation({ servers: [s.url], pingIntervalMs: 60_000, maxPendingBytes: 64 * 1024 });
    const f = await new Dispatcher({ port: 0, hostName: 'bounded' }, link).start();
    try {
      await until(() => link.knows('a'), 5000, 'directory');
      const n = await startNode(f, { name: 'bounded-pub', statsIntervalMs: 0 });
      const errors: string[] = [];
      n.on('error', (e) => void errors.push((e as NodesetError).code));
      try {
        s.signal('SIGSTOP');
        const chunk = Buffer.alloc(4096);
        for (let i = 0; i < 100; i++) await n.publish('a/bounded', chunk);
        await n.publish('a/bounded', 'probe', { ack: true }).catch((e: NodesetError) => void errors.push(e.code));
        assert.ok(errors.includes('BUFFER_FULL'), `refused past the bound: ${errors.length} errors`);
        assert.ok(errors.length >= 60, `at most ~64 KiB accepted (${100 - errors.length} of 100)`);
        s.signal('SIGCONT');
        await until(
          async () => (await n.publish('a/bounded', 1, { ack: true }).catch(() => -1)) === 0,
          10_000,
          'publishes pass again',
        );
      } finally {
        await n.stop();
      }
    } finally {
      s.signal('SIGCONT');
      await f.stop();
      await s.stop();
    }
  });

  test('a frozen NATS server (SIGSTOP) is detected by pings: the link goes down and cross-host publishes are refused', async () => {
    const s = await joinCluster();
    const link = new NatsFederation({ servers: [s.url], pingIntervalMs: 300, maxPingOut: 2 });
    const f = await new Dispatcher({ port: 0, hostName: 'frozen' }, link).start();
    try {
      await until(() => link.knows('a'), 5000, 'directory');
      const n = await startNode(f, { name: 'frozen-pub', statsIntervalMs: 0 });
      try {
        s.signal('SIGSTOP');
        await until(() => f.federationConnected === false, 5000, 'stale link detected');
        await assert.rejects(n.publish('a/x', 1, { ack: true }), { code: 'NO_ROUTE' });
        s.signal('SIGCONT');
      } finally {
        await n.stop();
      }
    } finally {
      s.signal('SIGCONT');
      await f.stop();
      await s.stop();
    }
  });
});
