// The package as a consumer gets it: `npm pack`, installed into an empty
// project, a strict TypeScript program compiled against its declarations and
// run through both `import` and `require`, each with a dispatcher and a node
// on port 0 and a publish/subscribe round trip; the browser client import is
// the text the bridge serves; the installed commands run.
//
// Installing needs the package's dependencies, from npm's cache or its
// registry: without them the test fails, saying so.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, spawnOwned, WAIT_SCALE, waitForExit } from './helpers.js';

const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

interface Ran {
  code: number | null;
  out: string;
  err: string;
}

/** npm's own settings pass on (cache, registry, config file); those of the npm running this suite do not. */
function cleanEnv(): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig']);
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_') || keep.has(k)));
}

async function run(command: string, args: string[], cwd: string, timeoutMs: number): Promise<Ran> {
  const child = spawnOwned(command, args, { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (err += c));
  const code = await waitForExit(child, timeoutMs * WAIT_SCALE);
  return { code, out, err };
}

function explain(what: string, r: Ran): string {
  return `${what} exited ${r.code}\n--- stdout\n${r.out.slice(-4000)}\n--- stderr\n${r.err.slice(-4000)}`;
}

// A strict program against the declarations: a dispatcher and a node in this
// process, a typed subscription, an acknowledged publish and a request.
const ROUND_TRIP = `
  const dispatcher = await new Dispatcher({ port: 0 }).start();
  const node = await new Node({ name: 'consumer', dispatcherUrl: dispatcher.url }).start();
  try {
    const Order = defineMessage('Order', { id: z.string(), qty: z.number().default(1) });
    let got: MessageOf<typeof Order> | undefined;
    const received = new Promise<void>((resolve) => {
      void node.respond('orders.created', (order: MessageOf<typeof Order>, info: EventInfo) => {
        got = order;
        resolve();
        return info.isRequest ? { charged: order.qty * 10 } : undefined;
      }, { type: Order });
    });
    const options: PublishOptions & { ack: true } = { ack: true, type: Order };
    const delivered: number = await node.publish('orders.created', { id: 'A1', qty: 2 }, options);
    await received;
    const first = got;
    const reply = await node.request<{ charged: number }>('orders.created', { id: 'A2', qty: 3 }, { timeoutMs: 5000 });
    let code: string | undefined;
    try {
      node.publish('orders.*', {});
    } catch (err) {
      if (err instanceof NodesetError) code = err.code;
    }
    // A typed event map, and a subscription iterated until its first message.
    type Events = { 'math.add': { req: { a: number; b: number }; res: number } };
    const events = node.typed<Events>();
    await events.respond('math.add', ({ a, b }) => a + b);
    const sum: number = await events.request('math.add', { a: 2, b: 3 });
    const sub: Subscription = await node.subscribe('tally.*');
    const firstTally = (async () => {
      for await (const { message } of sub) return message;
      return undefined;
    })();
    node.publish('tally.one', 7);
    const tally = await firstTally;
    console.log(JSON.stringify({ delivered, got: first, reply, code, sum, tally, closed: sub.closed }));
  } finally {
    await node.stop();
    await dispatcher.stop();
  }
`;

const ESM_PROGRAM = `import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Dispatcher, defineMessage, type EventInfo, type MessageOf, Node, NodesetError, type PublishOptions, type Subscription, WebBridge, z } from 'nodeset';
import { type BrowserClient, connect } from 'nodeset/browser';

const connectType: (url?: string) => BrowserClient = connect;
void connectType;
${ROUND_TRIP}
// The browser client in the package is the one the bridge serves.
const behind = await new Dispatcher({ port: 0 }).start();
const bridge = await new WebBridge({ port: 0, dispatcherUrl: behind.url }).start();
try {
  const served = await (await fetch(bridge.url + '/nodeset.js')).text();
  const file = readFileSync(createRequire(import.meta.url).resolve('nodeset/browser'), 'utf8');
  console.log(JSON.stringify({ browserClientServed: served === file, browserClientBytes: file.length }));
} finally {
  await bridge.stop();
  await behind.stop();
}
`;

const CJS_PROGRAM = `import { Dispatcher, defineMessage, type EventInfo, type MessageOf, Node, NodesetError, type PublishOptions, type Subscription, z } from 'nodeset';

async function main(): Promise<void> {
${ROUND_TRIP}
}
main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
`;

const PLAIN_REQUIRE = `const nodeset = require('nodeset');
console.log(JSON.stringify({ exports: Object.keys(nodeset).sort(), Node: typeof nodeset.Node }));
`;

describe('the packed package, installed into an empty project', { timeout: 10 * 60_000 }, () => {
  let dir = '';
  let project = '';
  let packed: { filename: string; files: { path: string }[] } | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nodeset-package-'));
    project = join(dir, 'consumer');
    mkdirSync(project);
    // pretest built dist/; packing again would rebuild it under the other test files.
    const pack = await run(NPM, ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], ROOT, 120_000);
    assert.equal(pack.code, 0, explain('npm pack', pack));
    [packed] = JSON.parse(pack.out) as [{ filename: string; files: { path: string }[] }];
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'nodeset-consumer', version: '1.0.0', private: true, type: 'module' }),
    );
    const install = await run(
      NPM,
      ['install', '--no-audit', '--no-fund', '--prefer-offline', '--no-package-lock', join(dir, packed.filename)],
      project,
      300_000,
    );
    assert.equal(
      install.code,
      0,
      explain('npm install of the packed tarball (its dependencies come from the npm cache or registry)', install),
    );
  });

  after(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  test('the tarball holds the builds, types, licence and changelog, and no source maps', () => {
    assert.ok(packed, 'npm pack failed');
    const files = new Set(packed.files.map((f) => f.path));
    for (const f of [
      'LICENSE',
      'CHANGELOG.md',
      'README.md',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/cjs/index.js',
      'dist/cjs/index.d.ts',
      'dist/cjs/package.json',
      'dist/browser/nodeset.js',
      'dist/browser/nodeset.d.ts',
      'dist/cli/nodeset.js',
    ]) {
      assert.ok(files.has(f), `${f} is not in the package`);
    }
    const maps = [...files].filter((f) => f.endsWith('.map'));
    assert.deepEqual(maps, [], 'source maps would point at src/, which is not shipped');
    assert.ok(![...files].some((f) => f.startsWith('src/') || f.startsWith('test/')), 'sources or tests shipped');
  });

  test('a strict TypeScript program compiles against it and runs through import and require', async () => {
    assert.ok(packed, 'npm pack failed');
    writeFileSync(join(project, 'esm.mts'), ESM_PROGRAM);
    writeFileSync(join(project, 'cjs.cts'), CJS_PROGRAM);
    writeFileSync(join(project, 'plain.cjs'), PLAIN_REQUIRE);
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noUncheckedIndexedAccess: true,
          exactOptionalPropertyTypes: true,
          // Our declarations and those they import are checked too.
          skipLibCheck: false,
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules/@types')],
          outDir: 'out',
        },
        files: ['esm.mts', 'cjs.cts'],
      }),
    );
    const tsc = await run(process.execPath, [TSC, '-p', 'tsconfig.json'], project, 120_000);
    assert.equal(tsc.code, 0, explain('tsc', tsc));

    const expected = {
      delivered: 1,
      got: { id: 'A1', qty: 2 },
      reply: { charged: 30 },
      code: 'BAD_URI',
      sum: 5,
      tally: 7,
      closed: true,
    };
    const esm = await run(process.execPath, ['out/esm.mjs'], project, 60_000);
    assert.equal(esm.code, 0, explain('the ESM program', esm));
    const [esmTrip, browser] = esm.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    assert.deepEqual(esmTrip, expected);
    const served = browser as { browserClientServed: boolean; browserClientBytes: number };
    assert.equal(served.browserClientServed, true, 'nodeset/browser differs from the /nodeset.js the bridge serves');
    assert.ok(served.browserClientBytes > 1000);

    const cjs = await run(process.execPath, ['out/cjs.cjs'], project, 60_000);
    assert.equal(cjs.code, 0, explain('the CommonJS program', cjs));
    assert.match(readFileSync(join(project, 'out/cjs.cjs'), 'utf8'), /require\("nodeset"\)/);
    assert.deepEqual(JSON.parse(cjs.out.trim()), expected);

    const plain = await run(process.execPath, ['plain.cjs'], project, 60_000);
    assert.equal(plain.code, 0, explain("require('nodeset')", plain));
    const names = Object.keys(await import('../src/index.js')).sort();
    assert.deepEqual(JSON.parse(plain.out.trim()), { exports: names, Node: 'function' });
  });

  test('its commands run from node_modules/.bin', async () => {
    assert.ok(packed, 'npm pack failed');
    const bin = join(project, 'node_modules/.bin');
    for (const name of [
      'nodeset',
      'nodeset-dispatcher',
      'nodeset-node',
      'nodeset-web',
      'nodeset-monitor',
      'nodeset-shell',
    ]) {
      const r = await run(join(bin, name), ['--help'], project, 60_000);
      assert.equal(r.code, 0, explain(`${name} --help`, r));
      assert.match(r.out, /Usage:/);
    }
    // The benchmarks need a source checkout and tsx: not an installed command.
    assert.equal(existsSync(join(bin, 'nodeset-bench')), false);
  });
});
