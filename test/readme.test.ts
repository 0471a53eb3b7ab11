import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { CliProcess, ROOT, spawnDispatcher, startDispatcher, until } from './helpers.js';

/**
 * The README's quick start, run as written: each command line shown after
 * `$ ` is run against a dispatcher on a free port (the README's fixed port is
 * swapped for it), and what it prints is checked against the line the README
 * shows under it. `3f0c…` stands for any node name; timings are any figures.
 */
const README = readFileSync(`${ROOT}README.md`, 'utf8').split('\n');

/** The line the README shows under `$ <command>`, without a trailing `# comment`. */
function shownAfter(command: string): string {
  const i = README.findIndex((l) => l.replace(/\s+# .*$/, '') === `$ ${command}`);
  assert.ok(i >= 0, `the README shows: $ ${command}`);
  return (README[i + 1] ?? '').replace(/\s+# .*$/, '');
}

/** The words of a command line: spaces separate, single quotes group. */
function words(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? '');
}

/** The README's output line as a pattern: node names and timings may be anything. */
function pattern(shown: string, port?: number): RegExp {
  const timing = 'TIMING_PLACEHOLDER';
  let text = shown.replace(/in [\d.]+ s \(\d+\/s\)/, timing).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  text = text.replace(/3f0c…/g, '[^"]+').replace(timing, 'in [\\d.]+ s \\(\\d+/s\\)');
  if (port !== undefined) text = text.replace(/5333/g, String(port));
  return new RegExp(`^${text}$`);
}

/** Runs `npx <bin> …` of the README against `url`. */
function run(command: string, url: string): CliProcess {
  const [npx, bin, ...args] = words(command);
  assert.equal(npx, 'npx');
  return new CliProcess(bin as string, [...args, '--dispatcher-url', url]);
}

describe('README quick start', () => {
  let dispatcher: Awaited<ReturnType<typeof spawnDispatcher>>;
  before(async () => {
    dispatcher = await spawnDispatcher(['--no-monitor']);
  });
  after(async () => {
    await dispatcher.proc.kill();
  });

  test('nodeset sub, pub (also --count and --ack), reply and req print what the README shows', async () => {
    const subLine = "npx nodeset sub 'greetings.>'";
    const sub = run(subLine, dispatcher.url);
    const replyLine = "npx nodeset reply svc.upper --raw --command 'tr a-z A-Z'";
    shownAfter(replyLine);
    const replier = run(replyLine, dispatcher.url);
    try {
      const subscribed = shownAfter(subLine);
      await until(() => sub.stderr.includes(subscribed), 10_000, subscribed);
      const pubLine = `npx nodeset pub greetings.world '{"text":"hello"}'`;
      const pub = run(pubLine, dispatcher.url);
      assert.equal(await pub.exit(), 0, pub.stderr.join('\n'));
      assert.match(pub.lines.join('\n'), pattern(shownAfter(pubLine)));
      const event = README[README.indexOf(`$ ${subLine}`) + 2] ?? '';
      assert.match(await sub.waitForLine(/greetings\.world/), pattern(event));

      // The README's 100000 messages, made 100 here to keep the test short.
      const countLine = `npx nodeset pub greetings.world '{"n":{{count}},"at":"{{time}}"}' --count 100000`;
      const many = run(countLine.replace('100000', '100'), dispatcher.url);
      assert.equal(await many.exit(), 0, many.stderr.join('\n'));
      assert.match(many.lines.join('\n'), pattern(shownAfter(countLine).replace('100000', '100')));

      const ackLine = 'npx nodeset pub greetings.world hi --ack';
      const acked = run(ackLine, dispatcher.url);
      assert.equal(await acked.exit(), 0, acked.stderr.join('\n'));
      assert.match(acked.lines.join('\n'), pattern(shownAfter(ackLine)));

      await until(() => replier.stderr.some((l) => l.startsWith('answering requests')), 10_000, 'the replier');
      const reqLine = 'npx nodeset req svc.upper hello --raw';
      const req = run(reqLine, dispatcher.url);
      assert.equal(await req.exit(), 0, req.stderr.join('\n'));
      assert.deepEqual(req.lines, [shownAfter(reqLine)]);
    } finally {
      await sub.kill();
      await replier.kill();
    }
  });

  test('nodeset-node subscriber and publisher print what the README shows', async () => {
    const subLine = "npx nodeset-node subscriber --event 'greetings.>'";
    const subscriber = run(subLine, dispatcher.url);
    try {
      const pubLine = `npx nodeset-node publisher --event greetings.world --payload '{"text":"hello"}'`;
      // Published again until the subscriber is in place: the README's line says 1 subscriber.
      let out = '';
      await until(
        async () => {
          const publisher = run(pubLine, dispatcher.url);
          assert.equal(await publisher.exit(), 0, publisher.stderr.join('\n'));
          out = publisher.lines.join('\n');
          return !out.endsWith('0 subscribers');
        },
        15_000,
        'a delivery',
      );
      assert.match(out, pattern(shownAfter(pubLine)));
      assert.match(await subscriber.waitForLine(/greetings\.world/), pattern(shownAfter(subLine)));
    } finally {
      await subscriber.kill();
    }
  });

  test('with no dispatcher, pub fails at once with the line the README shows', async () => {
    const d = await startDispatcher();
    const port = d.address.port;
    await d.stop();
    const line = 'npx nodeset pub greetings.world hi';
    const proc = run(line, `nodeset://127.0.0.1:${port}`);
    assert.equal(await proc.exit(), 1);
    assert.deepEqual(proc.stderr.length, 1, proc.stderr.join('\n'));
    assert.match(proc.stderr[0] ?? '', pattern(shownAfter(line), port));
  });
});
