// The publish/subscribe behaviours, one suite run over every way a node
// reaches the dispatcher: plain TCP, TLS, and as members of a node collection
// (one shared connection, in-process delivery between members).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Dispatcher, type EventInfo, Node, NodeCollection, type NodesetError, on } from '../src/index.js';
import { Latch, makeCerts, startDispatcher, until } from './helpers.js';

const TRANSPORTS = ['tcp', 'tls', 'collection'] as const;

for (const transport of TRANSPORTS) {
  describe(`publish/subscribe end to end (${transport})`, () => {
    let dispatcher: Dispatcher;
    let collection: NodeCollection | null = null;
    let ca = '';
    const nodes: Node[] = [];
    /** Connects a node made by the test, the way this run's transport does. */
    const attach = async <N extends Node>(n: N): Promise<N> => {
      if (collection !== null) collection.add(n);
      nodes.push(n);
      return n.start();
    };
    const options = (name?: string) => ({
      ...(name === undefined ? {} : { name }),
      ...(collection === null ? { dispatcherUrl: dispatcher.url, startTimeoutMs: 5000 } : {}),
      ...(transport === 'tls' ? { tls: { ca } } : {}),
    });
    const node = (name?: string) => attach(new Node(options(name)));

    before(async () => {
      if (transport === 'tls') {
        const certs = await makeCerts();
        ca = certs.ca;
        dispatcher = await startDispatcher({ tls: { cert: certs.serverCert, key: certs.serverKey } });
      } else {
        dispatcher = await startDispatcher();
      }
      if (transport === 'collection') {
        collection = new NodeCollection({ dispatcherUrl: dispatcher.url, name: 'pubsub-collection' });
        await collection.start();
      }
    });
    after(async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      await collection?.stop();
      await dispatcher.stop();
    });

    test('a published event reaches a subscriber with its payload', async () => {
      const sub = await node('sub1');
      const pub = await node('pub1');
      const got = new Latch();
      let seen: { message: unknown; info: EventInfo } | undefined;
      await sub.subscribe('greetings', (message, info) => {
        seen = { message, info };
        got.countDown();
      });
      pub.publish('greetings', { text: 'hello' });
      await got.wait();
      assert.deepEqual(seen?.message, { text: 'hello' });
      assert.equal(seen?.info.from, 'pub1');
      assert.equal(seen?.info.uri, 'greetings');
    });

    test('every byte arrives intact and in order under load: mixed sizes, three subscribers', async () => {
      // Sizes from tiny to over a read chunk, so frames straddle reads and outbound buffers grow and are reused.
      const sizes = [16, 128, 1000, 5000, 20_000, 70_000];
      const count = 3000;
      const fill = (i: number) => {
        const b = Buffer.allocUnsafe(sizes[i % sizes.length] as number);
        for (let j = 0; j < b.length; j++) b[j] = (i * 31 + j) & 0xff;
        return b;
      };
      const done = new Latch(3);
      const problems: string[] = [];
      for (let k = 0; k < 3; k++) {
        const sub = await node(`intact-sub-${k}`);
        let next = 0;
        await sub.subscribe('intact.data', (message) => {
          const got = message as Buffer;
          if (!got.equals(fill(next))) problems.push(`subscriber ${k}: message ${next} differs`);
          if (++next === count) done.countDown();
        });
      }
      const pub = await node('intact-pub');
      for (let i = 0; i < count; i++) {
        pub.publish('intact.data', fill(i));
        if (i % 200 === 199) await pub.drain();
      }
      await done.wait(60_000);
      assert.deepEqual(problems.slice(0, 5), []);
    });

    test('payload types: JSON values, binary and empty', async () => {
      const sub = await node();
      const pub = await node();
      const values: unknown[] = [];
      const sent: unknown[] = [
        42,
        'text',
        null,
        [1, 'a'],
        { nested: { ok: true } },
        Buffer.from([0, 1, 255]),
        undefined,
      ];
      const got = new Latch(sent.length);
      await sub.subscribe('types', (m) => {
        values.push(m);
        got.countDown();
      });
      for (const v of sent) pub.publish('types', v);
      await got.wait();
      assert.deepEqual(values.slice(0, 5), sent.slice(0, 5));
      assert.ok(Buffer.isBuffer(values[5]));
      assert.deepEqual([...(values[5] as Buffer)], [0, 1, 255]);
      assert.equal(values[6], undefined);
    });

    test('ack resolves with the number of subscribers delivered to', async () => {
      const a = await node();
      const b = await node();
      const pub = await node();
      await a.subscribe('acked', () => {});
      await b.subscribe('acked', () => {});
      assert.equal(await pub.publish('acked', 1, { ack: true }), 2);
      assert.equal(await pub.publish('nobody.listens', 1, { ack: true }), 0);
    });

    test('wildcards: * matches one token, > one or more', async () => {
      const sub = await node();
      const pub = await node();
      const star: string[] = [];
      const rest: string[] = [];
      await sub.subscribe('orders.*', (_m, i) => void star.push(i.uri));
      await sub.subscribe('orders.>', (_m, i) => void rest.push(i.uri));
      for (const e of ['orders.new', 'orders.eu.new', 'orders', 'other.new']) await pub.publish(e, 0, { ack: true });
      await pub.publish('done.marker', 0, { ack: true });
      // Acks reach the publisher independently of the subscriber's reads: wait for the deliveries.
      await until(() => star.length + rest.length >= 3);
      assert.deepEqual(star, ['orders.new']);
      assert.deepEqual(rest, ['orders.new', 'orders.eu.new']);
    });

    test('host and node targets', async () => {
      const n1 = await node('target-one');
      const n2 = await node('target-two');
      const pub = await node();
      const got: string[] = [];
      await n1.subscribe('ping', () => void got.push('one'));
      await n2.subscribe('ping', () => void got.push('two'));
      assert.equal(await pub.publish('testhost/ping', 0, { ack: true }), 2);
      assert.equal(await pub.publish('localhost/ping', 0, { ack: true }), 2);
      assert.equal(await pub.publish('target-two@testhost/ping', 0, { ack: true }), 1);
      assert.equal(await pub.publish('nobody@testhost/ping', 0, { ack: true }), 0);
      await assert.rejects(pub.publish('elsewhere/ping', 0, { ack: true }), { code: 'NO_ROUTE' });
      assert.throws(() => pub.publish('target-two@testhost', 0), { code: 'BAD_URI' });
      assert.throws(() => pub.publish('orders.*', 0), { code: 'BAD_URI' });
      await until(() => got.length === 5);
      assert.equal(got.filter((g) => g === 'two').length, 3);
      assert.equal(got.filter((g) => g === 'one').length, 2);
    });

    test('direct mode: round-robin, with N subscribers and k*N messages each gets k', async () => {
      const counts = [0, 0, 0];
      const workers = await Promise.all([node(), node(), node()]);
      await Promise.all(workers.map((w, i) => w.subscribe('jobs', () => void counts[i]!++)));
      const pub = await node();
      for (let i = 0; i < 30; i++) assert.equal(await pub.publish('jobs', i, { mode: 'direct', ack: true }), 1);
      await until(() => counts[0]! + counts[1]! + counts[2]! === 30);
      assert.deepEqual(counts, [10, 10, 10]);
    });

    test('queue groups: one member per group, ungrouped subscribers get every message', async () => {
      const g = [0, 0];
      const solo = { n: 0 };
      const [w1, w2, s] = await Promise.all([node(), node(), node()]);
      await w1.subscribe('work', () => void g[0]!++, { group: 'workers' });
      await w2.subscribe('work', () => void g[1]!++, { group: 'workers' });
      await s.subscribe('work', () => void solo.n++);
      const pub = await node();
      for (let i = 0; i < 10; i++) assert.equal(await pub.publish('work', i, { ack: true }), 2);
      await until(() => g[0]! + g[1]! === 10 && solo.n === 10);
      assert.deepEqual(g, [5, 5]);
    });

    test('subscribing twice is idempotent; unsubscribe stops delivery', async () => {
      const sub = await node();
      const pub = await node();
      let n = 0;
      await sub.subscribe('twice', () => void n++);
      await sub.subscribe('twice', () => void n++);
      assert.equal(await pub.publish('twice', 1, { ack: true }), 1);
      await sub.unsubscribe('twice');
      assert.equal(await pub.publish('twice', 1, { ack: true }), 0);
      await until(() => n === 1);
      assert.equal(await pub.publish('twice', 1, { ack: true }), 0);
      assert.equal(n, 1);
    });

    test('request/reply returns the handler value, its error, or a timeout', async () => {
      const responder = await node('responder');
      const requester = await node();
      await responder.respond('math.double', (m: number) => m * 2);
      await responder.respond('math.slow', async (m: number) => {
        await new Promise((r) => setTimeout(r, 20));
        return m + 1;
      });
      await responder.respond('math.fail', () => {
        throw new Error('cannot do that');
      });
      await responder.respond('math.never', () => new Promise(() => {}));
      assert.equal(await requester.request('math.double', 21), 42);
      assert.equal(await requester.request('math.slow', 1), 2);
      await assert.rejects(requester.request('math.fail', 1), (err: NodesetError) => {
        assert.equal(err.code, 'HANDLER_ERROR');
        assert.match(err.message, /cannot do that/);
        return true;
      });
      await assert.rejects(requester.request('math.never', 1, { timeoutMs: 100 }), { code: 'TIMEOUT' });
      await assert.rejects(requester.request('math.nobody', 1), { code: 'NO_RESPONDERS' });
    });

    test('a request reaches only responders: a passive listener never takes one', async () => {
      const responder = await node('adder');
      const listener = await node('listener');
      const requester = await node();
      let listened = 0;
      await listener.subscribe('calc.>', () => {
        listened++;
        return 'not an answer';
      });
      await responder.respond('calc.add', (m: { a: number; b: number }) => m.a + m.b);
      const replies = [];
      for (let i = 0; i < 6; i++) replies.push(await requester.request('calc.add', { a: i, b: 1 }));
      assert.deepEqual(replies, [1, 2, 3, 4, 5, 6]);
      await assert.rejects(requester.request('calc.sub', { a: 1, b: 1 }), { code: 'NO_RESPONDERS' });
      // A plain publish still reaches both.
      assert.equal(await requester.publish('calc.add', { a: 0, b: 0 }, { ack: true }), 2);
      await until(() => listened === 1);
      await responder.unsubscribe('calc.add', { reply: true });
      await assert.rejects(requester.request('calc.add', { a: 1, b: 1 }), { code: 'NO_RESPONDERS' });
    });

    test("a handler's error too long for a frame reaches the requester cut short, and the responder goes on", async () => {
      const responder = await node();
      const requester = await node();
      let calls = 0;
      await responder.respond('long.fail', async (m: number) => {
        calls++;
        if (m === 1) throw new Error('x'.repeat(100_000));
        return 'fine';
      });
      await responder.respond('long.fail.sync', () => {
        throw new Error('y'.repeat(100_000));
      });
      await assert.rejects(requester.request('long.fail', 1), (err: NodesetError) => {
        assert.equal(err.code, 'HANDLER_ERROR');
        assert.ok(err.message.length < 5000, `${err.message.length} characters`);
        return true;
      });
      await assert.rejects(requester.request('long.fail.sync', 1), { code: 'HANDLER_ERROR' });
      assert.equal(await requester.request('long.fail', 2), 'fine');
      assert.equal(calls, 2);
    });

    test('per-event handlers declared with @on, and the default onEvent', async () => {
      class Counter extends Node {
        added: number[] = [];
        other: string[] = [];
        @on('counter.add', { reply: true })
        add(n: number) {
          this.added.push(n);
          return this.added.length;
        }
        override onEvent(event: string) {
          this.other.push(event);
          return undefined;
        }
      }
      const counter = await attach(new Counter(options()));
      await counter.subscribe('counter.misc');
      const pub = await node();
      assert.equal(await pub.request('counter.add', 5), 1);
      assert.equal(await pub.publish('counter.misc', 'x', { ack: true }), 1);
      assert.deepEqual(counter.added, [5]);
      await until(() => counter.other.length === 1);
      assert.deepEqual(counter.other, ['counter.misc']);
    });

    test('stats, nodes and subscribers are available over the protocol', async () => {
      const sub = await node('stats-sub');
      await sub.subscribe('stats.event', () => {});
      const pub = await node();
      await pub.publish('stats.event', 1, { ack: true });
      const stats = (await pub.stats()) as { publishes: number; deliveries: number; events: Record<string, number> };
      assert.ok(stats.publishes >= 1);
      assert.equal(stats.events['stats.event'], 1);
      const subs = (await pub.subscribers('stats.event')) as { node: string; nodes: string[] }[];
      // A collection's members share its connection: the entry names the connection and lists the members.
      const connection = collection === null ? 'stats-sub' : 'pubsub-collection';
      assert.deepEqual(
        subs.map((s) => [s.node, s.nodes]),
        [[connection, ['stats-sub']]],
      );
      const list = (await pub.nodes()) as { name: string; subscriptions: string[] }[];
      assert.ok(list.find((n) => n.name === connection)?.subscriptions.includes('stats.event'));
    });
  });
}
