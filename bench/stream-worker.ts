// One side of bench/stream.ts, in its own process.
//   rx URL NAME            StreamNode receiver; prints `ready`, then {bytes, ms} per stream
//   tx URL NAME BYTES      StreamNode sender; waits for a line on stdin, streams BYTES
//   plain-rx               TCP server; prints its port, then {bytes, ms} per connection
//   plain-tx PORT BYTES    TCP client; waits for a line on stdin, writes BYTES
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { StreamNode } from '../src/index.js';

const CHUNK = 64 * 1024;
const [role, ...args] = process.argv.slice(2) as [string, ...string[]];

/** Counts a readable's bytes from the first byte to the end. */
function measure(readable: Readable): void {
  let bytes = 0;
  let first = 0n;
  readable.on('data', (c: Buffer) => {
    if (bytes === 0) first = process.hrtime.bigint();
    bytes += c.length;
  });
  readable.on('end', () => {
    const ms = Number(process.hrtime.bigint() - first) / 1e6;
    process.stdout.write(`${JSON.stringify({ bytes, ms })}\n`);
  });
}

/** Writes `total` bytes in 64 KiB chunks, waiting for 'drain' whenever write() says so. */
async function pump(out: Writable, total: number): Promise<void> {
  const chunk = Buffer.alloc(CHUNK, 7);
  for (let sent = 0; sent < total; sent += CHUNK) {
    if (!out.write(sent + CHUNK <= total ? chunk : chunk.subarray(0, total - sent))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

const go = () =>
  new Promise<void>((resolve) => createInterface({ input: process.stdin }).once('line', () => resolve()));

switch (role) {
  case 'rx': {
    const node = await new StreamNode({ dispatcherUrl: args[0], name: `stream-rx-${process.pid}` }).start();
    await node.subscribeStream(args[1] as string, (readable) => measure(readable));
    process.stdout.write('ready\n');
    process.once('SIGTERM', () => void node.stop().then(() => process.exit(0)));
    break;
  }
  case 'tx': {
    const node = await new StreamNode({ dispatcherUrl: args[0], name: `stream-tx-${process.pid}` }).start();
    process.stdout.write('ready\n');
    await go();
    const stream = await node.stream(args[1] as string, { refreshIntervalMs: 0 });
    await pump(stream, Number(args[2]));
    await node.stop();
    process.exit(0);
    break;
  }
  case 'plain-rx': {
    const server = createServer((socket) => measure(socket));
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      process.stdout.write(`${typeof address === 'object' && address !== null ? address.port : 0}\n`);
    });
    process.once('SIGTERM', () => process.exit(0));
    break;
  }
  case 'plain-tx': {
    process.stdout.write('ready\n');
    await go();
    const socket = connect({ host: '127.0.0.1', port: Number(args[0]) });
    await once(socket, 'connect');
    await pump(socket, Number(args[1]));
    process.exit(0);
    break;
  }
  default:
    throw new Error(`unknown role ${role}`);
}
