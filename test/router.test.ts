// The router on its own, without sockets: peers here are in-memory objects
// that record what the router asks of them (frames written, reading held,
// cut-offs), so every routing rule can be checked exactly.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pino from 'pino';
import { type LeaveReason, type Peer, PeerRouting, Subscription } from '../src/dispatcher/peer.js';
import { FORWARDED, Router } from '../src/dispatcher/router.js';
import { DispatcherStats } from '../src/dispatcher/stats.js';
import { parseEventUri } from '../src/protocol/event-uri.js';
import { PubFlag } from '../src/protocol/frames.js';

class MemoryPeer implements Peer {
  readonly routing = new PeerRouting();
  open = true;
  pendingBytes = 0;
  pushback = false;
  identityName: string | null = null;
  deny: string[] = [];
  readonly msgs: { sid: number; payload: string }[] = [];
  readonly replies: { r: number; err?: { code: string; message: string }; payload: string }[] = [];
  readonly warnings: number[] = [];
  held = false;
  terminated: LeaveReason | null = null;
  constructor(
    readonly id: number,
    readonly name: string,
    readonly host = 'here',
  ) {}
  mayPublish(event: string): boolean {
    return !this.deny.includes(event);
  }
  sendMsg(sid: number, _tail: Uint8Array, payload: Uint8Array): void {
    this.msgs.push({ sid, payload: Buffer.from(payload).toString() });
  }
  sendReply(r: number, _ct: number, err: { code: string; message: string } | undefined, payload: Buffer | null): void {
    this.replies.push({ r, ...(err === undefined ? {} : { err }), payload: payload?.toString() ?? '' });
  }
  warnSlow(pendingBytes: number): void {
    this.warnings.push(pendingBytes);
  }
  holdReading(held: boolean): void {
    this.held = held;
  }
  wantDrained(): void {}
  terminate(reason: LeaveReason): void {
    this.terminated = reason;
    this.open = false;
  }
}

function setup(limits = { maxPendingBytes: 1000, pushbackHighBytes: 400 }) {
  const peers = new Map<number, MemoryPeer>();
  const stats = new DispatcherStats();
  const router = new Router({ hostName: 'here', ...limits, logger: pino({ level: 'silent' }) }, stats, (id) =>
    peers.get(id),
  );
  let nextSid = 1;
  const peer = (name: string) => {
    const p = new MemoryPeer(peers.size + 1, name);
    peers.set(p.id, p);
    return p;
  };
  const subscribe = (
    p: MemoryPeer,
    uri: string,
    group: string | null = null,
    deny: string[] | null = null,
    responds = false,
  ) => {
    const sub = new Subscription(p, nextSid++, uri, parseEventUri(uri, true), group, null, null, deny, responds);
    router.add(sub);
    return sub;
  };
  const publish = (from: MemoryPeer, uri: string, text: string, flags = 0, r = 0) =>
    router.publish(from, from.name, uri, flags, r, 0, Buffer.from(text), 0);
  return { router, stats, peer, subscribe, publish };
}

describe('router', () => {
  test('all mode: every ungrouped subscription, one member per queue group, round-robin', () => {
    const { peer, subscribe, publish } = setup();
    const [a, b, g1, g2, pub] = [peer('a'), peer('b'), peer('g1'), peer('g2'), peer('pub')];
    subscribe(a, 'orders.*');
    subscribe(b, 'orders.new');
    subscribe(g1, 'orders.new', 'workers');
    subscribe(g2, 'orders.new', 'workers');
    for (let i = 0; i < 4; i++) assert.equal(publish(pub, 'orders.new', `m${i}`), 3);
    assert.equal(a.msgs.length, 4);
    assert.equal(b.msgs.length, 4);
    assert.deepEqual([g1.msgs.length, g2.msgs.length], [2, 2]);
    assert.equal(publish(pub, 'orders.old', 'x'), 1);
    assert.equal(publish(pub, 'nothing', 'x'), 0);
  });

  test('direct mode goes to one subscriber; one that refuses (deny rule, closed) passes it to another', () => {
    const { peer, subscribe, publish } = setup();
    const [w1, w2, w3, pub] = [peer('w1'), peer('w2'), peer('w3'), peer('pub')];
    subscribe(w1, 'jobs', null, ['jobs']);
    subscribe(w2, 'jobs');
    subscribe(w3, 'jobs');
    w3.open = false;
    for (let i = 0; i < 6; i++) assert.equal(publish(pub, 'jobs', `j${i}`, PubFlag.DIRECT), 1);
    assert.deepEqual([w1.msgs.length, w2.msgs.length, w3.msgs.length], [0, 6, 0]);
  });

  test('node targets reach only the named node; host targets must name this host or be forwarded', () => {
    const { peer, subscribe, publish } = setup();
    const [n1, n2, pub] = [peer('n1'), peer('n2'), peer('pub')];
    subscribe(n1, 'ping');
    subscribe(n2, 'ping');
    assert.equal(publish(pub, 'n2@here/ping', 'x'), 1);
    assert.deepEqual([n1.msgs.length, n2.msgs.length], [0, 1]);
    assert.equal(publish(pub, 'localhost/ping', 'x'), 2);
    assert.throws(() => publish(pub, 'elsewhere/ping', 'x'), { code: 'NO_ROUTE' });
  });

  test('permissions: a peer may not publish where it is denied, but always to $nodeset.stats', () => {
    const { peer, subscribe, publish } = setup();
    const [s, pub] = [peer('s'), peer('pub')];
    pub.deny = ['secret', '$nodeset.stats'];
    subscribe(s, 'secret');
    assert.throws(() => publish(pub, 'secret', 'x'), { code: 'PERMISSION_DENIED' });
    assert.equal(s.msgs.length, 0);
    assert.equal(publish(pub, '$nodeset.stats', '{}'), 0);
  });

  test('requests: the reply goes back only from the responder that got the request', () => {
    const { router, peer, subscribe, publish } = setup();
    const [responder, passive, other, asker] = [peer('responder'), peer('passive'), peer('other'), peer('asker')];
    subscribe(passive, 'math');
    subscribe(responder, 'math', null, null, true);
    assert.equal(publish(asker, 'math', '1', PubFlag.REQUEST, 7), 1);
    assert.equal(passive.msgs.length, 0, 'a passive subscriber never takes a request');
    assert.throws(() => router.reply(other, asker.id, 7, 0, undefined, Buffer.from('"forged"')), {
      code: 'BAD_FRAME',
    });
    router.reply(responder, asker.id, 7, 0, undefined, Buffer.from('2'));
    assert.deepEqual(asker.replies, [{ r: 7, payload: '2' }]);
    // Answered once: a second reply is refused.
    assert.throws(() => router.reply(responder, asker.id, 7, 0, undefined, Buffer.from('3')), { code: 'BAD_FRAME' });
    // A handler's error travels with its code.
    publish(asker, 'math', '1', PubFlag.REQUEST, 8);
    router.reply(responder, asker.id, 8, 0, { code: 'VALIDATION', message: 'bad' }, Buffer.alloc(0));
    assert.deepEqual(asker.replies[1]?.err, { code: 'VALIDATION', message: 'bad' });
  });

  test('a cut-policy peer is warned once past half its limit, again after draining, and cut past the limit', () => {
    const { router, stats, peer, subscribe, publish } = setup();
    const [slow, pub] = [peer('slow'), peer('pub')];
    subscribe(slow, 'flood');
    slow.pendingBytes = 600;
    publish(pub, 'flood', 'x');
    publish(pub, 'flood', 'x');
    assert.deepEqual(slow.warnings, [600]);
    router.drained(slow);
    publish(pub, 'flood', 'x');
    assert.equal(slow.warnings.length, 2);
    slow.pendingBytes = 1001;
    assert.equal(publish(pub, 'flood', 'x'), 0);
    assert.equal(slow.terminated, 'slow-consumer');
    assert.equal(stats.slowConsumers, 1);
    assert.equal(stats.slowWarnings, 2);
  });

  test('a pushback peer past its mark holds the publisher until it drains; two holders release together', () => {
    const { router, stats, peer, subscribe, publish } = setup();
    const [s1, s2, pub] = [peer('s1'), peer('s2'), peer('pub')];
    s1.pushback = true;
    s2.pushback = true;
    subscribe(s1, 'feed');
    subscribe(s2, 'feed');
    s1.pendingBytes = 500;
    s2.pendingBytes = 500;
    assert.equal(publish(pub, 'feed', 'x'), 2);
    assert.equal(pub.held, true);
    assert.equal(router.isHeld(pub), true);
    assert.equal(stats.pushbacks, 1);
    router.drained(s1);
    assert.equal(pub.held, true, 'still held by the other subscriber');
    router.detach(s2);
    assert.equal(pub.held, false);
    assert.equal(router.isHeld(pub), false);
    assert.equal(s1.terminated, null);
  });

  test('publishes for other hosts go to the federation, answered there', () => {
    const { router, peer, publish } = setup();
    const pub = peer('pub');
    const forwarded: string[] = [];
    let connected = true;
    router.setRemote({
      get connected() {
        return connected;
      },
      forward: (host, env) => void forwarded.push(`${host}:${env.uri}:${env.conn ?? '-'}`),
      broadcast: (env) => void forwarded.push(`all:${env.uri}`),
      reply: () => {},
      interestChanged: () => undefined,
      maxPayload: 0,
      knows: (host) => host === 'there',
      pickHost: () => null,
      groupHosts: () => null,
    });
    assert.equal(publish(pub, 'there/x', 'm', PubFlag.ACK, 3), FORWARDED);
    assert.throws(() => publish(pub, 'nowhere/x', 'm'), { code: 'NO_ROUTE' });
    assert.equal(publish(pub, '*/y', 'm'), 0);
    assert.deepEqual(forwarded, [`there:there/x:${pub.id}`, 'all:*/y']);
    connected = false;
    assert.throws(() => publish(pub, 'there/x', 'm'), { code: 'NO_ROUTE' });
  });
});

describe('router: the URI cache', () => {
  test('malformed URIs longer than the URI limit are refused and not kept', () => {
    const { router, peer } = setup();
    const p = peer('long');
    const before = router.cachedTargets;
    for (let i = 0; i < 100; i++) {
      const uri = `${'x'.repeat(5000)}${i}/y`;
      assert.throws(() => router.publish(p, 'long', uri, 0, 0, 0, Buffer.from('1'), 0), { code: 'BAD_URI' });
    }
    assert.equal(router.cachedTargets, before, 'no long URI kept');
    // Short malformed ones are kept (a client repeating one is refused from the cache).
    assert.throws(() => router.publish(p, 'long', 'a b', 0, 0, 0, Buffer.from('1'), 0), { code: 'BAD_URI' });
    assert.equal(router.cachedTargets, before + 1);
  });
});
