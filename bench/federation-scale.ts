// The federation at scale, on one machine: a 3-server NATS cluster (routes on
// 127.0.0.1), 10 `nodeset-dispatcher` processes (hosts h0..h9, host i
// attached to NATS server i mod 3) and 20 nodes per host (one NodeCollection
// per host, all in this process). Every node subscribes to `load.in.<k>`;
// every node publishes, acked, to node k of another host (`h<j>/load.in.<k>`,
// j cycling over the 9 others), a few publishes in flight each, for a bounded
// time. Prints the cross-host throughput, the NATS subscriptions of each
// dispatcher (from the servers' /connz?subs=1), dispatcher RSS and CPU per
// message. Everything it starts is stopped, also on failure or Ctrl-C.
//
//   npm run bench:federation-scale [-- --seconds 20 --hosts 10 --nodes 20 --window 2]
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { Node, NodeCollection } from '../src/index.js';
import { cpuMs, peakRssMb, start, startDispatcher } from './procs.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    hosts: { type: 'string', default: '10' },
    nodes: { type: 'string', default: '20' },
    window: { type: 'string', default: '2' },
  },
});
/** Traffic time, bounded to 60 s. */
const SECONDS = Math.min(60, Math.max(1, Number(values.seconds)));
const HOSTS = Math.max(2, Number(values.hosts));
const NODES = Math.max(1, Number(values.nodes));
/** Acked publishes each node keeps in flight. */
const WINDOW = Math.max(1, Number(values.window));
const PAYLOAD = Buffer.alloc(128, 7);

const natsBin = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].find((p) =>
  existsSync(p),
);
if (natsBin === undefined) {
  process.stdout.write('nats-server is not installed (apt-get install nats-server): skipped\n');
  process.exit(0);
}
if (!existsSync('dist/cli/nodeset-dispatcher.js')) {
  process.stderr.write('build first: npm run build\n');
  process.exit(1);
}

/** Processes started, in order: NATS servers first, so they are stopped last. */
const children: ChildProcess[] = [];
const natsChildren = new Set<ChildProcess>();
const collections: NodeCollection[] = [];
let cleaning: Promise<void> | null = null;

/** Stops the nodes, then every process this script started (SIGTERM, SIGKILL after 3 s). */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.allSettled(collections.map((c) => c.stop()));
    const stop = (procs: ChildProcess[]) =>
      Promise.all(
        procs.map(async (c) => {
          if (c.exitCode !== null || c.signalCode !== null) return;
          const exited = new Promise<void>((r) => c.once('exit', () => r()));
          c.kill('SIGTERM');
          const timer = setTimeout(() => c.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(timer);
        }),
      );
    // Dispatchers first (their goodbye needs NATS), then the NATS servers.
    await stop(children.filter((c) => !natsChildren.has(c)));
    await stop(children.filter((c) => natsChildren.has(c)));
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void cleanup().then(() => process.exit(130));
  });
}

/** A free TCP port on 127.0.0.1: cluster routes need known ports. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const deadline = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([
    p,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms).unref(),
    ),
  ]);

interface NatsServerProc {
  url: string;
  monitor: string;
  pid: number;
}

async function startCluster(): Promise<NatsServerProc[]> {
  const routes = [await freePort(), await freePort(), await freePort()];
  return Promise.all(
    routes.map(async (port) => {
      const p = start(natsBin as string, [
        '-a',
        '127.0.0.1',
        '-p',
        '-1',
        '-m',
        '-1',
        '--cluster_name',
        'nodeset-scale',
        '--cluster',
        `nats://127.0.0.1:${port}`,
        '--routes',
        routes
          .filter((r) => r !== port)
          .map((r) => `nats://127.0.0.1:${r}`)
          .join(','),
      ]);
      children.push(p.child);
      natsChildren.add(p.child);
      const monitor = /127\.0\.0\.1:(\d+)/.exec(await p.line(/Starting http monitor/))![1]!;
      const client = /127\.0\.0\.1:(\d+)/.exec(await p.line(/Listening for client connections/))![1]!;
      return { url: `nats://127.0.0.1:${client}`, monitor: `http://127.0.0.1:${monitor}`, pid: p.child.pid as number };
    }),
  );
}

/** NATS subscriptions per dispatcher connection, by host name, from every server's /connz. */
async function natsSubscriptions(servers: NatsServerProc[]): Promise<Map<string, number>> {
  const subs = new Map<string, number>();
  for (const s of servers) {
    const res = await fetch(`${s.monitor}/connz?subs=1&limit=1024`);
    const body = (await res.json()) as { connections?: { name?: string; subscriptions?: number }[] };
    for (const c of body.connections ?? []) {
      const m = /^nodeset-dispatcher-(.+)$/.exec(c.name ?? '');
      if (m !== null) subs.set(m[1] as string, c.subscriptions ?? Number.NaN);
    }
  }
  return subs;
}

const rssMb = (pid: number) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
};
const stats = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const avg = xs.reduce((a, b) => a + b, 0) / xs.length;
  return `min ${sorted[0]!.toFixed(1)}, avg ${avg.toFixed(1)}, max ${sorted[sorted.length - 1]!.toFixed(1)}`;
};

let exitCode = 0;
try {
  const t0 = Date.now();
  const servers = await startCluster();
  const dispatchers = await Promise.all(
    Array.from({ length: HOSTS }, async (_, i) => {
      const d = await startDispatcher(['--host-name', `h${i}`, '--federation', servers[i % servers.length]!.url]);
      children.push(d.proc.child);
      return { host: `h${i}`, url: d.url, pid: d.proc.child.pid as number };
    }),
  );

  let received = 0;
  const nodes: Node[][] = [];
  for (const d of dispatchers) {
    const c = new NodeCollection({ dispatcherUrl: d.url, name: `scale-${d.host}` });
    const members = Array.from({ length: NODES }, (_, k) =>
      c.add(new Node({ name: `${d.host}-n${k}`, statsIntervalMs: 0, ackTimeoutMs: 10_000 })),
    );
    collections.push(c);
    await c.start();
    await Promise.all(
      members.map((n, k) =>
        n.subscribe(`load.in.${k}`, () => {
          received++;
        }),
      ),
    );
    nodes.push(members);
  }

  // Every host knows every other once an acked publish to each passes (the directory fills in ~1 s).
  const probe = nodes[0]![0]!;
  for (const d of dispatchers.slice(1)) {
    for (let tries = 0; ; tries++) {
      try {
        await deadline(probe.publish(`${d.host}/load.warmup`, 0, { ack: true }), 5000, `warm-up to ${d.host}`);
        break;
      } catch (err) {
        if (tries > 100) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
  const setupMs = Date.now() - t0;
  const subs = await natsSubscriptions(servers);

  const cpuBefore = dispatchers.map((d) => cpuMs(d.pid));
  const natsCpuBefore = servers.map((s) => cpuMs(s.pid));
  const receivedBefore = received;
  let acked = 0;
  let errors = 0;
  const firstErrors = new Map<string, number>();
  const started = Date.now();
  const end = started + SECONDS * 1000;
  const pump = async (i: number, k: number, lane: number) => {
    const node = nodes[i]![k]!;
    let n = lane;
    while (Date.now() < end) {
      const j = (i + 1 + (n++ % (HOSTS - 1))) % HOSTS;
      try {
        await node.publish(`h${j}/load.in.${k}`, PAYLOAD, { ack: true });
        acked++;
      } catch (err) {
        errors++;
        const code = (err as { code?: string }).code ?? (err as Error).message;
        firstErrors.set(code, (firstErrors.get(code) ?? 0) + 1);
      }
    }
  };
  const pumps: Promise<void>[] = [];
  for (let i = 0; i < HOSTS; i++)
    for (let k = 0; k < NODES; k++) for (let w = 0; w < WINDOW; w++) pumps.push(pump(i, k, w));
  await Promise.all(pumps);
  const elapsed = (Date.now() - started) / 1000;
  // An ack may come back (through NATS) just before its message reaches the subscriber here.
  for (let i = 0; i < 100 && received - receivedBefore < acked; i++) await new Promise((r) => setTimeout(r, 20));
  const delivered = received - receivedBefore;
  const cpu = dispatchers.map((d, i) => cpuMs(d.pid) - cpuBefore[i]!);
  const natsCpu = servers.map((s, i) => cpuMs(s.pid) - natsCpuBefore[i]!);
  const rss = dispatchers.map((d) => rssMb(d.pid));
  const peak = dispatchers.map((d) => peakRssMb(d.pid));
  const cpuTotal = cpu.reduce((a, b) => a + b, 0);
  const natsCpuTotal = natsCpu.reduce((a, b) => a + b, 0);

  const out = (s: string) => process.stdout.write(`${s}\n`);
  out(
    `federation scale: ${servers.length} NATS servers (cluster), ${HOSTS} dispatchers, ${NODES} nodes each (${HOSTS * NODES} nodes), ${HOSTS * NODES * WINDOW} acked publishes in flight, 128-byte payloads, ${elapsed.toFixed(1)} s (set-up ${(setupMs / 1000).toFixed(1)} s)`,
  );
  out(
    `cross-host throughput        ${Math.round(acked / elapsed).toLocaleString('en-US')} msg/s acked (${acked.toLocaleString('en-US')} acked, ${delivered.toLocaleString('en-US')} delivered, ${errors} errors${errors > 0 ? ` ${JSON.stringify(Object.fromEntries(firstErrors))}` : ''})`,
  );
  const subList = dispatchers.map((d) => subs.get(d.host) ?? Number.NaN);
  out(
    `NATS subscriptions / dispatcher ${subList.join(' ')} (its own subjects, plus one per distinct all-hosts pattern: ${NODES} here)`,
  );
  out(`dispatcher RSS (MB)          ${stats(rss)}; peak ${stats(peak)}`);
  out(
    `dispatcher CPU / message     ${((cpuTotal * 1000) / Math.max(1, delivered)).toFixed(1)} us (sending + receiving dispatcher together; ${(cpuTotal / 1000 / elapsed).toFixed(2)} cores for all ${HOSTS})`,
  );
  out(
    `NATS CPU / message           ${((natsCpuTotal * 1000) / Math.max(1, delivered)).toFixed(1)} us (all servers; ${(natsCpuTotal / 1000 / elapsed).toFixed(2)} cores)`,
  );
  if (delivered < acked) {
    out(`MISMATCH: ${acked} acked but ${delivered} delivered`);
    exitCode = 1;
  }
} catch (err) {
  process.stderr.write(`federation-scale failed: ${(err as Error).stack ?? err}\n`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
