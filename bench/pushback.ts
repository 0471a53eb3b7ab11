// A publisher flooding one subscriber that handles about 50,000 messages a
// second, under each slow-consumer policy, one dispatcher process each:
// `cut` (the subscriber is cut off past --max-pending) and `pushback` (the
// publisher is held back). Prints, per policy: what the subscriber received
// and lost, the publisher's and the subscriber's rates, the dispatcher's peak
// RSS and how often it held the publisher.
//
//   npm run bench:pushback [-- --count 500000 --size 256 --handler-us 20 --json]
import { parseArgs } from 'node:util';
import { Node } from '../src/index.js';
import { peakRssMb, start, startDispatcher } from './procs.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '500000' },
    size: { type: 'string', default: '256' },
    'handler-us': { type: 'string', default: '20' },
    'max-pending': { type: 'string', default: String(16 * 1024 * 1024) },
    json: { type: 'boolean', default: false },
  },
});
const COUNT = Number(values.count);
const HANDLER_US = Number(values['handler-us']);
const PADDING = 'x'.repeat(Math.max(0, Number(values.size) - 16));

interface Row {
  policy: string;
  received: number;
  lost: number;
  inOrder: boolean;
  publisherPerSec: number;
  subscriberPerSec: number;
  dispatcherPeakRssMb: number;
  pushbacks: number;
  slowConsumers: number;
}

async function run(policy: 'cut' | 'pushback'): Promise<Row> {
  const { proc: dispatcher, url } = await startDispatcher(['--max-pending', String(values['max-pending'])]);
  const sub = start(process.execPath, [
    '--import',
    'tsx',
    'test/fixtures/counting-subscriber.ts',
    url,
    'bench.pushback',
    String(COUNT),
    policy,
    String(HANDLER_US),
  ]);
  const pub = await new Node({ dispatcherUrl: url, statsIntervalMs: 0 }).start();
  try {
    await sub.line(/^ready$/);
    const t0 = performance.now();
    for (let i = 0; i < COUNT; i++) {
      pub.publish('bench.pushback', [i, PADDING]);
      if (pub.pendingBytes > 1024 * 1024) await pub.drain();
    }
    await pub.drain();
    const publishedMs = performance.now() - t0;
    // Done when the subscriber has everything, or when nothing more can come (it was cut).
    const expectMs = (COUNT * HANDLER_US) / 1000;
    const deadline = setTimeout(() => sub.child.kill('SIGUSR2'), Math.max(10_000, 3 * expectMs));
    const result = JSON.parse(await sub.line(/^\{"received"/)) as { received: number; inOrder: boolean };
    clearTimeout(deadline);
    const receivedMs = performance.now() - t0;
    const stats = (await pub.stats()) as { pushbacks: number; slowConsumers: number };
    return {
      policy,
      received: result.received,
      lost: COUNT - result.received,
      inOrder: result.inOrder,
      publisherPerSec: Math.round(COUNT / (publishedMs / 1000)),
      subscriberPerSec: Math.round(result.received / (receivedMs / 1000)),
      dispatcherPeakRssMb: Math.round(peakRssMb(dispatcher.child.pid!)),
      pushbacks: stats.pushbacks,
      slowConsumers: stats.slowConsumers,
    };
  } finally {
    await pub.stop();
    sub.child.kill('SIGTERM');
    dispatcher.child.kill('SIGTERM');
  }
}

const rows: Row[] = [];
for (const policy of ['cut', 'pushback'] as const) {
  process.stderr.write(
    `${policy}: ${COUNT} messages of about ${values.size} B to a subscriber spending ${HANDLER_US} µs on each ...\n`,
  );
  rows.push(await run(policy));
}
if (values.json) {
  process.stdout.write(`${JSON.stringify(rows)}\n`);
} else {
  const cols = Object.keys(rows[0]!) as (keyof Row)[];
  process.stdout.write(`${cols.join('  ')}\n`);
  for (const r of rows) process.stdout.write(`${cols.map((c) => String(r[c])).join('  ')}\n`);
}
