// One benchmark role, run in its own process by bench/throughput.ts.
//   sub URL EVENT COUNT           receive COUNT messages, report rate and latency
//   pub URL EVENT COUNT SIZE      publish COUNT messages of SIZE bytes, with flow control
//   responder URL EVENT           answer requests
//   requester URL EVENT COUNT     COUNT sequential requests, report round-trip latency
// Each prints `ready` once set up and one JSON line with its result; `pub`
// and `requester` wait for a line on stdin before starting.
import { createInterface } from 'node:readline';
import { Node } from '../src/index.js';

const [role, url, event, countArg, sizeArg] = process.argv.slice(2) as [string, string, string, string?, string?];
const count = Number(countArg ?? 0);
/** Publisher flow control: stop queueing past this many bytes until the socket drains. */
const HIGH_WATER_BYTES = 1024 * 1024;

const node = await new Node({ dispatcherUrl: url, name: `bench-${role}-${process.pid}` }).start();
const now = () => Number(process.hrtime.bigint());

function percentiles(samples: Float64Array): { p50: number; p99: number; max: number } {
  const sorted = samples.slice().sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return { p50: at(0.5) / 1000, p99: at(0.99) / 1000, max: (sorted[sorted.length - 1] ?? 0) / 1000 };
}

function waitGo(): Promise<void> {
  return new Promise((resolve) => createInterface({ input: process.stdin }).once('line', () => resolve()));
}

async function finish(result: unknown): Promise<void> {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  await node.stop();
  process.exit(0);
}

switch (role) {
  case 'sub': {
    const latencies = new Float64Array(count);
    let received = 0;
    let first = 0;
    let bytes = 0;
    const timeout = setTimeout(() => void done(), 60_000);
    const done = () => {
      clearTimeout(timeout);
      const elapsedNs = now() - first;
      return finish({
        received,
        bytes,
        elapsedMs: elapsedNs / 1e6,
        rate: received / (elapsedNs / 1e9),
        latencyUs: percentiles(latencies.subarray(0, received)),
      });
    };
    await node.subscribe(event, (payload: Buffer) => {
      const t = now();
      if (received === 0) first = t;
      latencies[received] = t - payload.readDoubleLE(0);
      bytes += payload.length;
      received++;
      if (received === count) void done();
    });
    process.stdout.write('ready\n');
    break;
  }
  case 'pub': {
    const size = Number(sizeArg ?? 128);
    process.stdout.write('ready\n');
    await waitGo();
    const start = now();
    for (let i = 0; i < count; i++) {
      const payload = Buffer.alloc(size);
      payload.writeDoubleLE(now(), 0);
      node.publish(event, payload);
      if ((i & 255) === 255 && node.pendingBytes > HIGH_WATER_BYTES) await node.drain();
    }
    await node.drain();
    await finish({ sent: count, elapsedMs: (now() - start) / 1e6 });
    break;
  }
  case 'responder': {
    await node.subscribe(event, (m: unknown) => m);
    process.stdout.write('ready\n');
    break;
  }
  case 'requester': {
    process.stdout.write('ready\n');
    await waitGo();
    const rtts = new Float64Array(count);
    const payload = Buffer.alloc(128);
    for (let i = 0; i < 200; i++) await node.request(event, payload); // warm-up
    for (let i = 0; i < count; i++) {
      const t = now();
      await node.request(event, payload);
      rtts[i] = now() - t;
    }
    await finish({ requests: count, latencyUs: percentiles(rtts) });
    break;
  }
  default:
    throw new Error(`unknown role ${role}`);
}
