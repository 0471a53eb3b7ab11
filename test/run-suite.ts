// `npm test`: runs the test files two at a time, each in its own process group,
// and prints every test's result as it finishes, prefixed with its file. It
// ends with the suite's time and a `N passed, N failed` line, and fails when:
// - a test fails, or a file exits non-zero;
// - a file runs past its hard limit (its whole process group is killed);
// - any process started by the suite is still running once every file ended
//   (found by the marker every child inherits in its environment; it is killed
//   and named).
//
// Usage: node --import tsx test/run-suite.ts [file.test.ts …]
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CONCURRENCY = Math.max(1, Number(process.env.NODESET_TEST_CONCURRENCY ?? 2) || 2);
/** One test's limit: a hang fails that test by name instead of stalling the file. */
const TEST_TIMEOUT_MS = 5 * 60_000;
/** One file's hard limit, after which its process group is killed. */
const FILE_TIMEOUT_MS = 12 * 60_000;
/** Files that take longest start first, so the two lanes end together. */
const SLOW_FIRST = ['chaos', 'federation', 'package', 'web', 'monitoring', 'stream-node', 'processes', 'operations'];
const MARKER = 'NODESET_TEST_RUN';

interface FileResult {
  file: string;
  code: number | null;
  signal: string | null;
  pass: number;
  fail: number;
  skipped: number;
  timedOut: boolean;
  ms: number;
}

const runId = randomBytes(6).toString('hex');
const started = Date.now();
const children = new Set<ChildProcess>();

function testFiles(): string[] {
  const given = process.argv.slice(2);
  if (given.length > 0) return given;
  const rank = (f: string) => {
    const i = SLOW_FIRST.indexOf(basename(f, '.test.ts'));
    return i === -1 ? SLOW_FIRST.length : i;
  };
  return readdirSync(join(ROOT, 'test'))
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => join('test', f))
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function runFile(file: string): Promise<FileResult> {
  const name = basename(file, '.test.ts');
  const t0 = Date.now();
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      '--test-reporter=spec',
      '--test-force-exit',
      `--test-timeout=${TEST_TIMEOUT_MS}`,
      file,
    ],
    {
      cwd: ROOT,
      detached: true, // its own process group, so a hung file is killed with everything it started
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, [MARKER]: `${runId}:${name}` },
    },
  );
  children.add(child);
  const result: FileResult = { file, code: null, signal: null, pass: 0, fail: 0, skipped: 0, timedOut: false, ms: 0 };
  const onLine = (line: string) => {
    const count = /^ℹ (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ([\d.]+)$/.exec(line);
    if (count !== null) {
      // A cancelled test (its file ended or timed out under it) is a failure.
      if (count[1] === 'pass' || count[1] === 'skipped') result[count[1]] += Number(count[2]);
      if (count[1] === 'fail' || count[1] === 'cancelled') result.fail += Number(count[2]);
      return;
    }
    if (line.trim() === '') return;
    process.stdout.write(`[${name}] ${line}\n`);
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  const timer = setTimeout(() => {
    result.timedOut = true;
    process.stdout.write(
      `[${name}] ✖ still running after ${FILE_TIMEOUT_MS / 60_000} min: killing its process group\n`,
    );
    killGroup(child, 'SIGKILL');
  }, FILE_TIMEOUT_MS);
  return new Promise((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      Object.assign(result, { code, signal, ms: Date.now() - t0 });
      resolve(result);
    });
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // the group is gone already
  }
}

/** Processes (other than this one) whose environment carries this run's marker. */
function leftovers(): { pid: number; file: string; cmd: string }[] {
  const found: { pid: number; file: string; cmd: string }[] = [];
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return found; // no /proc: not checked on this system
  }
  for (const p of pids) {
    const pid = Number(p);
    if (pid === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${p}/environ`, 'latin1').split('\0');
      const mark = env.find((e) => e.startsWith(`${MARKER}=${runId}:`));
      if (mark === undefined) continue;
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'latin1').split('\0').join(' ').trim();
      found.push({ pid, file: mark.slice(MARKER.length + runId.length + 2), cmd });
    } catch {
      // exited meanwhile, or not ours to read
    }
  }
  return found;
}

async function main(): Promise<number> {
  const queue = testFiles();
  const results: FileResult[] = [];
  const lane = async () => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      const r = await runFile(file);
      results.push(r);
      const how = r.timedOut ? 'killed at its limit' : r.signal !== null ? `killed by ${r.signal}` : `exit ${r.code}`;
      process.stdout.write(
        `[${basename(file, '.test.ts')}] done in ${(r.ms / 1000).toFixed(1)} s: ${r.pass} passed, ${r.fail} failed, ${r.skipped} skipped (${how})\n`,
      );
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, lane));

  // Children get a moment to finish exiting after their parents did.
  let stray = leftovers();
  for (let i = 0; i < 20 && stray.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    stray = leftovers();
  }
  for (const s of stray) {
    process.stdout.write(`✖ left running by ${s.file}: pid ${s.pid} ${s.cmd.slice(0, 160)}\n`);
    try {
      process.kill(s.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }

  const pass = results.reduce((n, r) => n + r.pass, 0);
  const fail = results.reduce((n, r) => n + r.fail, 0);
  const skipped = results.reduce((n, r) => n + r.skipped, 0);
  const badFiles = results.filter((r) => r.code !== 0 || r.timedOut);
  for (const r of badFiles) process.stdout.write(`✖ ${r.file} did not pass (exit ${r.code ?? r.signal})\n`);
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  process.stdout.write(`\n${results.length} files in ${minutes} min\n`);
  // A file that failed without a failing test (it crashed or hung) counts as one failure.
  const failed = fail + badFiles.filter((r) => r.fail === 0).length + (stray.length > 0 ? 1 : 0);
  process.stdout.write(`${pass} passed, ${failed} failed, ${skipped} skipped\n`);
  return failed === 0 ? 0 : 1;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    for (const child of children) killGroup(child, 'SIGTERM');
    setTimeout(() => {
      for (const child of children) killGroup(child, 'SIGKILL');
      process.exit(130);
    }, 3000).unref();
  });
}

process.exitCode = await main();
