// nodeset benchmark suite: every scenario with publisher(s), broker and
// subscriber(s) each in their own process; optionally the same scenarios,
// alternating in the same run, against nats-server and redis-server pub/sub.
//
//   npm run bench                      nodeset alone
//   npm run bench:compare              nodeset, NATS and Redis side by side, with ratios
//   options: see USAGE below (--help)
//
// Fairness: every peer's publisher makes one round trip to its broker per
// 1,024 messages and waits for it (nodeset: an acknowledged publish; NATS:
// flush(); Redis: the PUBLISH replies), so in-flight data is bounded the same
// way everywhere; every peer's subscriber does the same work per message
// (reads an 8-byte timestamp from the payload as its client hands it over).
// Repeated runs rotate the order of the peers. Subscribers stop by themselves
// when the expected count arrived or nothing came for 2 s (loss is reported).
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import type { PeerName } from './clients.js';
import { cpuMs, type Proc, peakRssMb, runQueueMs, start, startDispatcher } from './procs.js';

const USAGE = `usage: nodeset-bench [options]   (npm run bench / npm run bench:compare)
  --peers LIST        nodeset,nats,redis (default nodeset; peers not installed are skipped)
  --scenarios LIST    1-1,1-8,8-1,direct-1-4,request,pingpong (default: all)
  --sizes LIST        payload bytes, e.g. 16,128,1024,16384 (default: 128, and 1-1 also at 16, 1024, 16384)
  --count N           messages per throughput round (default 100000)
  --warmup N          messages of a discarded first round against the same broker (default 100000; 0: none)
  --round-trips N     request and ping-pong round trips (default 5000)
  --repeat N          run every scenario N times, rotating the peers' order; report the median
                      of each figure, and every run's rate (min-max)
  --json              results as JSON
`;

function parseOptions() {
  return parseArgs({
    options: {
      help: { type: 'boolean', short: 'h', default: false },
      peers: { type: 'string', default: 'nodeset' },
      scenarios: { type: 'string', default: '1-1,1-8,8-1,direct-1-4,request,pingpong' },
      sizes: { type: 'string' },
      count: { type: 'string', default: '100000' },
      'round-trips': { type: 'string', default: '5000' },
      warmup: { type: 'string', default: '100000' },
      repeat: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
    },
  });
}

let values: ReturnType<typeof parseOptions>['values'];
try {
  values = parseOptions().values;
} catch (err) {
  process.stderr.write(`nodeset-bench: ${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
function count(name: 'count' | 'round-trips' | 'warmup' | 'repeat', min: number): number {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`nodeset-bench: --${name} must be an integer >= ${min}\n`);
    process.exit(2);
  }
  return n;
}
const COUNT = count('count', 1);
const ROUND_TRIPS = count('round-trips', 1);
const WARMUP = count('warmup', 0);
const REPEAT = count('repeat', 1);
const SIZES = (values.sizes ?? '128').split(',').map(Number);
const SCENARIOS = values.scenarios.split(',');
const requested = values.peers.split(',') as PeerName[];
const KNOWN_SCENARIOS = ['1-1', '1-8', '8-1', 'direct-1-4', 'request', 'pingpong'];
const bad =
  SCENARIOS.find((x) => !KNOWN_SCENARIOS.includes(x)) ??
  requested.find((x) => !['nodeset', 'nats', 'redis'].includes(x)) ??
  (SIZES.some((n) => !Number.isInteger(n) || n < 0) ? values.sizes : undefined);
if (bad !== undefined) {
  process.stderr.write(`nodeset-bench: unknown scenario, peer or size: ${bad}\n${USAGE}`);
  process.exit(2);
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

const natsBin = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((p) => existsSync(p));
const redisBin = ['/usr/bin/redis-server', '/usr/sbin/redis-server'].find((p) => existsSync(p));

/** Starts a broker; resolves with its URL and process. */
async function broker(peer: PeerName): Promise<{ url: string; proc: Proc }> {
  if (peer === 'nodeset') return startDispatcher();
  if (peer === 'nats') {
    const proc = start(natsBin!, ['-a', '127.0.0.1', '-p', '-1']);
    const port = /127\.0\.0\.1:(\d+)/.exec(await proc.line(/Listening for client connections/))![1];
    return { url: `nats://127.0.0.1:${port}`, proc };
  }
  const port = await freePort();
  const proc = start(redisBin!, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  await proc.line(/Ready to accept connections/);
  return { url: `redis://127.0.0.1:${port}`, proc };
}

/** A worker's result line (its log lines are JSON too, but start with `{"level"`). */
const RESULT_LINE = /^\{"(received|sent|roundTrips)"/;

const worker = (
  peer: PeerName,
  url: string,
  role: string,
  subject: string,
  count: number,
  size: number,
  direct = false,
) =>
  start(
    process.execPath,
    ['--import', 'tsx', 'bench/suite-worker.ts', peer, url, role, subject, String(count), String(size)],
    {
      BENCH_DIRECT: direct ? '1' : '0',
    },
  );

interface Result {
  scenario: string;
  size: number;
  peer: PeerName;
  /** Messages per second at the subscribers (deliveries for fan-out). */
  rate?: number;
  mbPerSec?: number;
  sent?: number;
  received?: number;
  lost?: number;
  latencyUs?: { p50: number; p99: number; max: number };
  brokerCpuUsPerMsg?: number;
  /** Time the broker was runnable but waiting for a CPU, per message (a busy host shows here). */
  brokerWaitUsPerMsg?: number;
  brokerPeakRssMb?: number;
  /** Runs behind the figures (medians; loss, max latency and RSS: the worst run). */
  runs?: number;
  /** Every run's rate, in the order run. */
  rates?: number[];
}

async function runScenario(peer: PeerName, scenario: string, size: number): Promise<Result | null> {
  if (peer === 'redis' && (scenario === 'request' || scenario === 'direct-1-4')) return null;
  const { url, proc } = await broker(peer);
  const procs: Proc[] = [proc];
  try {
    const pid = proc.child.pid!;
    const result: Result = { scenario, size, peer };
    if (scenario === 'request' || scenario === 'pingpong') {
      const [serveRole, driveRole] = scenario === 'request' ? ['responder', 'requester'] : ['ponger', 'pinger'];
      const server = worker(peer, url, serveRole, 'bench.rt', ROUND_TRIPS, size);
      procs.push(server);
      await server.line(/^ready$/);
      const driver = worker(peer, url, driveRole, 'bench.rt', ROUND_TRIPS, size);
      procs.push(driver);
      await driver.line(/^ready$/);
      driver.child.stdin!.write('go\n');
      const r = JSON.parse(await driver.line(RESULT_LINE));
      result.latencyUs = r.latencyUs;
      result.brokerPeakRssMb = peakRssMb(pid);
      return result;
    }
    // Warm-up: one discarded round against the same broker, so a JIT-compiled
    // dispatcher is measured in its steady state, as the compiled peers are.
    if (WARMUP > 0) await throughputRound(peer, url, scenario, size, WARMUP, procs, pid);
    return { ...result, ...(await throughputRound(peer, url, scenario, size, COUNT, procs, pid)) };
  } finally {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGTERM');
  }
}

/** One round of a throughput scenario with fresh publisher and subscriber processes. */
async function throughputRound(
  peer: PeerName,
  url: string,
  scenario: string,
  size: number,
  count: number,
  procs: Proc[],
  brokerPid: number,
): Promise<Partial<Result>> {
  const [pubs, subs] =
    scenario === '1-8' ? [1, 8] : scenario === '8-1' ? [8, 1] : scenario === 'direct-1-4' ? [1, 4] : [1, 1];
  const direct = scenario === 'direct-1-4';
  const perPub = Math.floor(count / pubs);
  // Work-queue subscribers cannot know their share in advance (NATS queue groups are not
  // strictly round-robin): they count until nothing arrives for 2 s instead.
  const expected = perPub * pubs;
  const subProcs = [];
  for (let i = 0; i < subs; i++) {
    const s = worker(peer, url, 'sub', 'bench.data', expected, size, direct);
    procs.push(s);
    subProcs.push(s);
    await s.line(/^ready$/);
  }
  const pubProcs = [];
  for (let i = 0; i < pubs; i++) {
    const p = worker(peer, url, 'pub', 'bench.data', perPub, size, direct);
    procs.push(p);
    pubProcs.push(p);
    await p.line(/^ready$/);
  }
  const cpu0 = cpuMs(brokerPid);
  const wait0 = runQueueMs(brokerPid);
  for (const p of pubProcs) p.child.stdin!.write('go\n');
  const results = await Promise.all(subProcs.map(async (s) => JSON.parse(await s.line(RESULT_LINE))));
  await Promise.all(pubProcs.map((p) => p.line(RESULT_LINE)));
  const received = results.reduce((n, r) => n + r.received, 0);
  const ms = Math.max(...results.map((r) => r.ms));
  const sent = perPub * pubs;
  const shouldReceive = direct ? sent : sent * subs;
  const rate = received / (ms / 1000);
  return {
    rate,
    mbPerSec: (rate * size) / 1e6,
    sent,
    received,
    lost: shouldReceive - received,
    latencyUs: results[0].latencyUs,
    brokerCpuUsPerMsg: ((cpuMs(brokerPid) - cpu0) * 1000) / sent,
    brokerWaitUsPerMsg: ((runQueueMs(brokerPid) - wait0) * 1000) / sent,
    brokerPeakRssMb: peakRssMb(brokerPid),
  };
}

/** One result per scenario, size and peer: the median of each figure over the repeated runs. */
function medians(results: Result[]): Result[] {
  const groups = new Map<string, Result[]>();
  for (const r of results) {
    const key = `${r.scenario} ${r.size} ${r.peer}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const median = (xs: (number | undefined)[]) => {
    const v = xs.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
    return v.length === 0 ? undefined : (v[Math.floor((v.length - 1) / 2)] as number);
  };
  return [...groups.values()].map((group) => {
    const first = group[0] as Result;
    if (group.length === 1) return first;
    const m = (pick: (r: Result) => number | undefined) => median(group.map(pick));
    const out: Result = { scenario: first.scenario, size: first.size, peer: first.peer, runs: group.length };
    if (group.every((r) => r.rate !== undefined)) out.rates = group.map((r) => r.rate as number);
    const set = <K extends keyof Result>(key: K, value: Result[K] | undefined) => {
      if (value !== undefined) out[key] = value;
    };
    set(
      'rate',
      m((r) => r.rate),
    );
    set(
      'mbPerSec',
      m((r) => r.mbPerSec),
    );
    set(
      'sent',
      m((r) => r.sent),
    );
    set(
      'received',
      m((r) => r.received),
    );
    // Loss: the worst run, never a median.
    set('lost', group.some((r) => r.lost !== undefined) ? Math.max(...group.map((r) => r.lost ?? 0)) : undefined);
    if (group.some((r) => r.latencyUs !== undefined)) {
      out.latencyUs = {
        p50: m((r) => r.latencyUs?.p50) ?? 0,
        p99: m((r) => r.latencyUs?.p99) ?? 0,
        max: Math.max(...group.map((r) => r.latencyUs?.max ?? 0)),
      };
    }
    set(
      'brokerCpuUsPerMsg',
      m((r) => r.brokerCpuUsPerMsg),
    );
    set(
      'brokerWaitUsPerMsg',
      m((r) => r.brokerWaitUsPerMsg),
    );
    set('brokerPeakRssMb', Math.max(...group.map((r) => r.brokerPeakRssMb ?? 0)));
    return out;
  });
}

const peers = requested.filter((p) => {
  if (p === 'nats' && natsBin === undefined) {
    process.stdout.write('nats-server is not installed (apt-get install nats-server): NATS skipped\n');
    return false;
  }
  if (p === 'redis' && redisBin === undefined) {
    process.stdout.write('redis-server is not installed (apt-get install redis-server): Redis skipped\n');
    return false;
  }
  return true;
});

const plan: [string, number][] = [];
for (const scenario of SCENARIOS) for (const size of SIZES) plan.push([scenario, size]);
if (values.sizes === undefined && SCENARIOS.includes('1-1'))
  for (const size of [16, 1024, 16384]) plan.push(['1-1', size]);

const runs: Result[] = [];
let step = 0;
const steps = plan.length * peers.length * REPEAT;
for (const [scenario, size] of plan) {
  // Repeats alternate between the peers too, so a slow spell of the machine hits all of them.
  for (let round = 1; round <= REPEAT; round++) {
    // Each run starts with the next peer, so no peer always runs first (or right after another).
    const order = peers.map((_, i) => peers[(i + round - 1) % peers.length] as PeerName);
    for (const peer of order) {
      step++;
      const of = REPEAT > 1 ? ` (run ${round}/${REPEAT})` : '';
      process.stderr.write(`[${step}/${steps}] ${scenario} ${size} B ${peer}${of} ...\n`);
      const r = await runScenario(peer, scenario, size);
      if (r !== null) runs.push(r);
    }
  }
}
const all = medians(runs);

if (values.json) {
  process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
} else {
  const f = (n: number | undefined, digits = 0) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(digits));
  const k = (n: number | undefined) => (n === undefined ? '-' : Math.round(n).toLocaleString('en-US'));
  const header = [
    'scenario',
    'size',
    'peer',
    'msg/s',
    'MB/s',
    'lost',
    'p50 us',
    'p99 us',
    'max us',
    'broker us/msg',
    'broker wait us/msg',
    'broker RSS MB',
    'ratio',
    'runs msg/s',
  ];
  const rows = all.map((r) => {
    const ours = all.find((o) => o.peer === 'nodeset' && o.scenario === r.scenario && o.size === r.size);
    // Ratio nodeset / peer: throughput for throughput scenarios, p50 latency (peer / nodeset… shown as nodeset/peer) otherwise.
    let ratio = '';
    if (r.peer !== 'nodeset' && ours !== undefined) {
      ratio =
        r.rate !== undefined && ours.rate !== undefined
          ? `${(ours.rate / r.rate).toFixed(2)}x rate`
          : `${((ours.latencyUs?.p50 ?? 0) / (r.latencyUs?.p50 ?? 1)).toFixed(2)}x p50`;
    }
    return [
      r.scenario,
      `${r.size}`,
      r.peer,
      k(r.rate),
      f(r.mbPerSec, 1),
      r.lost === undefined ? '-' : String(r.lost),
      f(r.latencyUs?.p50),
      f(r.latencyUs?.p99),
      f(r.latencyUs?.max),
      f(r.brokerCpuUsPerMsg, 2),
      f(r.brokerWaitUsPerMsg, 2),
      f(r.brokerPeakRssMb),
      ratio,
      r.rates === undefined ? '' : `${k(Math.min(...r.rates))}-${k(Math.max(...r.rates))}`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  process.stdout.write(`${line(header)}\n${rows.map(line).join('\n')}\n`);
  if (REPEAT > 1) {
    process.stdout.write(`median of ${REPEAT} runs per row (lost, max latency and RSS: the worst run)\n`);
  }
}
