// StreamNode throughput between two processes, against a plain TCP socket
// pipe between two processes (the physical limit here), alternating, in one
// run. Both sides write 64 KiB chunks and respect write()/drain back-pressure.
//
//   npm run bench:stream [-- --mb 256 --rounds 3 --json]
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    mb: { type: 'string', default: '256' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
const BYTES = Number(values.mb) * 1024 * 1024;
const ROUNDS = Number(values.rounds);
const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Proc {
  child: ChildProcess;
  line(): Promise<string>;
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
    async line() {
      while (lines.length === 0) {
        if (child.exitCode !== null) throw new Error(`process exited (${child.exitCode})`);
        await new Promise<void>((r) => waiters.push(r));
      }
      return lines.shift()!;
    },
  };
}

const worker = (...args: string[]) => start(['--import', 'tsx', 'bench/stream-worker.ts', ...args]);
const mbps = (r: { bytes: number; ms: number }) => r.bytes / 1024 / 1024 / (r.ms / 1000);

const dispatcher = start([
  'dist/cli/nodeset-dispatcher.js',
  '--listen',
  '127.0.0.1:0',
  '--loglevel',
  'warn',
  '--no-monitor',
]);
const stopAll: ChildProcess[] = [dispatcher.child];
try {
  const url = /(nodeset:\/\/\S+)/.exec(await dispatcher.line())![1]!;
  const rx = worker('rx', url, 'bench.stream');
  stopAll.push(rx.child);
  await rx.line();
  const plainRx = worker('plain-rx');
  stopAll.push(plainRx.child);
  const port = await plainRx.line();

  const stream: number[] = [];
  const plain: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    process.stderr.write(`round ${round}/${ROUNDS}: ${values.mb} MB each way ...\n`);
    const tx = worker('tx', url, 'bench.stream', String(BYTES));
    await tx.line();
    tx.child.stdin!.write('go\n');
    const s = JSON.parse(await rx.line());
    if (s.bytes !== BYTES) throw new Error(`stream delivered ${s.bytes} of ${BYTES} bytes`);
    stream.push(mbps(s));
    const ptx = worker('plain-tx', port, String(BYTES));
    await ptx.line();
    ptx.child.stdin!.write('go\n');
    const p = JSON.parse(await plainRx.line());
    if (p.bytes !== BYTES) throw new Error(`socket delivered ${p.bytes} of ${BYTES} bytes`);
    plain.push(mbps(p));
  }
  const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const result = {
    megabytes: Number(values.mb),
    rounds: ROUNDS,
    streamNodeMBps: Math.round(median(stream)),
    plainSocketMBps: Math.round(median(plain)),
    ratio: Number((median(stream) / median(plain)).toFixed(2)),
    allStreamMBps: stream.map(Math.round),
    allPlainMBps: plain.map(Math.round),
  };
  if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    process.stdout.write(
      `StreamNode, process to process   ${result.streamNodeMBps} MB/s (rounds: ${result.allStreamMBps.join(', ')})\n`,
    );
    process.stdout.write(
      `plain TCP socket pipe            ${result.plainSocketMBps} MB/s (rounds: ${result.allPlainMBps.join(', ')})\n`,
    );
    process.stdout.write(`ratio StreamNode / socket        ${result.ratio}\n`);
  }
} finally {
  for (const c of stopAll) c.kill('SIGTERM');
}
