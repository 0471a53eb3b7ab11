// Cross-host throughput A → B through the federation (NATS), against local
// throughput on A, in the same run: publisher, dispatchers, subscriber and
// nats-server each in their own process; 128-byte payloads.
//
//   npm run bench:federation [-- --count 100000]
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { count: { type: 'string', default: '100000' } } });
const COUNT = Number(values.count);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const natsBin = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((p) => existsSync(p));
if (natsBin === undefined) {
  process.stdout.write('nats-server is not installed (apt-get install nats-server): skipped\n');
  process.exit(0);
}

interface Proc {
  child: ChildProcess;
  line(re: RegExp): Promise<string>;
}

function start(cmd: string, args: string[]): Proc {
  const child = spawn(cmd, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  const onLine = (l: string) => {
    lines.push(l);
    for (const w of waiters.splice(0)) w();
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  return {
    child,
    async line(re) {
      for (;;) {
        const i = lines.findIndex((l) => re.test(l));
        if (i !== -1) return lines.splice(i, 1)[0]!;
        if (child.exitCode !== null) throw new Error(`${cmd} exited before printing ${re}`);
        await new Promise<void>((r) => waiters.push(r));
      }
    },
  };
}

const node = (...args: string[]) => start(process.execPath, args);
const all: ChildProcess[] = [];
try {
  const nats = start(natsBin, ['-a', '127.0.0.1', '-p', '-1']);
  all.push(nats.child);
  const natsUrl = `nats://127.0.0.1:${/127\.0\.0\.1:(\d+)/.exec(await nats.line(/Listening for client connections/))![1]}`;
  const dispatcher = (host: string) => {
    const p = node(
      'dist/cli/nodeset-dispatcher.js',
      '--listen',
      '127.0.0.1:0',
      '--host-name',
      host,
      '--loglevel',
      'warn',
      '--no-monitor',
      '--federation',
      natsUrl,
    );
    all.push(p.child);
    return p;
  };
  const a = dispatcher('benchA');
  const b = dispatcher('benchB');
  const urlA = /(nodeset:\/\/\S+)/.exec(await a.line(/listening on/))![1]!;
  const urlB = /(nodeset:\/\/\S+)/.exec(await b.line(/listening on/))![1]!;

  const run = async (label: string, subUrl: string, pubUri: string) => {
    const sub = node('--import', 'tsx', 'bench/worker.ts', 'sub', subUrl, 'bench.data', String(COUNT));
    all.push(sub.child);
    await sub.line(/^ready$/);
    const pub = node('--import', 'tsx', 'bench/worker.ts', 'pub', urlA, pubUri, String(COUNT), '128');
    all.push(pub.child);
    await pub.line(/^ready$/);
    pub.child.stdin!.write('go\n');
    const result = JSON.parse(await sub.line(/^\{/));
    process.stdout.write(
      `${label.padEnd(34)} ${Math.round(result.rate).toLocaleString('en-US')} msg/s, ${result.received}/${COUNT} received, p50 ${Math.round(result.latencyUs.p50)} us\n`,
    );
    return result.rate as number;
  };
  const local = await run('local (A → A)', urlA, 'bench.data');
  const remote = await run('cross-host (A → NATS → B)', urlB, 'benchB/bench.data');
  process.stdout.write(`ratio cross-host / local             ${(remote / local).toFixed(2)}\n`);
} finally {
  for (const c of all) if (c.exitCode === null) c.kill('SIGTERM');
}
