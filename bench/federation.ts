// Cross-host throughput A → B through the federation (NATS), against local
// throughput on A, in the same run: publisher, dispatchers, subscriber and
// nats-server each in their own process; 128-byte payloads.
//
//   npm run bench:federation [-- --count 100000]
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { start, startDispatcher } from './procs.js';

const { values } = parseArgs({ options: { count: { type: 'string', default: '100000' } } });
const COUNT = Number(values.count);
const natsBin = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((p) => existsSync(p));
if (natsBin === undefined) {
  process.stdout.write('nats-server is not installed (apt-get install nats-server): skipped\n');
  process.exit(0);
}

const node = (...args: string[]) => start(process.execPath, args);
const all: ChildProcess[] = [];
try {
  const nats = start(natsBin, ['-a', '127.0.0.1', '-p', '-1']);
  all.push(nats.child);
  const natsUrl = `nats://127.0.0.1:${/127\.0\.0\.1:(\d+)/.exec(await nats.line(/Listening for client connections/))![1]}`;
  const dispatcher = async (host: string) => {
    const d = await startDispatcher(['--host-name', host, '--federation', natsUrl]);
    all.push(d.proc.child);
    return d.url;
  };
  const urlA = await dispatcher('benchA');
  const urlB = await dispatcher('benchB');

  const run = async (label: string, subUrl: string, pubUri: string) => {
    const sub = node(
      '--import',
      'tsx',
      'bench/suite-worker.ts',
      'nodeset',
      subUrl,
      'sub',
      'bench.data',
      String(COUNT),
      '128',
    );
    all.push(sub.child);
    await sub.line(/^ready$/);
    const pub = node('--import', 'tsx', 'bench/suite-worker.ts', 'nodeset', urlA, 'pub', pubUri, String(COUNT), '128');
    all.push(pub.child);
    await pub.line(/^ready$/);
    pub.child.stdin!.write('go\n');
    const result = JSON.parse(await sub.line(/^\{/));
    const rate = result.received / (result.ms / 1000);
    process.stdout.write(
      `${label.padEnd(34)} ${Math.round(rate).toLocaleString('en-US')} msg/s, ${result.received}/${COUNT} received, p50 ${Math.round(result.latencyUs.p50)} us\n`,
    );
    return rate;
  };
  const local = await run('local (A → A)', urlA, 'bench.data');
  const remote = await run('cross-host (A → NATS → B)', urlB, 'benchB/bench.data');
  process.stdout.write(`ratio cross-host / local             ${(remote / local).toFixed(2)}\n`);
} finally {
  for (const c of all) if (c.exitCode === null) c.kill('SIGTERM');
}
