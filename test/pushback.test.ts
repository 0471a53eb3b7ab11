// Slow consumers as a choice: a `pushback` subscriber holds back the
// publishers that feed it instead of being cut off.
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { resolveDispatcherOptions } from '../src/dispatcher/options.js';
import { ROOT, spawnOwned, startDispatcher, startNode, until } from './helpers.js';

function counter(url: string, event: string, count: number, policy: string, handlerUs = 0) {
  const child = spawnOwned(
    process.execPath,
    ['--import', 'tsx', 'test/fixtures/counting-subscriber.ts', url, event, String(count), policy, String(handlerUs)],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
  return { child, lines };
}

describe('pushback', () => {
  test('options: the high-water mark follows a small maxPendingBytes; a conflicting one is refused by name', () => {
    assert.equal(resolveDispatcherOptions().pushbackHighBytes, 4 * 1024 * 1024);
    assert.equal(resolveDispatcherOptions({ maxPendingBytes: 1024 * 1024 }).pushbackHighBytes, 256 * 1024);
    assert.throws(() => resolveDispatcherOptions({ maxPendingBytes: 1024, pushbackHighBytes: 2048 }), {
      code: 'BAD_OPTION',
      message: /pushbackHighBytes/,
    });
    assert.throws(() => resolveDispatcherOptions({ maxPushbackMs: 0 }), {
      code: 'BAD_OPTION',
      message: /maxPushbackMs/,
    });
  });

  test('a pushback subscriber frozen, then resumed: the publisher is held, then resumes; nothing is lost', async (t) => {
    const high = 256 * 1024;
    const d = await startDispatcher({ pushbackHighBytes: high, maxPushbackMs: 120_000 });
    const total = 500_000;
    const sub = counter(d.url, 'pb.ev', total, 'pushback');
    const pub = await startNode(d, { statsIntervalMs: 0 });
    try {
      await until(() => sub.lines.includes('ready'), 10_000, 'the subscriber');
      sub.child.kill('SIGSTOP');
      let published = 0;
      let waiting = false;
      const publishing = (async () => {
        while (published < total) {
          pub.publish('pb.ev', published++);
          if (pub.pendingBytes > 1024 * 1024) {
            waiting = true;
            await pub.drain();
            waiting = false;
          }
        }
        await pub.drain();
      })();
      // Held: the dispatcher stopped reading the publisher, whose own buffer fills and waits.
      await until(() => d.stats.pushbacks >= 1 && waiting, 20_000, 'the publisher to be held');
      const heldAt = published;
      const pending = d.nodes().find((n) => n.name.startsWith('counter-'))!.pendingBytes;
      t.diagnostic(`held after ${heldAt} of ${total} messages; ${pending} bytes queued for the frozen subscriber`);
      assert.ok(heldAt < total, 'the publisher was held before the end');
      // Bounded: the high-water mark plus what was read from the publisher before its reading paused.
      assert.ok(pending < high + 1024 * 1024, `${pending} bytes queued for the frozen subscriber`);
      sub.child.kill('SIGCONT');
      await publishing;
      await until(() => sub.lines.some((l) => l.startsWith('{')), 60_000, 'every message at the subscriber');
      const result = JSON.parse(sub.lines.find((l) => l.startsWith('{'))!);
      t.diagnostic(`${total} published; subscriber ${JSON.stringify(result)}; pushbacks ${d.stats.pushbacks}`);
      assert.deepEqual(result, { received: total, inOrder: true, disconnects: 0 });
      assert.equal(d.stats.slowConsumers, 0);
      assert.equal(d.stats.heartbeatFailures, 0, 'neither the held publisher nor the frozen subscriber was dropped');
    } finally {
      sub.child.kill('SIGCONT');
      await pub.stop();
      sub.child.kill('SIGTERM');
      await d.stop();
    }
  });

  // Frozen here, with a heartbeat timeout longer than maxPushbackMs, so that
  // the hold's bound (checked at each heartbeat sweep) acts first.
  test('a pushback subscriber that holds its publisher past maxPushbackMs is cut off as a slow consumer; the publisher goes on', async (t) => {
    const d = await startDispatcher({
      pushbackHighBytes: 256 * 1024,
      maxPushbackMs: 1000,
      heartbeatIntervalMs: 250,
      heartbeatTimeoutMs: 30_000,
    });
    const total = 500_000;
    const sub = counter(d.url, 'pb.cut', total, 'pushback');
    const pub = await startNode(d, { statsIntervalMs: 0 });
    try {
      await until(() => sub.lines.includes('ready'), 10_000, 'the subscriber');
      sub.child.kill('SIGSTOP');
      for (let i = 0; i < total; i++) {
        pub.publish('pb.cut', i);
        if (pub.pendingBytes > 1024 * 1024) await pub.drain();
      }
      await pub.drain();
      t.diagnostic(`pushbacks ${d.stats.pushbacks}, slow consumers cut ${d.stats.slowConsumers}`);
      assert.ok(d.stats.pushbacks >= 1, 'the publisher was held');
      assert.equal(d.stats.slowConsumers, 1, 'then the subscriber was cut off');
      assert.equal(d.stats.heartbeatFailures, 0, 'as a slow consumer, not for missed heartbeats');
    } finally {
      sub.child.kill('SIGCONT');
      await pub.stop();
      sub.child.kill('SIGTERM');
      await d.stop();
    }
  });
});
