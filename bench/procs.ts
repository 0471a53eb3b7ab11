// Child processes for the benchmarks: start one, read its output lines, and
// read its CPU time and peak memory from /proc.
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface Proc {
  child: ChildProcess;
  /** The next output line (stdout or stderr) matching `re`; rejects if the process exits first. */
  line(re?: RegExp): Promise<string>;
}

export function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(cmd, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  const onLine = (l: string) => {
    // Warnings and errors a process logs are shown as they come.
    if (/^\{"level":[456]0/.test(l)) process.stderr.write(`process ${child.pid}: ${l}\n`);
    lines.push(l);
    for (const w of waiters.splice(0)) w();
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  child.once('exit', () => {
    for (const w of waiters.splice(0)) w();
  });
  return {
    child,
    async line(re = /./) {
      for (;;) {
        const i = lines.findIndex((l) => re.test(l));
        if (i !== -1) return lines.splice(i, 1)[0]!;
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(
            `${cmd} exited (${child.exitCode ?? child.signalCode}) before printing ${re}: ${lines.join(' | ')}`,
          );
        }
        await new Promise<void>((r) => waiters.push(r));
      }
    },
  };
}

/**
 * CPU time of a process, in ms: the run time of all its threads from
 * /proc/PID/task/TID/schedstat (nanoseconds), falling back to utime + stime
 * from /proc/PID/stat (10 ms ticks) where schedstat is missing.
 */
export function cpuMs(pid: number): number {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    }
    return ns / 1e6;
  } catch {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  }
}

/**
 * Time the threads of a process spent runnable but waiting for a CPU, in ms
 * (second field of /proc/PID/task/TID/schedstat): what a busy host costs it.
 * NaN where schedstat is missing.
 */
export function runQueueMs(pid: number): number {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]);
    }
    return ns / 1e6;
  } catch {
    return Number.NaN;
  }
}

/** Peak resident memory of a process, in MB. */
export function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/** A nodeset dispatcher from the built package; resolves with its URL. */
export async function startDispatcher(extra: string[] = []): Promise<{ proc: Proc; url: string }> {
  const proc = start(process.execPath, [
    'dist/cli/nodeset-dispatcher.js',
    '--listen',
    '127.0.0.1:0',
    '--loglevel',
    'warn',
    '--no-monitor',
    ...extra,
  ]);
  return { proc, url: /(nodeset:\/\/\S+)/.exec(await proc.line(/listening on/))![1]! };
}
