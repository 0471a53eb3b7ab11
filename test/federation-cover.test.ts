// Overlapping all-hosts patterns: a pattern another wanted pattern covers gets
// no NATS subscription of its own, so one copy of each message crosses to a
// host however many of its patterns match; swapping subscriptions as patterns
// come and go loses nothing; the subscriptions come back after a reconnect.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, type TestContext, test } from 'node:test';
import { connect } from 'nats';
import { NatsFederation } from '../src/federation/nats-federation.js';
import { PatternCover } from '../src/federation/pattern-cover.js';
import { Dispatcher, type Node } from '../src/index.js';
import { covers as patternCovers } from '../src/security/permissions.js';
import { federatedNode, freePort, NatsServer, startNatsProcess, stopProcess, until } from './helpers.js';

const skip =
  NatsServer.find() !== null || process.env.NODESET_CI
    ? false
    : 'nats-server is not installed (apt-get install nats-server)';

test('patternCovers: every event the second pattern matches, the first matches too', () => {
  const table: [string, string, boolean][] = [
    ['a.>', 'a.b', true],
    ['a.>', 'a.b.c', true],
    ['a.>', 'a.*', true],
    ['a.>', 'a.*.c', true],
    ['a.>', 'a.b.>', true],
    ['a.>', 'a.>', true],
    ['a.>', 'a', false],
    ['a.>', 'b.c', false],
    ['a.>', '*.b', false],
    ['a.>', '>', false],
    ['a.*', 'a.b', true],
    ['a.*', 'a.*', true],
    ['a.*', 'a.b.c', false],
    ['a.*', 'a.>', false],
    ['a.*', 'a', false],
    ['a.*', '*.b', false],
    ['>', 'a', true],
    ['>', 'a.b.c', true],
    ['>', '*', true],
    ['>', '*.>', true],
    ['>', '>', true],
    ['*', 'a', true],
    ['*', 'a.b', false],
    ['*', '>', false],
    ['*.>', 'a.b', true],
    ['*.>', 'a.>', true],
    ['*.>', 'a', false],
    ['*.>', '>', false],
    ['*.b', 'a.b', true],
    ['*.b', 'a.c', false],
    ['*.*', 'a.*', true],
    ['a.*', '*.*', false],
    ['a.b', 'a.b', true],
    ['a.b', 'a.c', false],
    ['a.b', 'a.*', false],
    ['a.b', 'a.>', false],
    ['a.b', 'a', false],
    ['a.b', 'a.b.c', false],
    ['a', 'a.b', false],
    ['a.b.c', 'a.b', false],
  ];
  for (const [a, b, expected] of table) assert.equal(patternCovers(a, b), expected, `${a} covers ${b}`);
});

test('PatternCover: only patterns no other wanted pattern covers are subscribed', () => {
  const cover = new PatternCover();
  const subscribed = () => [...cover.subscribed].sort();
  assert.deepEqual(cover.add('x.y'), { coveredBy: null, superseded: [] });
  assert.deepEqual(cover.add('x.z.w'), { coveredBy: null, superseded: [] });
  assert.equal(cover.add('x.y'), null, 'already wanted');
  assert.deepEqual(cover.add('x.*'), { coveredBy: null, superseded: ['x.y'] });
  assert.deepEqual(subscribed(), ['x.*', 'x.z.w']);
  assert.deepEqual(cover.add('x.>'), { coveredBy: null, superseded: ['x.z.w', 'x.*'] });
  assert.deepEqual(cover.add('x.q'), { coveredBy: 'x.>', superseded: [] });
  assert.deepEqual(subscribed(), ['x.>']);
  assert.deepEqual([...cover.wanted].sort(), ['x.*', 'x.>', 'x.q', 'x.y', 'x.z.w'], 'every wanted pattern is kept');
  // Removing the covering pattern: what it covered and nothing else covers is subscribed again.
  assert.deepEqual(cover.remove('x.>'), { dropped: true, restored: ['x.z.w', 'x.*'] });
  assert.deepEqual(subscribed(), ['x.*', 'x.z.w']);
  assert.deepEqual(cover.remove('x.y'), { dropped: false, restored: [] });
  assert.equal(cover.remove('x.y'), null, 'not wanted');
  assert.deepEqual(cover.remove('x.*'), { dropped: true, restored: ['x.q'] });
  assert.deepEqual(subscribed(), ['x.q', 'x.z.w']);
  assert.deepEqual(cover.add('>'), { coveredBy: null, superseded: ['x.z.w', 'x.q'] });
  assert.deepEqual(cover.remove('>'), { dropped: true, restored: ['x.z.w', 'x.q'] });
  assert.deepEqual(cover.remove('x.q'), { dropped: true, restored: [] });
  assert.deepEqual(cover.remove('x.z.w'), { dropped: true, restored: [] });
  assert.equal(cover.wanted.size + cover.subscribed.size, 0);
});

/** A nats-server of the test's own, with its monitoring endpoint; restartable on the same ports. */
class TestNats {
  child: ChildProcess | null = null;
  port = -1;
  monitorPort = 0;
  /** Further arguments (cluster ones). */
  constructor(readonly args: string[] = []) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.monitorPort === 0) this.monitorPort = await freePort();
    const { child, port } = await startNatsProcess([
      '-a',
      '127.0.0.1',
      '-p',
      String(this.port),
      '-m',
      String(this.monitorPort),
      ...this.args,
    ]);
    this.child = child;
    this.port = port;
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (child !== null) await stopProcess(child);
  }

  /** The all-hosts subscriptions of one dispatcher's connection, with the messages the server sent on each. */
  async allHostsSubs(host: string): Promise<Map<string, number>> {
    const res = await fetch(`http://127.0.0.1:${this.monitorPort}/connz?subs=detail&limit=1024`);
    const body = (await res.json()) as {
      connections?: { name?: string; subscriptions_list_detail?: { subject: string; msgs: number }[] }[];
    };
    const subs = new Map<string, number>();
    for (const c of body.connections ?? []) {
      if (c.name !== `nodeset-dispatcher-${host}`) continue;
      for (const s of c.subscriptions_list_detail ?? []) {
        if (s.subject.startsWith('nodeset.all.')) subs.set(s.subject, (subs.get(s.subject) ?? 0) + s.msgs);
      }
    }
    return subs;
  }
}

/** Waits until a host's connection holds exactly these all-hosts subscriptions at its NATS server. */
async function subscribedAt(nats: TestNats, host: string, subjects: string[]): Promise<void> {
  const want = [...subjects].sort();
  let seen: string[] = [];
  const same = async () => {
    seen = [...(await nats.allHostsSubs(host)).keys()].sort();
    return seen.join(' ') === want.join(' ');
  };
  await until(same, 5000, `${host} subscriptions at the NATS server`).catch(() => undefined);
  assert.deepEqual(seen, want, `${host}'s all-hosts subscriptions at the NATS server`);
}

/**
 * `wide` subscribes to `<name>.>` and leaves it, over and over, while `pub`
 * (on another host) publishes `*\/<name>.y` 2,000 times: `narrow`, which
 * subscribes to `<name>.y`, gets every one exactly once.
 */
async function swapDuringPublishes(t: TestContext, pub: Node, narrow: Node, wide: Node, name: string): Promise<void> {
  const got: number[] = [];
  await narrow.subscribe(`${name}.y`, (i: number) => void got.push(i));
  const total = 2000;
  let publishing = true;
  let swaps = 0;
  const swapping = (async () => {
    while (publishing) {
      await wide.subscribe(`${name}.>`, () => undefined);
      await wide.unsubscribe(`${name}.>`);
      swaps++;
    }
  })();
  for (let i = 0; i < total; i++) {
    pub.publish(`*/${name}.y`, i);
    // Paced by a round trip to the publisher's dispatcher every 50, so that the swaps run in between.
    if (i % 50 === 49) await pub.publish(`${name}.local`, null, { ack: true });
  }
  publishing = false;
  await swapping;
  await until(() => got.length >= total, 10_000, `every publish at the subscriber's host (${got.length} of ${total})`);
  t.diagnostic(`${swaps} swaps during ${total} publishes`);
  assert.ok(swaps >= 2, `swapped during the publishes (${swaps} times)`);
  assert.equal(got.length, total, 'no duplicates');
  assert.deepEqual(
    got.slice().sort((a, b) => a - b),
    Array.from({ length: total }, (_, i) => i),
    'none lost',
  );
}

describe('federation over NATS: overlapping all-hosts patterns', { skip }, () => {
  const nats = new TestNats();
  const hosts: Record<string, Dispatcher> = {};
  const links: Record<string, NatsFederation> = {};
  const nodes: Node[] = [];
  const at = (host: string, name: string) => federatedNode(nodes, hosts[host]!, name);
  const subscribedAtB = (subjects: string[]) => subscribedAt(nats, 'hostB', subjects);

  before(async () => {
    await nats.start();
    for (const h of ['hostA', 'hostB']) {
      links[h] = new NatsFederation({ servers: [nats.url] });
      hosts[h] = await new Dispatcher({ port: 0, hostName: h }, links[h]).start();
    }
    await until(() => Object.values(links).every((l) => l.hosts.length === 1), 5000, 'host directory');
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    for (const d of Object.values(hosts)) await d.stop();
    await nats.stop();
  });

  test('cov.y and cov.> subscribed on host B: one NATS subscription, one copy of each message crosses', async () => {
    const narrow: number[] = [];
    const wide: number[] = [];
    const bNarrow = await at('hostB', 'cov-narrow');
    const bWide = await at('hostB', 'cov-wide');
    await bNarrow.subscribe('cov.y', (i: number) => void narrow.push(i));
    await subscribedAtB(['nodeset.all.*.cov.y']);
    // The wider pattern takes over; the narrower one's subscription goes once the wider one is in effect.
    await bWide.subscribe('cov.>', (i: number) => void wide.push(i));
    await subscribedAtB(['nodeset.all.*.cov.>']);
    // cov.* is covered too: no subscription of its own.
    await bWide.subscribe('cov.*', () => undefined);
    assert.deepEqual([...(await nats.allHostsSubs('hostB')).keys()], ['nodeset.all.*.cov.>']);
    // The announcement still names every pattern (other hosts pick single deliveries by them).
    await until(() => {
      const b = links.hostA!.hosts.find((a) => a.host === 'hostB');
      return ['cov.y', 'cov.>', 'cov.*'].every((p) => b?.patterns.includes(p) === true);
    });
    const before = (await nats.allHostsSubs('hostB')).get('nodeset.all.*.cov.>') ?? 0;
    const inBefore = hosts.hostB!.stats.federationIn;
    // A plain NATS client counts the NATS messages host A sends for the event (plain publishes
    // travel in batches, so that is fewer than the publishes).
    const raw = await connect({ servers: nats.url });
    let crossed = 0;
    raw.subscribe('nodeset.all.*.cov.y', { callback: () => void crossed++ });
    await raw.flush();
    const pub = await at('hostA', 'cov-pub');
    const total = 200;
    for (let i = 0; i < total; i++) pub.publish('*/cov.y', i);
    await until(() => narrow.length >= total && wide.length >= total, 5000, 'every message at both subscribers');
    await raw.flush();
    await raw.close();
    const expected = Array.from({ length: total }, (_, i) => i);
    assert.deepEqual(narrow, expected, 'the cov.y subscriber: each message once');
    assert.deepEqual(wide, expected, 'the cov.> subscriber: each message once');
    assert.equal(hosts.hostB!.stats.federationIn - inBefore, total);
    // What the NATS server sent to host B: one copy per message, all on the one subscription.
    const sent = await nats.allHostsSubs('hostB');
    assert.deepEqual([...sent.keys()], ['nodeset.all.*.cov.>']);
    assert.ok(crossed > 0);
    assert.equal((sent.get('nodeset.all.*.cov.>') ?? 0) - before, crossed, 'one copy of each NATS message crossed');
    await bWide.unsubscribe('cov.*');
    await bWide.unsubscribe('cov.>');
    await subscribedAtB(['nodeset.all.*.cov.y']);
    await bNarrow.unsubscribe('cov.y');
    await subscribedAtB([]);
  });

  test('the covering pattern comes and goes during 2,000 publishes: each is delivered once to the covered one', async (t) => {
    const pub = await at('hostA', 'swap-pub');
    const bNarrow = await at('hostB', 'swap-narrow');
    await swapDuringPublishes(t, pub, bNarrow, await at('hostB', 'swap-wide'), 'swap');
    // After the last swap only the narrow pattern is subscribed.
    await subscribedAtB(['nodeset.all.*.swap.y']);
    await bNarrow.unsubscribe('swap.y');
    await subscribedAtB([]);
  });

  test('after NATS restarts, the client declares the one covering subscription again', async () => {
    const narrow: number[] = [];
    const wide: number[] = [];
    const bNarrow = await at('hostB', 'back-narrow');
    const bWide = await at('hostB', 'back-wide');
    await bNarrow.subscribe('back.y', (i: number) => void narrow.push(i));
    await bWide.subscribe('back.>', (i: number) => void wide.push(i));
    await subscribedAtB(['nodeset.all.*.back.>']);
    await nats.stop();
    await until(() => hosts.hostB!.federationConnected === false, 5000, 'link down');
    await nats.start();
    await until(
      () => hosts.hostA!.federationConnected === true && hosts.hostB!.federationConnected === true,
      10_000,
      'reconnect',
    );
    await subscribedAtB(['nodeset.all.*.back.>']);
    await until(() => links.hostA!.hosts.some((a) => a.host === 'hostB'), 5000, 'host B known again');
    const pub = await at('hostA', 'back-pub');
    const total = 50;
    for (let i = 0; i < total; i++) pub.publish('*/back.y', i);
    await until(() => narrow.length >= total && wide.length >= total, 5000, 'every message at both subscribers');
    const expected = Array.from({ length: total }, (_, i) => i);
    assert.deepEqual(narrow, expected);
    assert.deepEqual(wide, expected);
    // A fresh server: its counts start at zero. One subscription got them all (in batches: at most one NATS message each).
    const subs = [...(await nats.allHostsSubs('hostB')).entries()];
    assert.deepEqual(
      subs.map(([subject]) => subject),
      ['nodeset.all.*.back.>'],
    );
    const crossed = subs[0]?.[1] ?? 0;
    assert.ok(crossed >= 1 && crossed <= total, `${crossed} NATS messages for ${total} publishes`);
  });
});

describe('federation over a 2-server NATS cluster: overlapping all-hosts patterns', { skip }, () => {
  const servers: TestNats[] = [];
  const hosts: Record<string, Dispatcher> = {};
  const links: Record<string, NatsFederation> = {};
  const nodes: Node[] = [];
  const at = (host: string, name: string) => federatedNode(nodes, hosts[host]!, name);

  before(async () => {
    const routes = [await freePort(), await freePort()];
    for (const [i, port] of routes.entries()) {
      const other = routes[1 - i] as number;
      servers.push(
        new TestNats([
          '--cluster_name',
          'nodeset-cover',
          '--cluster',
          `nats://127.0.0.1:${port}`,
          '--routes',
          `nats://127.0.0.1:${other}`,
        ]),
      );
    }
    await Promise.all(servers.map((s) => s.start()));
    // hostA on the first server, hostB on the second: their interest crosses the route.
    for (const [i, h] of ['hostA', 'hostB'].entries()) {
      links[h] = new NatsFederation({ servers: [servers[i]!.url] });
      hosts[h] = await new Dispatcher({ port: 0, hostName: h }, links[h]).start();
    }
    await until(() => Object.values(links).every((l) => l.hosts.length === 1), 10_000, 'host directory');
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    for (const d of Object.values(hosts)) await d.stop();
    await Promise.all(servers.map((s) => s.stop()));
  });

  test('the covering pattern comes and goes during 2,000 publishes from the other server: each is delivered once', async (t) => {
    const pub = await at('hostA', 'route-pub');
    await swapDuringPublishes(t, pub, await at('hostB', 'route-narrow'), await at('hostB', 'route-wide'), 'route');
    await subscribedAt(servers[1]!, 'hostB', ['nodeset.all.*.route.y']);
  });
});
