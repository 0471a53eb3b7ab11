import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { type Node, NodesetError } from '../src/index.js';
import {
  CliProcess,
  ROOT,
  spawnDispatcher,
  spawnOwned,
  startDispatcher,
  startNode,
  TcpProxy,
  until,
  WAIT_SCALE,
} from './helpers.js';

async function publishUntilDelivered(pub: Node, uri: string, timeoutMs: number): Promise<void> {
  let i = 0;
  await until(
    async () => {
      try {
        return (await pub.publish(uri, i++, { ack: true, timeoutMs: 500 })) > 0;
      } catch (err) {
        if (err instanceof NodesetError) return false;
        throw err;
      }
    },
    timeoutMs,
    `delivery of ${uri}`,
  );
}

describe('real processes', () => {
  test('dispatcher SIGKILL and restart: nodes reconnect, re-subscribe and receive within 3 s', async (t) => {
    const first = await spawnDispatcher();
    const received: unknown[] = [];
    const sub = await startNode(first.url, { name: 'survivor', reconnect: { initialMs: 100, maxMs: 1000 } });
    const pub = await startNode(first.url, { reconnect: { initialMs: 100, maxMs: 1000 } });
    try {
      await sub.subscribe('restart.test', (m) => void received.push(m));
      assert.equal(await pub.publish('restart.test', 'before', { ack: true }), 1);
      const lost = once(sub, 'disconnect');
      await first.proc.kill('SIGKILL');
      await lost;
      const second = await spawnDispatcher(['--listen', `127.0.0.1:${first.port}`]);
      try {
        const restartedAt = Date.now();
        await publishUntilDelivered(pub, 'restart.test', 3000);
        const elapsed = Date.now() - restartedAt;
        t.diagnostic(`delivered again ${elapsed} ms after the new dispatcher was up`);
        assert.ok(elapsed < 3000 * WAIT_SCALE, `delivered ${elapsed} ms after restart`);
        assert.ok(received.includes('before'));
        // The ack can reach the publisher before the message reaches the subscriber; an
        // earlier attempt whose ack timed out on a busy machine may have been delivered too.
        await until(() => received.length >= 2, 3000, 'the message after the restart');
      } finally {
        await pub.stop();
        await sub.stop();
        assert.equal(await second.proc.kill('SIGTERM'), 0);
      }
    } finally {
      await first.proc.kill('SIGKILL');
    }
  });

  test('publishes made while disconnected are buffered and sent in order after reconnect; past the bound publish throws', async () => {
    const d = await startDispatcher();
    const proxy = await new TcpProxy(d.address.port).start();
    const sub = await startNode(d);
    const pub = await startNode(proxy.url, { reconnect: { initialMs: 50, maxMs: 200 }, offlineMaxMessages: 5 });
    try {
      const got: number[] = [];
      await sub.subscribe('buffered', (m: number) => void got.push(m));
      const lost = once(pub, 'disconnect');
      await proxy.stop();
      await lost;
      assert.equal(pub.connected, false);
      for (let i = 0; i < 5; i++) pub.publish('buffered', i);
      assert.throws(() => pub.publish('buffered', 5), { code: 'BUFFER_FULL' });
      assert.equal(got.length, 0);
      const back = once(pub, 'reconnect');
      await proxy.start();
      await back;
      await until(() => got.length === 5, 5000, 'buffered messages');
      assert.deepEqual(got, [0, 1, 2, 3, 4]);
    } finally {
      await sub.stop();
      await pub.stop();
      await proxy.stop();
      await d.stop();
    }
  });

  test('node death: a SIGKILLed subscriber loses its routes; direct messages reach only live ones', async () => {
    const d = await startDispatcher();
    const workers = [0, 1, 2].map(
      (i) =>
        new CliProcess('nodeset-node', [
          'subscriber',
          '--dispatcher-url',
          d.url,
          '--name',
          `worker-${i}`,
          '--event',
          'jobs',
        ]),
    );
    const pub = await startNode(d);
    try {
      await until(async () => ((await pub.subscribers('jobs')) as unknown[]).length === 3, 10_000, '3 workers');
      await workers[1]!.kill('SIGKILL');
      await until(async () => ((await pub.subscribers('jobs')) as unknown[]).length === 2, 5000, 'routes dropped');
      for (let i = 0; i < 20; i++) assert.equal(await pub.publish('jobs', i, { mode: 'direct', ack: true }), 1);
      await until(() => workers[0]!.lines.length + workers[2]!.lines.length === 20, 5000, 'all jobs');
      assert.equal(workers[0]!.lines.length, 10);
      assert.equal(workers[2]!.lines.length, 10);
      assert.equal(workers[1]!.lines.length, 0);
    } finally {
      await pub.stop();
      await Promise.all(workers.map((w) => w.kill('SIGTERM')));
      await d.stop();
    }
  });

  test('command line end to end: dispatcher, subscriber and publisher exchange an event', async () => {
    const { proc: dispatcher, url } = await spawnDispatcher();
    const subscriber = new CliProcess('nodeset-node', ['subscriber', '--dispatcher-url', url, '--event', 'cli.>']);
    const observer = await startNode(url);
    try {
      await until(
        async () => ((await observer.subscribers('cli.hello')) as unknown[]).length === 1,
        10_000,
        'subscriber',
      );
      const publisher = new CliProcess('nodeset-node', [
        'publisher',
        '--dispatcher-url',
        url,
        '--event',
        'cli.hello',
        '--payload',
        '{"text":"hi there"}',
      ]);
      assert.equal(await publisher.exit(), 0);
      assert.deepEqual(publisher.lines, ['published 1 message to cli.hello: delivered to 1 subscriber']);
      const line = await subscriber.waitForLine(/cli\.hello/);
      assert.deepEqual(JSON.parse(line), { event: 'cli.hello', message: { text: 'hi there' } });
    } finally {
      await observer.stop();
      assert.equal(await subscriber.kill('SIGTERM'), 0);
      assert.equal(await dispatcher.kill('SIGTERM'), 0, 'dispatcher exits 0 on SIGTERM');
    }
  });

  test('publisher exits 1 at once with one line and a hint when the dispatcher is unreachable', async () => {
    const d = await startDispatcher();
    const port = d.address.port;
    await d.stop(); // a port that was just free: nothing listens there now
    const publisher = new CliProcess('nodeset-node', [
      'publisher',
      '--dispatcher-url',
      `nodeset://127.0.0.1:${port}`,
      '--event',
      'x',
    ]);
    // No --timeout: a refused connection fails the command before the 5 s start timeout.
    assert.equal(await publisher.exit(4000), 1);
    assert.deepEqual(publisher.stderr.length, 1, publisher.stderr.join('\n'));
    assert.match(
      publisher.stderr[0] ?? '',
      /CONNECTION_LOST: cannot connect to .*start one with: npx nodeset-dispatcher/,
    );
  });

  test('--help and --version work from the installed bin entries', async () => {
    for (const cmd of ['nodeset-dispatcher', 'nodeset-node']) {
      const help = new CliProcess(cmd, ['--help']);
      assert.equal(await help.exit(), 0);
      assert.match(help.lines.join('\n'), /Usage:/);
      const version = new CliProcess(cmd, ['--version']);
      assert.equal(await version.exit(), 0);
      assert.match(version.lines[0] ?? '', /^\d+\.\d+\.\d+$/);
    }
  });

  test('after stop, dispatcher and nodes leave nothing behind: the process exits by itself', async () => {
    const child = spawnOwned(process.execPath, ['--import', 'tsx', 'test/fixtures/clean-exit.ts'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.on('data', (c) => (out += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const [code, signal] = await once(child, 'exit');
    clearTimeout(timer);
    assert.equal(signal, null, 'killed: something kept the process alive');
    assert.equal(code, 0);
    assert.equal(out, 'stopped\n');
  });
});
