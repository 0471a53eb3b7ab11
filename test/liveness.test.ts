// Liveness is not fooled by work: a node whose handlers are busy answers PINGs
// between them, and a connection that is reading its backlog is alive even
// when its PONG is still behind that backlog.
import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { encodeFrame, FrameKind } from '../src/protocol/frames.js';
import { ROOT, spawnOwned, startDispatcher, startNode, until } from './helpers.js';
import { isMessage, RawClient } from './raw-client.js';

describe('liveness under work', () => {
  test('a dispatcher whose own process stalls does not blame its nodes for the silence', async () => {
    const d = await startDispatcher({ heartbeatIntervalMs: 100, heartbeatTimeoutMs: 300 });
    const node = await startNode(d, { statsIntervalMs: 0 });
    let disconnects = 0;
    node.on('disconnect', () => void disconnects++);
    try {
      await node.subscribe('still.here', () => {});
      // The whole process (dispatcher and node alike) is stuck for twice the heartbeat timeout.
      const until600 = Date.now() + 600;
      while (Date.now() < until600) {
        /* busy */
      }
      // A few sweeps after the stall: the node, alive all along, is still connected.
      const after = d.stats.connectionsOpened;
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(d.stats.heartbeatFailures, 0);
      assert.equal(disconnects, 0);
      assert.equal(d.stats.connectionsOpened, after);
      assert.equal(await node.publish('still.here', 1, { ack: true }), 1);
    } finally {
      await node.stop();
      await d.stop();
    }
  });

  test('a subscriber busy in synchronous handlers far longer than the heartbeat timeout is not dropped', async (t) => {
    // 30 handlers of 150 ms: 4.5 s of work against a 500 ms heartbeat timeout.
    const d = await startDispatcher({ heartbeatIntervalMs: 100, heartbeatTimeoutMs: 500 });
    const pub = await startNode(d, { statsIntervalMs: 0 });
    const child = spawnOwned(
      process.execPath,
      ['--import', 'tsx', 'test/fixtures/busy-subscriber.ts', d.url, 'busy.work', '150', '30'],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const lines: string[] = [];
    createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
    try {
      await until(() => lines.includes('ready'), 10_000, 'the busy subscriber');
      for (let i = 0; i < 30; i++) assert.equal(await pub.publish('busy.work', i, { ack: true }), 1);
      await until(() => lines.some((l) => l.startsWith('{')), 30_000, 'every handler to run');
      const result = JSON.parse(lines.find((l) => l.startsWith('{'))!) as { handled: number; disconnects: number };
      t.diagnostic(
        `handled ${result.handled}, disconnects ${result.disconnects}, heartbeat failures ${d.stats.heartbeatFailures}`,
      );
      assert.deepEqual(result, { handled: 30, disconnects: 0 });
      assert.equal(d.stats.heartbeatFailures, 0, 'the busy node was never dropped');
    } finally {
      await pub.stop();
      child.kill('SIGTERM');
      await d.stop();
    }
  });

  test('a connection reading a large backlog slowly stays alive though its PONGs are behind it; once it reads nothing, it is dropped', async () => {
    // Progress shows only once the kernel's buffers (a few MB on loopback) have
    // drained below their mark, so the timeout is longer than that takes here.
    const d = await startDispatcher({
      heartbeatIntervalMs: 200,
      heartbeatTimeoutMs: 2000,
      maxPendingBytes: 64 * 1024 * 1024,
    });
    const raw = await RawClient.connect(d.address.port, 'slow-reader');
    raw.answerPings = false;
    const pub = await startNode(d, { statsIntervalMs: 0 });
    let pacer: NodeJS.Timeout | undefined;
    try {
      raw.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'backlog', r: 1 }));
      await raw.next((f) => f.kind === FrameKind.OK);
      raw.socket.pause();
      const total = 2000;
      const payload = Buffer.alloc(16 * 1024, 3); // 32 MiB in all, far past the kernel's buffers
      for (let i = 0; i < total; i++) {
        pub.publish('backlog', payload);
        if (i % 256 === 255) await pub.drain();
      }
      await pub.drain();
      await until(() => d.stats.publishes >= total, 10_000, 'everything routed');
      // One socket read (at most 64 KiB) every 10 ms: the backlog takes seconds, several heartbeat timeouts.
      let pacing = true;
      raw.socket.on('data', () => pacing && raw.socket.pause());
      pacer = setInterval(() => raw.socket.resume(), 10);
      const msgs = () => raw.frames.filter(isMessage).length;
      await until(() => msgs() === total || raw.closed, 60_000, 'the backlog to be read');
      assert.equal(msgs(), total, `read ${msgs()} of ${total} before being dropped`);
      assert.equal(d.stats.heartbeatFailures, 0);
      clearInterval(pacer);
      pacing = false;
      raw.socket.resume();
      // Nothing more to read and no PONG: now it is silent, and dropped.
      await raw.waitClosed(10_000);
      assert.equal(d.stats.heartbeatFailures, 1);
    } finally {
      clearInterval(pacer);
      raw.destroy();
      await pub.stop();
      await d.stop();
    }
  });
});
