// StreamNode throughput between two processes, against a plain TCP socket
// pipe between two processes (the physical limit here), alternating, in one
// run. Both sides write 64 KiB chunks and respect write()/drain back-pressure.
//
//   npm run bench:stream [-- --mb 256 --rounds 3 --json]
import type { ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import { start, startDispatcher } from './procs.js';

const { values } = parseArgs({
  options: {
    mb: { type: 'string', default: '256' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
const BYTES = Number(values.mb) * 1024 * 1024;
const ROUNDS = Number(values.rounds);

const worker = (...args: string[]) => start(process.execPath, ['--import', 'tsx', 'bench/stream-worker.ts', ...args]);
const mbps = (r: { bytes: number; ms: number }) => r.bytes / 1024 / 1024 / (r.ms / 1000);

const stopAll: ChildProcess[] = [];
try {
  const { proc: dispatcher, url } = await startDispatcher();
  stopAll.push(dispatcher.child);
  const rx = worker('rx', url, 'bench.stream');
  stopAll.push(rx.child);
  await rx.line(/^ready$/);
  const plainRx = worker('plain-rx');
  stopAll.push(plainRx.child);
  const port = await plainRx.line(/^\d+$/);

  const stream: number[] = [];
  const plain: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    process.stderr.write(`round ${round}/${ROUNDS}: ${values.mb} MB each way ...\n`);
    const tx = worker('tx', url, 'bench.stream', String(BYTES));
    await tx.line(/^ready$/);
    tx.child.stdin!.write('go\n');
    const s = JSON.parse(await rx.line(/^\{/));
    if (s.bytes !== BYTES) throw new Error(`stream delivered ${s.bytes} of ${BYTES} bytes`);
    stream.push(mbps(s));
    const ptx = worker('plain-tx', port, String(BYTES));
    await ptx.line(/^ready$/);
    ptx.child.stdin!.write('go\n');
    const p = JSON.parse(await plainRx.line(/^\{/));
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
