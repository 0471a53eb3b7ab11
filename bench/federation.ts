// Cross-host cost, side by side in one run: a plain nats.js publisher →
// nats-server → nats.js subscriber, nodeset on one host (A → A), and nodeset
// across hosts (A → NATS → B). Publisher, subscriber, both dispatchers and
// nats-server each run in their own process; every publisher makes one round
// trip per 1,024 messages (bench/clients.ts). The order of the three is
// rotated between repeats, and every run is printed.
//
// Per run: throughput, CPU per message of each dispatcher (A and B summed for
// cross-host) and of nats-server. Then unloaded latency: one message at a
// time, ping → pong → ping, half the round trip.
//
//   npm run bench:federation [-- --count 1000000 --size 128 --repeat 3 --pings 2000 --json]
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { cpuMs, type Proc, start, startDispatcher } from './procs.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '1000000' },
    size: { type: 'string', default: '128' },
    repeat: { type: 'string', default: '3' },
    pings: { type: 'string', default: '2000' },
    json: { type: 'boolean', default: false },
  },
});
const COUNT = Number(values.count);
const SIZE = String(Number(values.size));
const REPEAT = Number(values.repeat);
const PINGS = String(Number(values.pings));
const natsBin = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((p) => existsSync(p));
if (natsBin === undefined) {
  process.stdout.write('nats-server is not installed (npm run bench:setup): skipped\n');
  process.exit(0);
}

type Kind = 'nats' | 'local' | 'cross-host';
interface Run {
  kind: Kind;
  rate: number;
  received: number;
  /** Dispatcher CPU per message, in µs (A + B for cross-host; 0 for plain NATS). */
  dispatcherUs: number;
  /** nats-server CPU per message, in µs. */
  natsUs: number;
  loadStart: number;
  loadEnd: number;
}

const all: ChildProcess[] = [];
const worker = (args: string[], env: NodeJS.ProcessEnv = {}): Proc => {
  const p = start(process.execPath, ['--import', 'tsx', 'bench/suite-worker.ts', ...args], env);
  all.push(p.child);
  return p;
};
const stopped = (p: Proc) =>
  p.child.exitCode !== null ? Promise.resolve() : new Promise<void>((r) => p.child.once('exit', () => r()));

try {
  const nats = start(natsBin, ['-a', '127.0.0.1', '-p', '-1']);
  all.push(nats.child);
  const natsUrl = `nats://127.0.0.1:${/127\.0\.0\.1:(\d+)/.exec(await nats.line(/Listening for client connections/))![1]}`;
  const natsPid = nats.child.pid!;
  const dispatcher = async (host: string) => {
    const d = await startDispatcher(['--host-name', host, '--federation', natsUrl]);
    all.push(d.proc.child);
    return { url: d.url, pid: d.proc.child.pid! };
  };
  const A = await dispatcher('benchA');
  const B = await dispatcher('benchB');
  const cpuOf = (pids: number[]) => pids.reduce((sum, pid) => sum + cpuMs(pid), 0);

  const once = async (kind: Kind): Promise<Run> => {
    const peer = kind === 'nats' ? 'nats' : 'nodeset';
    const subUrl = kind === 'nats' ? natsUrl : kind === 'local' ? A.url : B.url;
    const pubUrl = kind === 'nats' ? natsUrl : A.url;
    const pubUri = kind === 'cross-host' ? 'benchB/bench.data' : 'bench.data';
    const dispatchers = kind === 'nats' ? [] : kind === 'local' ? [A.pid] : [A.pid, B.pid];
    const sub = worker([peer, subUrl, 'sub', 'bench.data', String(COUNT), SIZE]);
    await sub.line(/^ready$/);
    // The publisher's round trip every 1,024 messages ends at its own broker: nats-server, or dispatcher A.
    const roundTrip: NodeJS.ProcessEnv = kind === 'cross-host' ? { BENCH_ROUND_TRIP_URI: 'bench.round-trip' } : {};
    const pub = worker([peer, pubUrl, 'pub', pubUri, String(COUNT), SIZE], roundTrip);
    await pub.line(/^ready$/);
    const loadStart = loadavg()[0] as number;
    const d0 = cpuOf(dispatchers);
    const n0 = cpuMs(natsPid);
    pub.child.stdin!.write('go\n');
    const result = JSON.parse(await sub.line(/^\{/)) as { received: number; ms: number };
    const d1 = cpuOf(dispatchers);
    const n1 = cpuMs(natsPid);
    await Promise.all([stopped(sub), stopped(pub)]);
    const received = result.received;
    return {
      kind,
      rate: received / (result.ms / 1000),
      received,
      dispatcherUs: ((d1 - d0) * 1000) / received,
      natsUs: ((n1 - n0) * 1000) / received,
      loadStart,
      loadEnd: loadavg()[0] as number,
    };
  };

  /** Unloaded latency: one message in flight, ping → pong, half the round trip, in µs. */
  const latency = async (kind: Kind): Promise<{ p50: number; p99: number }> => {
    const peer = kind === 'nats' ? 'nats' : 'nodeset';
    const pingUrl = kind === 'nats' ? natsUrl : A.url;
    const pongUrl = kind === 'nats' ? natsUrl : kind === 'local' ? A.url : B.url;
    // Across hosts the pinger on A publishes to B's ping and the ponger on B to A's pong.
    const cross = kind === 'cross-host';
    const pongEnv = cross ? { BENCH_PING_SUBJECT: 'lat.ping', BENCH_PONG_SUBJECT: 'benchA/lat.pong' } : {};
    const pingEnv = cross ? { BENCH_PING_SUBJECT: 'benchB/lat.ping', BENCH_PONG_SUBJECT: 'lat.pong' } : {};
    const ponger = worker([peer, pongUrl, 'ponger', 'lat', PINGS, SIZE], pongEnv);
    await ponger.line(/^ready$/);
    const pinger = worker([peer, pingUrl, 'pinger', 'lat', PINGS, SIZE], pingEnv);
    await pinger.line(/^ready$/);
    pinger.child.stdin!.write('go\n');
    const r = JSON.parse(await pinger.line(/^\{/)) as { latencyUs: { p50: number; p99: number } };
    ponger.child.kill('SIGTERM');
    await Promise.all([stopped(ponger), stopped(pinger)]);
    return { p50: r.latencyUs.p50 / 2, p99: r.latencyUs.p99 / 2 };
  };

  const kinds: Kind[] = ['nats', 'local', 'cross-host'];
  const runs: Run[] = [];
  const f = (n: number, d = 2) => n.toFixed(d);
  const out = (s: string) => {
    if (!values.json) process.stdout.write(`${s}\n`);
  };
  out(`${COUNT.toLocaleString('en-US')} messages of ${SIZE} B per run, ${REPEAT} rounds, rotating order`);
  out('round  system       msg/s       received   dispatcher CPU µs/msg  nats-server CPU µs/msg  load');
  for (let round = 0; round < REPEAT; round++) {
    const order = kinds.map((_, i) => kinds[(i + round) % kinds.length] as Kind);
    for (const kind of order) {
      const r = await once(kind);
      runs.push(r);
      out(
        `${String(round + 1).padEnd(6)} ${kind.padEnd(12)} ${Math.round(r.rate).toLocaleString('en-US').padStart(10)} ` +
          `${String(r.received).padStart(10)}   ${f(r.dispatcherUs).padStart(20)}  ${f(r.natsUs).padStart(22)}  ` +
          `${f(r.loadStart, 1)} → ${f(r.loadEnd, 1)}`,
      );
    }
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)] as number;
  };
  const med = (kind: Kind, key: 'rate' | 'dispatcherUs' | 'natsUs') =>
    median(runs.filter((r) => r.kind === kind).map((r) => r[key]));
  const ratios = runs
    .filter((r) => r.kind === 'cross-host')
    .map((r, i) => r.rate / (runs.filter((n) => n.kind === 'nats')[i] as Run).rate);
  const lat: Record<Kind, { p50: number; p99: number }> = {
    nats: await latency('nats'),
    local: await latency('local'),
    'cross-host': await latency('cross-host'),
  };
  const summary = {
    count: COUNT,
    size: Number(SIZE),
    runs,
    median: Object.fromEntries(
      kinds.map((k) => [k, { rate: med(k, 'rate'), dispatcherUs: med(k, 'dispatcherUs'), natsUs: med(k, 'natsUs') }]),
    ),
    crossHostVsNats: { perRound: ratios, median: median(ratios) },
    latencyUs: lat,
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } else {
    out('');
    out(
      `median      nats ${Math.round(med('nats', 'rate')).toLocaleString('en-US')} msg/s, local ${Math.round(med('local', 'rate')).toLocaleString('en-US')}, cross-host ${Math.round(med('cross-host', 'rate')).toLocaleString('en-US')}`,
    );
    out(
      `cross-host / plain NATS throughput, per round: ${ratios.map((r) => f(r)).join(', ')} (median ${f(median(ratios))})`,
    );
    out(
      `dispatcher CPU per cross-host message (A + B): ${f(med('cross-host', 'dispatcherUs'))} µs; per local message: ${f(med('local', 'dispatcherUs'))} µs`,
    );
    out(
      `nats-server CPU per message: plain ${f(med('nats', 'natsUs'))} µs, cross-host ${f(med('cross-host', 'natsUs'))} µs`,
    );
    out(
      `unloaded latency, one way (p50 / p99 µs): nats ${f(lat.nats.p50, 0)} / ${f(lat.nats.p99, 0)}, local ${f(lat.local.p50, 0)} / ${f(lat.local.p99, 0)}, cross-host ${f(lat['cross-host'].p50, 0)} / ${f(lat['cross-host'].p99, 0)}`,
    );
  }
} finally {
  for (const c of all) if (c.exitCode === null) c.kill('SIGTERM');
}
