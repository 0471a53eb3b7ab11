// Every process a test starts is owned here. When the test file's tests are done
// (passed or failed) each one still running gets SIGTERM, then SIGKILL after a
// grace; should the file's process exit first, the rest are killed outright. So
// a failing test, or a start-up wait that times out, never leaves a child behind
// and the file always exits.
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { once } from 'node:events';
import { after } from 'node:test';

/** How long a process gets to exit after SIGTERM before it is killed. */
export const STOP_GRACE_MS = 5000;

const live = new Set<ChildProcess>();

/** Takes `child` into the registry; it leaves it when it exits. */
function own<T extends ChildProcess>(child: T): T {
  if (child.pid === undefined) return child; // never started ('error' follows)
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** `spawn` whose child is owned. */
export function spawnOwned(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, args, options);
  // A failed spawn reports 'error'; the caller sees it as an exit that never comes.
  child.on('error', () => live.delete(child));
  return own(child);
}

export function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Resolves with the exit code once `child` exits; SIGKILL if it has not after `timeoutMs`. */
export async function waitForExit(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (!isRunning(child)) return child.exitCode;
  const exited = once(child, 'exit') as Promise<[number | null]>;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = await exited;
  clearTimeout(timer);
  return code;
}

/** Sends `signal` (a stopped process is continued first), then SIGKILL after `graceMs`; resolves with the exit code. */
export function stopProcess(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = STOP_GRACE_MS,
): Promise<number | null> {
  if (!isRunning(child)) return Promise.resolve(child.exitCode);
  const exited = waitForExit(child, graceMs);
  if (signal !== 'SIGKILL') child.kill('SIGCONT');
  child.kill(signal);
  return exited;
}

/** Stops every owned process still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => stopProcess(c)));
}

after(stopAll);
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});
