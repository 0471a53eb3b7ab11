// Memory with many connections: 10,000 node connections holding 100,000
// subscriptions in total (spread over a few processes), then the dispatcher's
// resident memory, just connected and after two rounds of heartbeats.
// Bounded: stops by itself when done.
//
//   npm run bench:connections [-- --connections 10000 --subscriptions 10 --processes 4]
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '10000' },
    subscriptions: { type: 'string', default: '10' },
    processes: { type: 'string', default: '4' },
    worker: { type: 'string' },
  },
});

/** Two heartbeat intervals of the default 5 s, and a little more. */
const HEARTBEAT_ROUNDS_MS = 12_000;

if (values.worker !== undefined) {
  // Worker: open N connections with S subscriptions each, print `ready`, wait to be killed.
  const { Node } = await import('../src/index.js');
  const [url, n, s] = values.worker.split(' ') as [string, string, string];
  const nodes = [];
  for (let i = 0; i < Number(n); i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(Number(n), i + 100); j++) {
      const node = new Node({ dispatcherUrl: url, statsIntervalMs: 0, startTimeoutMs: 60_000 });
      for (let k = 0; k < Number(s); k++) void node.subscribe(`load.${process.pid}.${j}.${k}`);
      batch.push(node.start());
      nodes.push(node);
    }
    await Promise.all(batch);
  }
  process.stdout.write('ready\n');
  process.once('SIGTERM', () => process.exit(0));
} else {
  const ROOT = fileURLToPath(new URL('..', import.meta.url));
  const C = Number(values.connections);
  const S = Number(values.subscriptions);
  const P = Number(values.processes);
  const procs: ChildProcess[] = [];
  const lineOf = (child: ChildProcess, re: RegExp) =>
    new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout! });
      rl.on('line', (l) => re.test(l) && resolve(l));
      child.once('exit', (code) => reject(new Error(`process exited (${code})`)));
    });
  const rss = (pid: number) => {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const mb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
    return { rss: mb('VmRSS'), peak: mb('VmHWM') };
  };
  try {
    const d = spawn(
      process.execPath,
      ['dist/cli/nodeset-dispatcher.js', '--listen', '127.0.0.1:0', '--loglevel', 'warn', '--no-monitor'],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    procs.push(d);
    const url = /(nodeset:\/\/\S+)/.exec(await lineOf(d, /listening on/))![1]!;
    const idle = rss(d.pid!);
    const t = Date.now();
    await Promise.all(
      Array.from({ length: P }, () => {
        const w = spawn(
          process.execPath,
          ['--import', 'tsx', 'bench/connections.ts', '--worker', `${url} ${Math.ceil(C / P)} ${S}`],
          {
            cwd: ROOT,
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        );
        procs.push(w);
        return lineOf(w, /^ready$/);
      }),
    );
    const loaded = rss(d.pid!);
    process.stdout.write(
      `${C.toLocaleString('en-US')} connections, ${(C * S).toLocaleString('en-US')} subscriptions, connected in ${Date.now() - t} ms\n` +
        `dispatcher RSS: idle ${idle.rss.toFixed(0)} MB, just connected ${loaded.rss.toFixed(0)} MB\n`,
    );
    // Then the steady state: two rounds of heartbeats (a PING to every connection, its PONG read back).
    await new Promise((r) => setTimeout(r, HEARTBEAT_ROUNDS_MS));
    const steady = rss(d.pid!);
    const worst = Math.max(loaded.rss, steady.rss);
    process.stdout.write(
      `dispatcher RSS after ${HEARTBEAT_ROUNDS_MS / 1000} s of heartbeats: ${steady.rss.toFixed(0)} MB (peak ${steady.peak.toFixed(0)} MB); ` +
        `target <= 150 MB: ${worst <= 150 ? 'met' : 'not met'}\n`,
    );
  } finally {
    for (const p of procs) p.kill('SIGTERM');
  }
}
