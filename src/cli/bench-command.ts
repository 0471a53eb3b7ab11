import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { packageVersion } from './common.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * `nodeset-bench` (also `nodeset bench`): runs the benchmark suite of a
 * source checkout (bench/suite.ts, through tsx); every argument is passed on
 * (--peers, --scenarios, --sizes, --count, --json).
 */
export function benchCommand(name = 'nodeset-bench'): Command {
  return new Command(name)
    .description('Run the benchmark suite (from a source checkout): scenarios, sizes, and peers side by side')
    .version(packageVersion(), '-V, --version')
    .allowUnknownOption()
    .helpOption(false)
    .argument(
      '[args...]',
      'options for bench/suite.ts: --peers nodeset,nats,redis --scenarios … --sizes … --count N --json',
    )
    .action((args: string[]) => {
      const suite = `${ROOT}bench/suite.ts`;
      if (!existsSync(suite)) {
        process.stderr.write('error: the benchmarks ship with the source checkout (bench/suite.ts not found)\n');
        process.exit(1);
      }
      const child = spawn(process.execPath, ['--import', 'tsx', suite, ...args], { cwd: ROOT, stdio: 'inherit' });
      child.on('exit', (code) => process.exit(code ?? 1));
    });
}
