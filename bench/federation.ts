// Cross-host cost, side by side in one run: a plain nats.js publisher →
// nats-server → nats.js subscriber, nodeset on one host (A → A), and nodeset
// across hosts (A → NATS → B). Publisher, subscriber, both dispatchers and
// nats-server each run in their own process; every publisher makes one
// round trip per 1,024 messages (bench/clients.ts): for NATS a flush to its
// server, for nodeset an acked publish, which across hosts is answered by
// host B once it has delivered everything before it. The order is rotated
// between rounds, after an unmeasured warm-up run of each, and every run is
// printed.
//
// `--flood` adds `cross-flood`: the publisher's round trip ends at its own
// dispatcher A, so nothing holds it back when host B's subscriber falls
// behind; it shows what overload does (B cuts the subscriber off past its
// limit, and counts what it drops), not a throughput.
//
// Per run: throughput, and the CPU per message of every process: both
// dispatchers (and A alone), nats-server, publisher, subscriber. Then
// unloaded latency: one message at a time, ping → pong, half the round trip.
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
    flood: { type: 'boolean', default: false },
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

/** cross-flood: the publisher's round trip ends at dispatcher A (--flood). */
type Kind = 'nats' | 'local' | 'cross-host' | 'cross-flood';
const cross = (kind: Kind) => kind === 'cross-host' || kind === 'cross-flood';
interface Run {
  kind: Kind;
  rate: number;
  received: number;
  /** Dispatcher CPU per message, in µs (A + B for cross-host; 0 for plain NATS). */
  dispatcherUs: number;
  /** Of which dispatcher A's (the publisher's host), in µs. */
  aUs: number;
  /** nats-server CPU per message, in µs. */
  natsUs: number;
  /** The publisher's and the subscriber's CPU per message, in µs. */
  pubUs: number;
  subUs: number;
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

  const once = async (kind: Kind, count = COUNT): Promise<Run> => {
    const peer = kind === 'nats' ? 'nats' : 'nodeset';
    const subUrl = kind === 'nats' ? natsUrl : kind === 'local' ? A.url : B.url;
    const pubUrl = kind === 'nats' ? natsUrl : A.url;
    const pubUri = cross(kind) ? 'benchB/bench.data' : 'bench.data';
    const dispatchers = kind === 'nats' ? [] : kind === 'local' ? [A.pid] : [A.pid, B.pid];
    const sub = worker([peer, subUrl, 'sub', 'bench.data', String(count), SIZE]);
    await sub.line(/^ready$/);
    const roundTrip: NodeJS.ProcessEnv = kind === 'cross-flood' ? { BENCH_ROUND_TRIP_URI: 'bench.round-trip' } : {};
    const pub = worker([peer, pubUrl, 'pub', pubUri, String(count), SIZE], roundTrip);
    await pub.line(/^ready$/);
    const loadStart = loadavg()[0] as number;
    const d0 = cpuOf(dispatchers);
    const a0 = cpuMs(A.pid);
    const n0 = cpuMs(natsPid);
    pub.child.stdin!.write('go\n');
    const result = JSON.parse(await sub.line(/^\{"received"/)) as { received: number; ms: number; cpuUs: number };
    const published = JSON.parse(await pub.line(/^\{"sent"/)) as { cpuUs: number };
    const d1 = cpuOf(dispatchers);
    const a1 = kind === 'nats' ? a0 : cpuMs(A.pid);
    const n1 = cpuMs(natsPid);
    await Promise.all([stopped(sub), stopped(pub)]);
    const received = result.received;
    return {
      kind,
      rate: received / (result.ms / 1000),
      received,
      dispatcherUs: ((d1 - d0) * 1000) / received,
      aUs: ((a1 - a0) * 1000) / received,
      natsUs: ((n1 - n0) * 1000) / received,
      pubUs: published.cpuUs / count,
      subUs: result.cpuUs / received,
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
    const far = cross(kind);
    const pongEnv = far ? { BENCH_PING_SUBJECT: 'lat.ping', BENCH_PONG_SUBJECT: 'benchA/lat.pong' } : {};
    const pingEnv = far ? { BENCH_PING_SUBJECT: 'benchB/lat.ping', BENCH_PONG_SUBJECT: 'lat.pong' } : {};
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

  const kinds: Kind[] = ['nats', 'local', 'cross-host', ...(values.flood ? (['cross-flood'] as const) : [])];
  const runs: Run[] = [];
  const f = (n: number, d = 2) => n.toFixed(d);
  const out = (line: string) => {
    if (!values.json) process.stdout.write(`${line}\n`);
  };
  const pad = (x: string, n: number) => x.padStart(n);
  out(`${COUNT.toLocaleString('en-US')} messages of ${SIZE} B per run, ${REPEAT} rounds, rotating order`);
  out('CPU in µs per message: dispatchers (of which A), nats-server, publisher, subscriber, and all of them');
  out('round  system         msg/s    received  dispatchers (A)   nats   pub    sub  total  load');
  // Warm-up, not measured: every system once with a fifth of the count, so that the
  // dispatchers' code is compiled and their buffers grown before the first round.
  for (const kind of kinds) await once(kind, Math.max(10_000, Math.round(COUNT / 5)));
  for (let round = 0; round < REPEAT; round++) {
    const order = kinds.map((_, i) => kinds[(i + round) % kinds.length] as Kind);
    for (const kind of order) {
      const r = await once(kind);
      runs.push(r);
      const total = r.dispatcherUs + r.natsUs + r.pubUs + r.subUs;
      out(
        `${String(round + 1).padEnd(6)} ${kind.padEnd(12)} ${pad(Math.round(r.rate).toLocaleString('en-US'), 9)} ` +
          `${pad(String(r.received), 9)}  ${pad(f(r.dispatcherUs), 6)} (${f(r.aUs)})  ${pad(f(r.natsUs), 5)}  ` +
          `${pad(f(r.pubUs), 4)}  ${pad(f(r.subUs), 5)}  ${pad(f(total), 5)}  ${f(r.loadStart, 1)} → ${f(r.loadEnd, 1)}`,
      );
      if (r.received < COUNT) {
        out(`       ${COUNT - r.received} not received: the subscriber fell behind and was cut (counted as dropped)`);
      }
    }
  }
  const median = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)] as number;
  };
  const med = (kind: Kind, key: 'rate' | 'dispatcherUs' | 'aUs' | 'natsUs') =>
    median(runs.filter((r) => r.kind === kind).map((r) => r[key]));
  const natsRuns = runs.filter((n) => n.kind === 'nats');
  const ratios = (kind: Kind) => runs.filter((r) => r.kind === kind).map((r, i) => r.rate / (natsRuns[i] as Run).rate);
  const lat: Partial<Record<Kind, { p50: number; p99: number }>> = {};
  for (const kind of ['nats', 'local', 'cross-host'] as const) lat[kind] = await latency(kind);
  const summary = {
    count: COUNT,
    size: Number(SIZE),
    runs,
    median: Object.fromEntries(
      kinds.map((k) => [
        k,
        { rate: med(k, 'rate'), dispatcherUs: med(k, 'dispatcherUs'), aUs: med(k, 'aUs'), natsUs: med(k, 'natsUs') },
      ]),
    ),
    crossHostVsNats: ratios('cross-host'),
    latencyUs: lat,
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } else {
    const rate = (k: Kind) => Math.round(med(k, 'rate')).toLocaleString('en-US');
    const perRound = (k: Kind) =>
      `${ratios(k)
        .map((r) => f(r))
        .join(', ')} (median ${f(median(ratios(k)))})`;
    out('');
    out(`median msg/s: nats ${rate('nats')}, local ${rate('local')}, cross-host ${rate('cross-host')}`);
    out(`cross-host / plain NATS, per round: ${perRound('cross-host')}`);
    out(
      `dispatcher CPU per cross-host message (A + B): ${f(med('cross-host', 'dispatcherUs'))} µs ` +
        `(A ${f(med('cross-host', 'aUs'))}); per local message: ${f(med('local', 'dispatcherUs'))} µs`,
    );
    out(
      `nats-server CPU per message: plain ${f(med('nats', 'natsUs'))} µs, cross-host ${f(med('cross-host', 'natsUs'))} µs`,
    );
    const l = (k: Kind) => `${f(lat[k]?.p50 ?? 0, 0)} / ${f(lat[k]?.p99 ?? 0, 0)}`;
    out(
      `unloaded latency, one way (p50 / p99 µs): nats ${l('nats')}, local ${l('local')}, cross-host ${l('cross-host')}`,
    );
  }
} finally {
  for (const c of all) if (c.exitCode === null) c.kill('SIGTERM');
}
