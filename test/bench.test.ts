import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';

const run = (args: string[]) =>
  spawnSync(process.execPath, ['dist/cli/nodeset-bench.js', ...args], { encoding: 'utf8', timeout: 120_000 });

describe('nodeset-bench', () => {
  test('runs a small 1-1 round and a request round with JSON output, nothing lost', () => {
    const r = run([
      '--scenarios',
      '1-1,request',
      '--sizes',
      '64',
      '--count',
      '3000',
      '--warmup',
      '1000',
      '--round-trips',
      '300',
      '--json',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const results = JSON.parse(r.stdout) as {
      scenario: string;
      lost?: number;
      rate?: number;
      latencyUs?: { p50: number };
    }[];
    const oneToOne = results.find((x) => x.scenario === '1-1');
    assert.equal(oneToOne?.lost, 0);
    assert.ok((oneToOne?.rate ?? 0) > 0);
    assert.ok((results.find((x) => x.scenario === 'request')?.latencyUs?.p50 ?? 0) > 0);
    assert.match(r.stderr, /\[1\/2\] 1-1 64 B nodeset/, 'progress lines on stderr');
  });

  test('--help prints the options; a bad option exits 2 with the usage', () => {
    const help = run(['--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--warmup N/);
    for (const bad of [['--bogus'], ['--scenarios', '1to1'], ['--count', 'x']]) {
      const r = run(bad);
      assert.equal(r.status, 2, bad.join(' '));
      assert.match(r.stderr, /nodeset-bench: /);
    }
  });
});
