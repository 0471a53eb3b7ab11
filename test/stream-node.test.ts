import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { type Dispatcher, type OutgoingStream, StreamNode } from '../src/index.js';
import { ROOT, spawnOwned, startDispatcher, until } from './helpers.js';

const CHUNK = 64 * 1024;
const block = randomBytes(CHUNK);

/** Writes `total` bytes (repeating one random block, varied per chunk) with back-pressure; returns their hash. */
async function writeBytes(stream: OutgoingStream, total: number, onChunk?: () => void): Promise<string> {
  const hash = createHash('sha256');
  for (let sent = 0, i = 0; sent < total; sent += CHUNK, i++) {
    const chunk = Buffer.from(block.subarray(0, Math.min(CHUNK, total - sent)));
    chunk.writeUInt32LE(i, 0);
    hash.update(chunk);
    const ok = stream.write(chunk);
    onChunk?.(); // measured while the chunk is still buffered
    if (!ok) await once(stream, 'drain');
  }
  stream.end();
  await once(stream, 'finish');
  return hash.digest('hex');
}

/** Collects a readable's bytes into a hash and a count. */
function digest(readable: Readable): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  readable.on('data', (c: Buffer) => {
    bytes += c.length;
    hash.update(c);
  });
  return new Promise((resolve, reject) => {
    readable.on('end', () => resolve({ bytes, sha256: hash.digest('hex') }));
    readable.on('error', reject);
  });
}

/**
 * Subscribes `node` to stream `name` and resolves once the dispatcher has the
 * subscription, with the digest of the first stream it receives (wrapped, so
 * that awaiting this does not wait for the stream).
 */
async function receiveOne(
  node: StreamNode,
  name: string,
): Promise<{ first: Promise<{ bytes: number; sha256: string }> }> {
  let got!: (d: { bytes: number; sha256: string }) => void;
  const first = new Promise<{ bytes: number; sha256: string }>((resolve) => (got = resolve));
  await node.subscribeStream(name, (readable) => void digest(readable).then(got));
  return { first };
}

describe('StreamNode', () => {
  let dispatcher: Dispatcher;
  const nodes: StreamNode[] = [];
  const streamNode = async (name: string) => {
    const n = await new StreamNode({ dispatcherUrl: dispatcher.url, name }).start();
    nodes.push(n);
    return n;
  };

  before(async () => {
    dispatcher = await startDispatcher();
  });
  after(async () => {
    for (const n of nodes) await n.stop();
    await dispatcher.stop();
  });

  test('100 MB arrive intact, without passing through the dispatcher', async () => {
    const receiver = await streamNode('big-rx');
    const received = new Promise<{ bytes: number; sha256: string; from: string }>((resolve) => {
      void receiver.subscribeStream('bulk.big', (readable, info) => {
        void digest(readable).then((d) => resolve({ ...d, from: info.from }));
      });
    });
    await until(async () => ((await receiver.subscribers('bulk.big')) as unknown[]).length === 1);
    const sender = await streamNode('big-tx');
    const bytesBefore = dispatcher.stats.deliveries;
    const stream = await sender.stream('bulk.big');
    assert.deepEqual(stream.peers, [{ node: 'big-rx', address: receiver.streamAddress }]);
    const total = 100 * 1024 * 1024;
    const sent = await writeBytes(stream, total);
    const got = await received;
    assert.equal(got.bytes, total);
    assert.equal(got.sha256, sent);
    assert.equal(got.from, 'big-tx');
    assert.equal(dispatcher.stats.deliveries, bytesBefore, 'no data went through the dispatcher');
  });

  test('three receivers each get every byte; json format carries values', async () => {
    const receivers = await Promise.all([streamNode('fan-1'), streamNode('fan-2'), streamNode('fan-3')]);
    const results = receivers.map(
      (r) =>
        new Promise<{ bytes: number; sha256: string }>((resolve) => {
          void r.subscribeStream('bulk.fan', (readable) => void digest(readable).then(resolve));
        }),
    );
    const values = new Promise<unknown[]>((resolve) => {
      void receivers[0]!.subscribeStream('bulk.json', (readable) => {
        const got: unknown[] = [];
        readable.on('data', (v) => got.push(v));
        readable.on('end', () => resolve(got));
      });
    });
    const sender = await streamNode('fan-tx');
    await until(async () => ((await sender.subscribers('bulk.fan')) as unknown[]).length === 3);
    const stream = await sender.stream('bulk.fan');
    assert.equal(stream.peers.length, 3);
    const sent = await writeBytes(stream, 10 * 1024 * 1024 + 123);
    for (const r of await Promise.all(results)) assert.deepEqual(r, { bytes: 10 * 1024 * 1024 + 123, sha256: sent });

    await until(async () => ((await sender.subscribers('bulk.json')) as unknown[]).length === 1);
    const json = await sender.stream('bulk.json', { format: 'json' });
    json.write({ a: 1 });
    json.write([1, 'two', { three: 3 }]);
    json.end('last');
    assert.deepEqual(await values, [{ a: 1 }, [1, 'two', { three: 3 }], 'last']);
  });

  test('a receiver that reads slowly keeps the sender under its buffer bound', async (t) => {
    const receiver = await streamNode('slow-rx');
    let slow!: Readable;
    const ready = new Promise<void>((resolve) => {
      void receiver.subscribeStream('bulk.slow', (readable) => {
        slow = readable;
        slow.pause();
        resolve();
      });
    });
    await until(async () => ((await receiver.subscribers('bulk.slow')) as unknown[]).length === 1);
    const sender = await streamNode('slow-tx');
    const stream = await sender.stream('bulk.slow');
    await ready;
    // Bound: the Writable's high-water mark plus one chunk in it and one in the socket's queue.
    const bound = stream.writableHighWaterMark + 2 * CHUNK + 16 * 1024;
    let peak = 0;
    let writes = 0;
    const total = 64 * 1024 * 1024;
    const done = writeBytes(stream, total, () => {
      writes++;
      peak = Math.max(peak, stream.bufferedBytes);
    });
    // Let the sender run into back-pressure while nothing is read, then read slowly.
    await until(() => stream.writableNeedDrain, 5000, 'back-pressure');
    const stalledAt = writes;
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(writes - stalledAt <= 1, 'the sender waits while the receiver does not read');
    const result = digest(slow);
    slow.resume();
    const sent = await done;
    assert.deepEqual(await result, { bytes: total, sha256: sent });
    t.diagnostic(`sender buffered at most ${peak} bytes (bound ${bound}) while the receiver read slowly`);
    assert.ok(peak <= bound, `sender buffered up to ${peak} bytes, bound ${bound}`);
  });

  test('a receiver killed mid-stream is dropped, the sender is told, the others get everything; refresh finds new receivers', async () => {
    const child = spawnOwned(
      process.execPath,
      ['--import', 'tsx', 'test/fixtures/stream-receiver.ts', dispatcher.url, 'bulk.kill'],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const lines = createInterface({ input: child.stdout! });
    await new Promise<void>((resolve) => lines.once('line', () => resolve()));
    const survivor = await streamNode('kill-survivor');
    const survived = (await receiveOne(survivor, 'bulk.kill')).first;
    const sender = await streamNode('kill-tx');
    const stream = await sender.stream('bulk.kill', { refreshIntervalMs: 0 });
    assert.equal(stream.peers.length, 2);
    const lost = once(stream, 'peer-lost');
    let chunks = 0;
    const total = 32 * 1024 * 1024;
    const sent = writeBytes(stream, total, () => {
      if (++chunks === 50) child.kill('SIGKILL');
    });
    const [peer] = (await lost) as [{ node: string }];
    assert.match(peer.node, /^receiver-/);
    assert.deepEqual(await survived, { bytes: total, sha256: await sent });

    // A receiver that subscribes after the stream opened is picked up by refresh().
    const late = await streamNode('late-rx');
    const other = await sender
      .stream('bulk.late', { refreshIntervalMs: 0 })
      .catch((e: Error & { code: string }) => e.code);
    assert.equal(other, 'NO_RESPONDERS');
    const lateGot = (await receiveOne(late, 'bulk.kill')).first;
    const again = await sender.stream('bulk.kill', { refreshIntervalMs: 0 });
    assert.deepEqual(again.peers.map((p) => p.node).sort(), ['kill-survivor', 'late-rx']);
    const third = await streamNode('late-rx2');
    const thirdGot = (await receiveOne(third, 'bulk.kill')).first;
    await again.refresh();
    assert.deepEqual(again.peers.map((p) => p.node).sort(), ['kill-survivor', 'late-rx', 'late-rx2']);
    await writeBytes(again, 1000);
    assert.equal((await lateGot).bytes, 1000);
    assert.equal((await thirdGot).bytes, 1000);
  });
});
