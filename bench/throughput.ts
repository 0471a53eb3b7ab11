// nodeset benchmark: 1 publisher -> 1 subscriber through a dispatcher, each in
// its own process, 128-byte payloads; then sequential request/reply round
// trips. Prints messages/s, latency percentiles and the dispatcher's CPU time
// per routed message.
//
//   npm run bench [-- --count N --size BYTES --requests N --json]
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '200000' },
    size: { type: 'string', default: '128' },
    requests: { type: 'string', default: '5000' },
    json: { type: 'boolean', default: false },
  },
});
const COUNT = Number(values.count);
const SIZE = Number(values.size);
const REQUESTS = Number(values.requests);
const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Proc {
  child: ChildProcess;
  line(re?: RegExp): Promise<string>;
}

function start(args: string[]): Proc {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) w();
  });
  return {
    child,
    async line(re = /./) {
      for (;;) {
        const i = lines.findIndex((l) => re.test(l));
        if (i !== -1) return lines.splice(i, 1)[0]!;
        if (child.exitCode !== null) throw new Error(`process exited (${child.exitCode}) before printing ${re}`);
        await new Promise<void>((r) => waiters.push(r));
      }
    },
  };
}

const worker = (...args: string[]) => start(['--import', 'tsx', 'bench/worker.ts', ...args]);

/** User + system CPU time of a process, in ms (from /proc; Linux only). */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
}

function rssMb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

const dispatcher = start([
  'dist/cli/nodeset-dispatcher.js',
  '--listen',
  '127.0.0.1:0',
  '--loglevel',
  'warn',
  '--no-monitor',
]);
try {
  const url = /(nodeset:\/\/\S+)/.exec(await dispatcher.line(/listening on/))![1]!;
  const dpid = dispatcher.child.pid!;

  process.stderr.write(`1 -> 1 pub/sub: ${COUNT} messages of ${SIZE} B ...\n`);
  const sub = worker('sub', url, 'bench.data', String(COUNT));
  await sub.line(/ready/);
  const pub = worker('pub', url, 'bench.data', String(COUNT), String(SIZE));
  await pub.line(/ready/);
  const cpuBefore = cpuMs(dpid);
  pub.child.stdin!.write('go\n');
  const subResult = JSON.parse(await sub.line(/^\{/));
  const pubResult = JSON.parse(await pub.line(/^\{/));
  const cpuAfter = cpuMs(dpid);

  process.stderr.write(`request/reply: ${REQUESTS} sequential round trips ...\n`);
  const responder = worker('responder', url, 'bench.rpc');
  await responder.line(/ready/);
  const requester = worker('requester', url, 'bench.rpc', String(REQUESTS));
  await requester.line(/ready/);
  requester.child.stdin!.write('go\n');
  const reqResult = JSON.parse(await requester.line(/^\{/));
  responder.child.kill('SIGTERM');

  const result = {
    pubsub: {
      messages: COUNT,
      payloadBytes: SIZE,
      received: subResult.received,
      lost: COUNT - subResult.received,
      messagesPerSec: Math.round(subResult.rate),
      mbPerSec: Number(((subResult.rate * SIZE) / 1e6).toFixed(1)),
      publisherMs: Math.round(pubResult.elapsedMs),
      latencyUs: subResult.latencyUs,
      dispatcherCpuUsPerMsg: Number((((cpuAfter - cpuBefore) * 1000) / COUNT).toFixed(2)),
    },
    request: reqResult,
    dispatcherPeakRssMb: Number(rssMb(dpid).toFixed(1)),
  };

  if (values.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    const p = result.pubsub;
    const f = (n: number) => n.toFixed(0);
    const rows = [
      [
        '1 -> 1 throughput',
        `${p.messagesPerSec.toLocaleString('en-US')} msg/s (${p.mbPerSec} MB/s), ${p.received}/${p.messages} received`,
      ],
      [
        '1 -> 1 latency under load',
        `p50 ${f(p.latencyUs.p50)} us, p99 ${f(p.latencyUs.p99)} us, max ${f(p.latencyUs.max)} us`,
      ],
      ['dispatcher CPU per message', `${p.dispatcherCpuUsPerMsg} us`],
      [
        'request/reply round trip',
        `p50 ${f(reqResult.latencyUs.p50)} us, p99 ${f(reqResult.latencyUs.p99)} us (${REQUESTS} sequential)`,
      ],
      ['dispatcher peak RSS', `${result.dispatcherPeakRssMb} MB`],
    ];
    for (const [k, v] of rows) process.stdout.write(`${k!.padEnd(28)} ${v}\n`);
  }
} finally {
  dispatcher.child.kill('SIGTERM');
}
