import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Dispatcher, type EventInfo, Node, NodeCollection, on } from '../src/index.js';
import { Latch, startDispatcher, startNode, until } from './helpers.js';

/** A node class used both standalone and inside a collection, unchanged. */
class Worker extends Node {
  got: unknown[] = [];
  @on('work.item', { reply: true })
  item(m: unknown) {
    this.got.push(m);
    return `${this.name} did ${String(m)}`;
  }
}

describe('NodeCollection', () => {
  let dispatcher: Dispatcher;
  const cleanup: { stop(): Promise<void> }[] = [];
  const collection = async (...members: Node[]) => {
    const c = new NodeCollection({ dispatcherUrl: dispatcher.url, name: `coll-${cleanup.length}` });
    for (const m of members) c.add(m);
    cleanup.push(c);
    return c.start();
  };
  const remote = async (name?: string) => {
    const n = await startNode(dispatcher, name === undefined ? {} : { name });
    cleanup.push(n);
    return n;
  };

  before(async () => {
    dispatcher = await startDispatcher();
  });
  after(async () => {
    for (const c of cleanup.reverse()) await c.stop();
    await dispatcher.stop();
  });

  test('one dispatcher subscription per distinct URI, removed when the last member leaves it', async () => {
    const [a, b, c] = [new Node({ name: 'm-a' }), new Node({ name: 'm-b' }), new Node({ name: 'm-c' })];
    const coll = await collection(a, b, c);
    const before = dispatcher.subscriptionCount;
    await a.subscribe('shared.event', () => {});
    await b.subscribe('shared.event', () => {});
    await c.subscribe('shared.event', () => {});
    await c.subscribe('other.event', () => {});
    assert.equal(dispatcher.subscriptionCount - before, 2);
    assert.equal(coll.sharedSubscriptionCount, 2);
    await a.unsubscribe('shared.event');
    await b.unsubscribe('shared.event');
    assert.equal(dispatcher.subscriptionCount - before, 2);
    await c.unsubscribe('shared.event');
    assert.equal(dispatcher.subscriptionCount - before, 1);
  });

  test('members get events from members locally, remote nodes through the dispatcher, each exactly once', async () => {
    const [pub, s1, s2] = [new Node({ name: 'l-pub' }), new Node({ name: 'l-s1' }), new Node({ name: 'l-s2' })];
    await collection(pub, s1, s2);
    const got: Record<string, unknown[]> = { s1: [], s2: [], remote: [] };
    await s1.subscribe('local.news', (m) => void got.s1!.push(m));
    await s2.subscribe('local.news', (m) => void got.s2!.push(m));
    const r = await remote('l-remote');
    await r.subscribe('local.news', (m) => void got.remote!.push(m));
    const deliveriesBefore = dispatcher.stats.deliveries;
    assert.equal(await pub.publish('local.news', 'n1', { ack: true }), 3);
    pub.publish('local.news', 'n2');
    await until(() => got.s1!.length === 2 && got.s2!.length === 2 && got.remote!.length === 2);
    assert.deepEqual(got, { s1: ['n1', 'n2'], s2: ['n1', 'n2'], remote: ['n1', 'n2'] });
    assert.equal(dispatcher.stats.deliveries - deliveriesBefore, 2, 'the dispatcher delivered only to the remote node');
    // A remote publish reaches both members through the one shared subscription.
    assert.equal(await r.publish('local.news', 'n3', { ack: true }), 2);
    await until(() => got.s1!.length === 3 && got.s2!.length === 3);
    assert.equal(got.remote!.length, 3);
  });

  test('direct mode picks exactly one receiver among local and remote subscribers', async () => {
    const [pub, w1, w2] = [new Node({ name: 'd-pub' }), new Node({ name: 'd-w1' }), new Node({ name: 'd-w2' })];
    await collection(pub, w1, w2);
    const seen: string[] = [];
    await w1.subscribe('direct.job', (m: number) => void seen.push(`w1:${m}`));
    await w2.subscribe('direct.job', (m: number) => void seen.push(`w2:${m}`));
    const r = await remote();
    await r.subscribe('direct.job', (m: number) => void seen.push(`r:${m}`));
    for (let i = 0; i < 40; i++) assert.equal(await pub.publish('direct.job', i, { mode: 'direct', ack: true }), 1);
    await until(() => seen.length === 40);
    const ids = seen.map((s) => Number(s.split(':')[1])).sort((a, b) => a - b);
    assert.deepEqual(
      ids,
      Array.from({ length: 40 }, (_, i) => i),
      'each message exactly once',
    );
    for (const who of ['w1', 'w2', 'r'])
      assert.ok(
        seen.some((s) => s.startsWith(`${who}:`)),
        `${who} got some`,
      );
  });

  test('request/reply between members and with remote nodes; node targets reach one member', async () => {
    const [w, client] = [new Worker({ name: 'rr-worker' }), new Node({ name: 'rr-client' })];
    await collection(w, client);
    assert.equal(await client.request('work.item', 1), 'rr-worker did 1');
    const r = await remote();
    assert.equal(await r.request('work.item', 2), 'rr-worker did 2');
    const other = new Worker({ name: 'rr-other' });
    await collection(other);
    // Both workers subscribe to work.item; a node target reaches only the one named.
    assert.equal(await r.publish('rr-other@testhost/work.item', 3, { ack: true }), 1);
    await until(() => other.got.length === 1);
    assert.deepEqual(w.got, [1, 2]);
  });

  test("members' handlers do not block each other; one that throws does not affect the others", async () => {
    const slow = new Node({ name: 'h-slow' });
    const failing = new Node({ name: 'h-fail' });
    const fast = new Node({ name: 'h-fast' });
    await collection(slow, failing, fast);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const fastGot = new Latch(3);
    let slowDone = 0;
    await slow.subscribe('h.event', async () => {
      await gate;
      slowDone++;
    });
    await failing.respond('h.event', () => {
      throw new Error('handler bug');
    });
    await fast.respond('h.event', () => void fastGot.countDown());
    const r = await remote();
    for (let i = 0; i < 3; i++) r.publish('h.event', i);
    await fastGot.wait();
    assert.equal(slowDone, 0, 'the slow handler is still waiting while the fast one got everything');
    release();
    await until(() => slowDone === 3);
    await assert.rejects(r.request('h-fail@testhost/h.event', 0), { code: 'HANDLER_ERROR', message: 'handler bug' });
    assert.equal(await r.request('h-fast@testhost/h.event', 0), undefined);
  });

  test('the same class runs standalone and in a collection', async () => {
    const standalone = new Worker({ name: 'cls-standalone', dispatcherUrl: dispatcher.url });
    await standalone.start();
    cleanup.push(standalone);
    const member = new Worker({ name: 'cls-member' });
    await collection(member);
    const r = await remote();
    await r.publish('work.item', 'x', { ack: true });
    await until(() => standalone.got.length === 1 && member.got.length === 1);
    assert.equal(await r.request('cls-member@testhost/work.item', 'y'), 'cls-member did y');
    assert.equal(await r.request('cls-standalone@testhost/work.item', 'z'), 'cls-standalone did z');
  });

  test('reconnect: the collection re-subscribes for its members', async () => {
    const d = await startDispatcher();
    const port = d.address.port;
    const a = new Node({ name: 'rc-a' });
    const b = new Node({ name: 'rc-b' });
    const coll = new NodeCollection({ dispatcherUrl: d.url, reconnect: { initialMs: 50, maxMs: 200 } });
    coll.add(a);
    coll.add(b);
    await coll.start();
    const got: string[] = [];
    await a.subscribe('rc.event', (_m, i: EventInfo) => void got.push(`a:${i.from}`));
    await b.subscribe('rc.event', (_m, i: EventInfo) => void got.push(`b:${i.from}`));
    await d.stop();
    const d2 = await startDispatcher({ port });
    try {
      const pub = await startNode(d2, { name: 'rc-pub' });
      await until(async () => (await pub.publish('rc.event', 1, { ack: true })) === 1, 5000, 'resubscribed');
      await until(() => got.length === 2);
      assert.deepEqual(got.sort(), ['a:rc-pub', 'b:rc-pub']);
      await pub.stop();
    } finally {
      await coll.stop();
      await d2.stop();
    }
  });
});
