// One process of a bench scenario (see bench/suite.ts):
//   PEER URL ROLE SUBJECT COUNT SIZE
// Roles: sub, pub, responder, requester, pinger, ponger. Prints `ready`, waits
// for a line on stdin when it drives the traffic, prints one JSON result line.
import { createInterface } from 'node:readline';
import { client, type PeerName } from './clients.js';

const [peer, url, role, subject, countArg, sizeArg] = process.argv.slice(2) as [
  PeerName,
  string,
  string,
  string,
  string,
  string,
];
const count = Number(countArg);
const size = Number(sizeArg);
const now = () => Number(process.hrtime.bigint());
/** CPU time this process used (user + system), in µs. */
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const c = await client(peer, url, `bench-${role}-${process.pid}`, process.env.BENCH_DIRECT === '1');

function percentiles(samples: Float64Array) {
  const sorted = samples.slice().sort();
  const at = (q: number) => (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0) / 1000;
  return { p50: at(0.5), p99: at(0.99), max: at(1) };
}
// The publisher's timestamp, read without allocating (every peer's handler does the same work).
const stamp = new Float64Array(1);
const stampBytes = new Uint8Array(stamp.buffer);
const sentAt = (p: Uint8Array) => {
  for (let i = 0; i < 8; i++) stampBytes[i] = p[i] as number;
  return stamp[0] as number;
};
// Ping and pong subjects: `SUBJECT.ping` and `SUBJECT.pong` unless given (across hosts, each names its host).
const pingSubject = process.env.BENCH_PING_SUBJECT ?? `${subject}.ping`;
const pongSubject = process.env.BENCH_PONG_SUBJECT ?? `${subject}.pong`;
const go = () =>
  new Promise<void>((resolve) => createInterface({ input: process.stdin }).once('line', () => resolve()));
// Pooled and not zeroed: the benchmark's own cost per message stays small for every peer.
const payload = () => {
  const p = Buffer.allocUnsafe(Math.max(size, 8));
  p.writeDoubleLE(now(), 0);
  return p;
};
async function done(result: object) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  await c.close();
  process.exit(0);
}

switch (role) {
  case 'sub': {
    const latencies = new Float64Array(count);
    let received = 0;
    let first = 0;
    let last = 0;
    let cpu0 = 0;
    const finish = () =>
      done({
        received,
        ms: (last - first) / 1e6,
        latencyUs: percentiles(latencies.subarray(0, received)),
        cpuUs: cpuUs() - cpu0,
      });
    const idle = setInterval(() => {
      // Stop by itself when nothing more arrives (a lossy peer never reaches `count`).
      if (received > 0 && now() - last > 2e9) {
        clearInterval(idle);
        void finish();
      }
    }, 500);
    await c.subscribe(subject, (p) => {
      last = now();
      if (received === 0) {
        first = last;
        cpu0 = cpuUs();
      }
      if (received < count) latencies[received] = last - sentAt(p);
      if (++received === count) {
        clearInterval(idle);
        void finish();
      }
    });
    process.stdout.write('ready\n');
    break;
  }
  case 'pub': {
    process.stdout.write('ready\n');
    await go();
    const t = now();
    const cpu0 = cpuUs();
    for (let i = 0; i < count; i++) {
      const wait = c.publish(subject, payload());
      if (wait !== undefined) await wait;
    }
    await c.flush();
    await done({ sent: count, ms: (now() - t) / 1e6, cpuUs: cpuUs() - cpu0 });
    break;
  }
  case 'responder':
  case 'ponger': {
    if (role === 'responder') await c.respond(subject);
    else await c.subscribe(pingSubject, (p) => void c.publish(pongSubject, p));
    process.stdout.write('ready\n');
    break;
  }
  case 'requester':
  case 'pinger': {
    const rtts = new Float64Array(count);
    let resolvePong: (() => void) | null = null;
    if (role === 'pinger') await c.subscribe(pongSubject, () => resolvePong?.());
    const once = async () => {
      if (role === 'requester') {
        await c.request(subject, payload());
      } else {
        const pong = new Promise<void>((r) => (resolvePong = r));
        void c.publish(pingSubject, payload());
        await pong;
      }
    };
    process.stdout.write('ready\n');
    await go();
    for (let i = 0; i < 200; i++) await once(); // warm-up
    for (let i = 0; i < count; i++) {
      const t = now();
      await once();
      rtts[i] = now() - t;
    }
    await done({ roundTrips: count, latencyUs: percentiles(rtts) });
    break;
  }
  default:
    throw new Error(`unknown role ${role}`);
}
