import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fillTemplate } from '../src/cli/publish-loop.js';
import { Node } from '../src/index.js';
import { CliProcess, spawnDispatcher, startDispatcher, until } from './helpers.js';

/** A port where nothing listens: a dispatcher's, just stopped. */
async function deadUrl(): Promise<string> {
  const d = await startDispatcher();
  const port = d.address.port;
  await d.stop();
  return `nodeset://127.0.0.1:${port}`;
}

describe('first run: errors and exit codes', () => {
  test('an unknown option is named (exit 2), not reported as a missing one', async () => {
    const proc = new CliProcess('nodeset-node', ['publisher', '--evnet', 'x']);
    assert.equal(await proc.exit(), 2);
    const text = proc.stderr.join('\n');
    assert.match(text, /unknown option '--evnet'/);
    assert.doesNotMatch(text, /required option/);
  });

  test('a bad event URI is a usage error: exit 2, before any connection', async () => {
    for (const [command, args] of [
      ['nodeset-node', ['publisher', '--event', 'a b/#', '--dispatcher-url', 'nodeset://127.0.0.1:1']],
      ['nodeset', ['pub', 'a b/#', 'x', '--dispatcher-url', 'nodeset://127.0.0.1:1']],
    ] as const) {
      const proc = new CliProcess(command, [...args]);
      assert.equal(await proc.exit(), 2, proc.stderr.join('\n'));
      assert.match(proc.stderr.join('\n'), /BAD_OPTION: .*bad event URI/);
    }
  });

  test('no dispatcher: pub and req fail at once in one line with a hint; sub says once that it waits', async () => {
    const url = await deadUrl();
    for (const args of [
      ['pub', 'x', 'hello'],
      ['req', 'x', 'hello'],
    ]) {
      const proc = new CliProcess('nodeset', [...args, '--dispatcher-url', url]);
      assert.equal(await proc.exit(4000), 1);
      assert.equal(proc.stderr.length, 1, proc.stderr.join('\n'));
      assert.match(proc.stderr[0] ?? '', /^error: CONNECTION_LOST: .*start one with: npx nodeset-dispatcher$/);
    }
    const sub = new CliProcess('nodeset', ['sub', 'x', '--dispatcher-url', url], { NODESET_LOGLEVEL: 'info' });
    try {
      await until(() => sub.stderr.length > 0, 5000, 'the waiting line');
      assert.match(sub.stderr[0] ?? '', /^waiting for the dispatcher at .*; retrying; start one with/);
      assert.ok(!sub.stderr.some((l) => /^\s+at /.test(l)), 'no stack trace');
    } finally {
      await sub.kill();
    }
  });

  test('a second dispatcher on a taken monitor port says so and names --no-monitor', async () => {
    const first = await spawnDispatcher(['--monitor', '127.0.0.1:0']);
    try {
      const monitorLine = await first.proc.waitForLine(/monitor listening on/);
      const port = new URL(/(http:\/\/\S+)/.exec(monitorLine)![1]!).port;
      const second = new CliProcess('nodeset-dispatcher', [
        '--listen',
        '127.0.0.1:0',
        '--monitor',
        `127.0.0.1:${port}`,
      ]);
      assert.equal(await second.exit(), 1);
      assert.match(second.stderr.join('\n'), /already in use: that is the monitoring endpoint.*--no-monitor/);
    } finally {
      await first.proc.kill();
    }
  });

  test('help and version: nodeset-node --help names --event and --payload; nodeset-bench --version', async () => {
    const help = new CliProcess('nodeset-node', ['--help']);
    assert.equal(await help.exit(), 0);
    assert.match(help.lines.join('\n'), /--event[\s\S]*--payload/);
    const version = new CliProcess('nodeset-bench', ['--version']);
    assert.equal(await version.exit(), 0);
    assert.match(version.lines[0] ?? '', /^\d+\.\d+\.\d+$/);
  });
});

describe('nodeset pub, sub, req, reply', () => {
  let dispatcher: Awaited<ReturnType<typeof spawnDispatcher>>;
  before(async () => {
    dispatcher = await spawnDispatcher(['--no-monitor']);
  });
  after(async () => {
    await dispatcher.proc.kill();
  });

  test('nodeset-node publisher takes the dispatcher from NODESET_DISPATCHER_URL (a flag still wins); --help names it', async () => {
    const sub = new CliProcess('nodeset', ['sub', 'env.url', '--count', '2', '--dispatcher-url', dispatcher.url]);
    try {
      await until(() => sub.stderr.some((l) => l.startsWith('subscribed to env.url')), 10_000, 'subscribed');
      const fromEnv = new CliProcess('nodeset-node', ['publisher', '--event', 'env.url', '--payload', '1'], {
        NODESET_DISPATCHER_URL: dispatcher.url,
      });
      assert.equal(await fromEnv.exit(), 0, fromEnv.stderr.join('\n'));
      assert.equal(fromEnv.lines[0], 'published 1 message to env.url: delivered to 1 subscriber');
      const flagWins = new CliProcess(
        'nodeset-node',
        ['publisher', '--event', 'env.url', '--payload', '2', '--dispatcher-url', dispatcher.url],
        { NODESET_DISPATCHER_URL: await deadUrl() },
      );
      assert.equal(await flagWins.exit(), 0, flagWins.stderr.join('\n'));
      assert.equal(await sub.exit(), 0);
      assert.deepEqual(
        sub.lines.map((l) => JSON.parse(l).message),
        [1, 2],
      );
      // And the environment's URL is the one tried when it is wrong.
      const dead = await deadUrl();
      const wrong = new CliProcess('nodeset-node', ['publisher', '--event', 'env.url', '--timeout', '500'], {
        NODESET_DISPATCHER_URL: dead,
      });
      assert.equal(await wrong.exit(), 1);
      assert.match(wrong.stderr.join('\n'), new RegExp(`cannot connect to ${dead.replace('nodeset://', '')}`));
    } finally {
      await sub.kill();
    }
    const help = new CliProcess('nodeset-node', ['publisher', '--help']);
    assert.equal(await help.exit(), 0);
    assert.match(
      help.lines.join(' ').replace(/\s+/g, ' '),
      /--dispatcher-url <url> dispatcher to connect to \(or set NODESET_DISPATCHER_URL\)/,
    );
  });

  test('templates fill {{count}} and {{time}}', () => {
    assert.equal(fillTemplate('{"n":{{count}}}', 7), '{"n":7}');
    assert.match(fillTemplate('at {{time}}', 1), /^at \d{4}-\d\d-\d\dT/);
  });

  test('sub prints JSON lines with the origin; pub --count publishes a template without acks', async () => {
    const sub = new CliProcess('nodeset', ['sub', 'demo.>', '--count', '3', '--dispatcher-url', dispatcher.url]);
    try {
      await until(() => sub.stderr.some((l) => l.startsWith('subscribed to demo.>')), 10_000, 'subscribed');
      const pub = new CliProcess('nodeset', [
        'pub',
        'demo.tick',
        '{"n":{{count}}}',
        '--count',
        '3',
        '--name',
        'ticker',
        '--dispatcher-url',
        dispatcher.url,
      ]);
      assert.equal(await pub.exit(), 0, pub.stderr.join('\n'));
      assert.match(pub.lines[0] ?? '', /^published 3 messages to demo.tick in [\d.]+ s \(\d+\/s\)$/);
      assert.equal(await sub.exit(), 0);
      assert.deepEqual(
        sub.lines.map((l) => JSON.parse(l)),
        [1, 2, 3].map((n) => ({ event: 'demo.tick', from: 'ticker', message: { n } })),
      );
    } finally {
      await sub.kill();
    }
  });

  test('pub -H and req -H send headers; sub prints them in its JSON lines', async () => {
    const sub = new CliProcess('nodeset', ['sub', 'hdr.cli', '--count', '2', '--dispatcher-url', dispatcher.url]);
    const responder = await new Node({ dispatcherUrl: dispatcher.url, name: 'hdr-responder' }).start();
    try {
      await responder.respond('hdr.echo', (_m, info) => info.headers);
      await until(() => sub.stderr.some((l) => l.startsWith('subscribed to hdr.cli')), 10_000, 'subscribed');
      const pub = new CliProcess('nodeset', [
        ...['pub', 'hdr.cli', '{"n":1}', '-H', 'x-request-id=r1', '--header', 'tenant=a=b'],
        ...['--name', 'hdr-pub', '--dispatcher-url', dispatcher.url],
      ]);
      assert.equal(await pub.exit(), 0, pub.stderr.join('\n'));
      const plain = new CliProcess('nodeset', [
        ...['pub', 'hdr.cli', '2', '--name', 'hdr-pub', '--dispatcher-url', dispatcher.url],
      ]);
      assert.equal(await plain.exit(), 0, plain.stderr.join('\n'));
      assert.equal(await sub.exit(), 0);
      assert.deepEqual(
        sub.lines.map((l) => JSON.parse(l)),
        [
          { event: 'hdr.cli', from: 'hdr-pub', headers: { 'x-request-id': 'r1', tenant: 'a=b' }, message: { n: 1 } },
          { event: 'hdr.cli', from: 'hdr-pub', message: 2 },
        ],
      );
      const req = new CliProcess('nodeset', ['req', 'hdr.echo', '-H', 'k=v', '--dispatcher-url', dispatcher.url]);
      assert.equal(await req.exit(), 0, req.stderr.join('\n'));
      assert.deepEqual(JSON.parse(req.lines[0] ?? ''), { k: 'v' });
      const bad = new CliProcess('nodeset', [
        'pub',
        'hdr.cli',
        '1',
        '-H',
        'no-equals',
        '--dispatcher-url',
        dispatcher.url,
      ]);
      assert.notEqual(await bad.exit(), 0);
      assert.match(bad.stderr.join('\n'), /-H takes name=value/);
    } finally {
      await sub.kill();
      await responder.stop();
    }
  });

  test('reply echoes or runs a command per request; req prints the reply', async () => {
    const echo = new CliProcess('nodeset', ['reply', 'svc.echo', '--dispatcher-url', dispatcher.url]);
    const upper = new CliProcess('nodeset', [
      'reply',
      'svc.upper',
      '--raw',
      '--command',
      `"${process.execPath}" -e "process.stdin.pipe(require('stream').Transform({transform(c,e,cb){cb(null,String(c).toUpperCase())}})).pipe(process.stdout)"`,
      '--dispatcher-url',
      dispatcher.url,
    ]);
    try {
      await until(
        () => [echo, upper].every((p) => p.stderr.some((l) => l.startsWith('answering requests'))),
        10_000,
        'both repliers ready',
      );
      const req = new CliProcess('nodeset', ['req', 'svc.echo', '{"a":1}', '--dispatcher-url', dispatcher.url]);
      assert.equal(await req.exit(), 0, req.stderr.join('\n'));
      assert.deepEqual(req.lines, ['{"a":1}']);
      const raw = new CliProcess('nodeset', ['req', 'svc.upper', 'hello', '--raw', '--dispatcher-url', dispatcher.url]);
      assert.equal(await raw.exit(), 0, raw.stderr.join('\n'));
      assert.deepEqual(raw.lines, ['HELLO']);
      const none = new CliProcess('nodeset', ['req', 'svc.none', '--dispatcher-url', dispatcher.url]);
      assert.equal(await none.exit(), 1);
      assert.match(none.stderr.join('\n'), /NO_RESPONDERS/);
    } finally {
      await echo.kill();
      await upper.kill();
    }
  });
});
