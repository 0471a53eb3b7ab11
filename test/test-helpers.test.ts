// The test helpers keep their promise: a start-up that never prints its line
// fails its test within the timeout, the test file's process exits by itself,
// and no process it started is left behind.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, spawnOwned, waitForExit } from './helpers.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('a failing start-up and a failing test leave no process behind, and their file exits', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nodeset-helpers-'));
  const pidsFile = join(dir, 'pids');
  try {
    // No --test-force-exit: the file must end because its children were stopped.
    const child = spawnOwned(
      process.execPath,
      ['--import', 'tsx', '--test', '--test-reporter=tap', 'test/fixtures/left-running.test.ts'],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
        // Without the runner's context variable, the child runs its file as a test run of its own.
        env: { ...process.env, NODE_TEST_CONTEXT: undefined, PIDS_FILE: pidsFile, NODESET_TEST_WAIT_SCALE: '1' },
      },
    );
    let out = '';
    child.stdout!.on('data', (c) => (out += c));
    child.stderr!.on('data', (c) => (out += c));
    const t0 = Date.now();
    // Bounded: were the file to hang, it is killed here and the test fails below.
    const code = await waitForExit(child, 120_000);
    const ms = Date.now() - t0;
    t.diagnostic(`the fixture file exited with ${code} after ${ms} ms`);
    assert.equal(code, 1, out);
    assert.match(out, /no line matching \/never printed\/ within 1000 ms/);
    assert.match(out, /failed on purpose/);
    const pids = readFileSync(pidsFile, 'utf8').trim().split('\n').map(Number);
    assert.equal(pids.length, 2, 'both tests noted their process');
    for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} is still running`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
