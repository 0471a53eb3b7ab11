// Slow consumers as a choice: a `pushback` subscriber holds back the
// publishers that feed it instead of being cut off.
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { resolveDispatcherOptions } from '../src/dispatcher/options.js';
import { encodeFrame, FrameKind } from '../src/protocol/frames.js';
import { ROOT, spawnOwned, startDispatcher, startNode, until } from './helpers.js';
import { RawClient } from './raw-client.js';

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

  test('pushback chosen per subscription: on a `cut` node, the pushback subscription holds its publisher, and nothing is cut or lost', async () => {
    const maxPendingBytes = 1024 * 1024;
    const d = await startDispatcher({ maxPendingBytes, maxPushbackMs: 60_000 });
    // The node keeps the default `cut` policy; only this subscription asks for pushback.
    const sub = await startNode(d, { statsIntervalMs: 0 });
    const pub = await startNode(d, { statsIntervalMs: 0 });
    try {
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      const got: number[] = [];
      // `block`: a full queue stops the node reading, so the dispatcher's queue for it grows.
      await sub.subscribe(
        'pb.sub',
        async (m: { n: number }) => {
          await gate;
          got.push(m.n);
        },
        { slowConsumer: 'pushback', queueLimit: 10, overflow: 'block' },
      );
      const total = 3000;
      const filler = 'x'.repeat(4000);
      let published = 0;
      const publishing = (async () => {
        while (published < total) {
          pub.publish('pb.sub', { n: published++, filler });
          if (pub.pendingBytes > 256 * 1024) await pub.drain();
        }
        await pub.drain();
      })();
      await until(() => d.stats.pushbacks >= 1, 20_000, 'the publisher to be held');
      // ~12 MB published against a 1 MiB limit: held, not cut.
      assert.equal(d.stats.slowConsumers, 0);
      open();
      await publishing;
      await until(() => got.length === total, 30_000, `${total} messages`);
      assert.deepEqual(got.slice(0, 3), [0, 1, 2]);
      assert.ok(
        got.every((n, i) => n === i),
        'in order, none lost',
      );
      assert.equal(d.stats.slowConsumers, 0);
      assert.equal(d.stats.dropped, 0);
    } finally {
      await sub.stop();
      await pub.stop();
      await d.stop();
    }
  });

  test('a SUB with an unknown slow policy is refused with BAD_FRAME; the option is checked by name', async () => {
    const d = await startDispatcher();
    const node = await startNode(d, { statsIntervalMs: 0 });
    try {
      await assert.rejects(
        node.subscribe('pb.bad', () => {}, { slowConsumer: 'later' as 'cut' }),
        { code: 'BAD_OPTION', message: /slowConsumer/ },
      );
      const raw = await RawClient.connect(d.address.port, 'raw-sub');
      try {
        raw.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'pb.bad', r: 7, slow: 'later' }));
        const error = await raw.nextError();
        assert.equal(error.code, 'BAD_FRAME');
        assert.equal(error.r, 7);
        // The connection stays usable.
        raw.send(encodeFrame(FrameKind.SUB, { sid: 2, uri: 'pb.bad', r: 8, slow: 'pushback' }));
        await raw.next((f) => f.kind === FrameKind.OK && (f.header as { r: number }).r === 8);
      } finally {
        raw.destroy();
      }
    } finally {
      await node.stop();
      await d.stop();
    }
  });
});
