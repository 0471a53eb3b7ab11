import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Dispatcher, Node, NodeCollection, StreamNode } from '../src/index.js';
import { encodeFrame, FrameKind } from '../src/protocol/frames.js';
import { AuthConfig } from '../src/security/auth-config.js';
import { FailureBackoff } from '../src/security/failure-backoff.js';
import { hashToken } from '../src/security/keys.js';
import { covers, intersects, mayPublish, maySubscribe } from '../src/security/permissions.js';
import { CliProcess, makeCerts, startDispatcher, startNode, type TestCerts, until } from './helpers.js';
import { RawClient } from './raw-client.js';

const TOKENS = { alice: 'alice-secret-token', bob: 'bob-secret-token', carol: 'carol-secret-token' };

const authConfig = () =>
  new AuthConfig({
    identities: [
      {
        name: 'alice',
        token: hashToken(TOKENS.alice),
        publish: { allow: ['orders.>'], deny: ['orders.secret'] },
        subscribe: { allow: ['orders.*'], deny: ['orders.internal'] },
      },
      { name: 'bob', token: hashToken(TOKENS.bob) },
      { name: 'carol', token: hashToken(TOKENS.carol), maxConnections: 1 },
    ],
  });

describe('permission patterns', () => {
  test('covers and intersects', () => {
    assert.ok(covers('orders.>', 'orders.*'));
    assert.ok(covers('orders.*', 'orders.new'));
    assert.ok(!covers('orders.*', 'orders.>'));
    assert.ok(!covers('orders.*', 'orders.a.b'));
    assert.ok(covers('>', 'anything.>'));
    assert.ok(intersects('orders.internal', 'orders.*'));
    assert.ok(intersects('*.b', 'a.>'));
    assert.ok(!intersects('a.b', 'a.c'));
    assert.ok(!intersects('a.*', 'a.b.c'));
  });

  test('deny wins over allow', () => {
    const rules = { allow: ['orders.>'], deny: ['orders.secret'] };
    assert.ok(mayPublish(rules, 'orders.new'));
    assert.ok(!mayPublish(rules, 'orders.secret'));
    assert.ok(!mayPublish(rules, 'billing.new'));
    assert.ok(maySubscribe({ allow: ['orders.*'], deny: [] }, 'orders.*'));
    assert.ok(maySubscribe({ allow: ['orders.*'], deny: ['orders.internal'] }, 'orders.*'));
    assert.ok(!maySubscribe({ allow: ['orders.*'], deny: ['orders.internal'] }, 'orders.internal'));
    assert.ok(!maySubscribe({ allow: ['>'], deny: ['orders.>'] }, 'orders.*'));
  });
});

describe('failure back-off', () => {
  test('waits double per failure up to the cap; a success or a quiet spell clears the address', () => {
    let now = 0;
    const b = new FailureBackoff({ baseMs: 100, maxMs: 1000, forgetMs: 60_000, maxAddresses: 3, now: () => now });
    assert.equal(b.waitMs('a'), 0);
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map(() => b.fail('a')),
      [100, 200, 400, 800, 1000, 1000],
    );
    assert.equal(b.waitMs('a'), 1000);
    now += 400;
    assert.equal(b.waitMs('a'), 600);
    assert.equal(b.waitMs('b'), 0, 'per address');
    b.succeed('a');
    assert.equal(b.waitMs('a'), 0);
    assert.equal(b.fail('a'), 100, 'starts again after a success');
    b.fail('a');
    now += 60_000;
    assert.equal(b.waitMs('a'), 0);
    assert.equal(b.fail('a'), 100, 'starts again after forgetMs without a failure');
  });

  test('turns: attempts made together while backing off are checked one interval apart', () => {
    let now = 0;
    const b = new FailureBackoff({ baseMs: 100, maxMs: 1000, forgetMs: 60_000, maxAddresses: 3, now: () => now });
    assert.equal(b.takeTurn('a'), 0, 'no failure: at once');
    b.fail('a');
    assert.deepEqual(
      [1, 2, 3].map(() => b.takeTurn('a')),
      [100, 200, 300],
    );
    now += 100;
    b.fail('a');
    assert.equal(b.takeTurn('a'), 300, 'a failure keeps the turns already taken');
  });

  test('remembers at most maxAddresses, forgetting the least recently failed', () => {
    const now = 0;
    const b = new FailureBackoff({ baseMs: 100, maxMs: 1000, forgetMs: 60_000, maxAddresses: 3, now: () => now });
    for (const a of ['a', 'b', 'c']) b.fail(a);
    b.fail('a');
    b.fail('d');
    assert.equal(b.size, 3);
    assert.equal(b.waitMs('b'), 0, 'b was the least recently failed');
    assert.equal(b.waitMs('a'), 200);
    assert.equal(b.waitMs('c'), 100);
    assert.equal(b.waitMs('d'), 100);
  });
});

describe('limits before authentication', () => {
  test('parallel wrong guesses from one address are checked one per interval; a right token then gets in', async () => {
    const d = await startDispatcher({ auth: authConfig() });
    try {
      const raws = await Promise.all(Array.from({ length: 6 }, () => RawClient.connect(d.address.port, false)));
      const started = Date.now();
      const answeredAt: number[] = [];
      await Promise.all(
        raws.map(async (raw, i) => {
          raw.send(encodeFrame(FrameKind.HELLO, { v: 1, name: `guess-${i}`, token: `guess-${i}` }));
          const error = await raw.nextError(30_000);
          assert.ok(['AUTH_FAILED', 'LIMIT_EXCEEDED'].includes(error.code), error.code);
          if (error.code === 'AUTH_FAILED') answeredAt.push(Date.now() - started);
        }),
      );
      // Each checked guess waited for its own turn, one interval (100 ms) after the one
      // before: the k-th is answered about k intervals after the first (less 30 ms of measuring slack);
      // without the back-off all would be answered within a few ms.
      answeredAt.sort((a, b) => a - b);
      assert.ok(answeredAt.length >= 2, `${answeredAt.length} guesses checked`);
      for (let i = 1; i < answeredAt.length; i++) {
        assert.ok((answeredAt[i] as number) - (answeredAt[0] as number) >= i * 100 - 30, answeredAt.join(','));
      }
      assert.ok(d.stats.authThrottled >= 5, `${d.stats.authThrottled} throttled`);
      assert.equal(d.stats.authFailures, answeredAt.length);
      // The right token from the same address waits its turn, then gets in.
      const node = await startNode(d, { token: TOKENS.bob, startTimeoutMs: 30_000, connectTimeoutMs: 30_000 });
      assert.ok(node.connected);
      await node.stop();
    } finally {
      await d.stop();
    }
  });

  test('a HELLO that waits its turn keeps its will intact while other connections are read', async () => {
    // The waiting HELLO's header was read from the shared read buffer, which the publishes
    // read meanwhile overwrite: the will's bytes must have been kept apart.
    const d = await startDispatcher({ auth: authConfig() });
    const slow = { startTimeoutMs: 30_000, connectTimeoutMs: 30_000 };
    const watcher = await startNode(d, { name: 'watcher', token: TOKENS.bob, ...slow });
    try {
      const wills: Buffer[] = [];
      await watcher.subscribe('wills.x', (message) => void wills.push(message as Buffer));
      const guess = await RawClient.connect(d.address.port, false);
      guess.send(encodeFrame(FrameKind.HELLO, { v: 1, name: 'guess', token: 'wrong' }));
      assert.equal((await guess.nextError(30_000)).code, 'AUTH_FAILED');
      const will = Buffer.alloc(5000);
      for (let i = 0; i < will.length; i++) will[i] = (i * 31 + 7) & 0xff;
      const dying = await RawClient.connect(d.address.port, false);
      dying.send(
        encodeFrame(FrameKind.HELLO, {
          v: 1,
          name: 'dying',
          token: TOKENS.bob,
          will: { uri: 'wills.x', ct: 1, payload: will },
        }),
      );
      await until(() => d.stats.authThrottled >= 1, 30_000);
      for (let i = 0; i < 20; i++) watcher.publish('noise', Buffer.alloc(6000, 0xee));
      await dying.next((f) => f.kind === FrameKind.WELCOME, 30_000);
      dying.destroy();
      await until(() => wills.length === 1, 30_000);
      assert.ok(Buffer.from(wills[0] as Buffer).equals(will), 'the will arrived byte for byte');
      guess.destroy();
    } finally {
      await watcher.stop();
      await d.stop();
    }
  });

  test('a node refused with AUTH_FAILED stops trying, unless told to keep trying', async () => {
    const d = await startDispatcher({ auth: authConfig() });
    try {
      const node = new Node({ dispatcherUrl: d.url, token: 'wrong', startTimeoutMs: 5000 });
      await assert.rejects(node.start(), { code: 'AUTH_FAILED' });
      const failures = d.stats.authFailures;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(d.stats.authFailures, failures, 'no further attempts');
      assert.equal(d.connectionCount, 0);
      await node.stop();
      const stubborn = new Node({
        dispatcherUrl: d.url,
        token: 'wrong',
        startTimeoutMs: 0,
        retryOnAuthFailure: true,
        reconnect: { initialMs: 10, maxMs: 50 },
      });
      stubborn.on('error', () => {});
      void stubborn.start().catch(() => {});
      await until(() => d.stats.authFailures >= failures + 3, 20_000, 'retries after AUTH_FAILED');
      await stubborn.stop();
    } finally {
      await d.stop();
    }
  });

  test('before HELLO a frame may not carry a payload: one fatal TOO_LARGE, unbuffered; after it, payloads are fine', async () => {
    const d = await startDispatcher();
    try {
      const raw = await RawClient.connect(d.address.port, false);
      raw.send(encodeFrame(FrameKind.PUB, ['x', 0, 0, 1], Buffer.alloc(100_000)));
      const error = await raw.nextError();
      assert.deepEqual([error.code, error.fatal], ['TOO_LARGE', true]);
      await raw.waitClosed(3000);
      const ok = await RawClient.connect(d.address.port, false);
      ok.send(encodeFrame(FrameKind.HELLO, { v: 1, name: 'on-time' }));
      await ok.next((f) => f.kind === FrameKind.WELCOME);
      ok.send(encodeFrame(FrameKind.PUB, ['x', 2, 1, 1], Buffer.alloc(100_000)));
      await ok.next((f) => f.kind === FrameKind.OK);
      ok.destroy();
    } finally {
      await d.stop();
    }
  });

  test('attempts refused during a back-off take no turn: the address is not locked out past the handshake timeout', async () => {
    const d = await startDispatcher({ auth: authConfig(), handshakeTimeoutMs: 1000 });
    try {
      const hello = (token: string) => encodeFrame(FrameKind.HELLO, { v: 1, name: 'n', token });
      const first = await RawClient.connect(d.address.port, false);
      first.send(hello('wrong'));
      assert.equal((await first.nextError()).code, 'AUTH_FAILED');
      // A burst: most cannot be checked before their handshake timeout and are refused unchecked.
      const burst = await Promise.all(Array.from({ length: 60 }, () => RawClient.connect(d.address.port, false)));
      for (const raw of burst) raw.send(hello('wrong'));
      const codes = await Promise.all(burst.map(async (raw) => (await raw.nextError(30_000)).code));
      assert.ok(codes.includes('LIMIT_EXCEEDED'), codes.join(','));
      // Once the turns that were taken are over, the right token gets in at once.
      const started = Date.now();
      const node = await startNode(d, { token: TOKENS.bob, startTimeoutMs: 60_000, connectTimeoutMs: 30_000 });
      assert.ok(node.connected);
      await node.stop();
      // Well inside the 10 s cap: a refused attempt would have pushed the turns out by minutes.
      assert.ok(Date.now() - started < 15_000, `${Date.now() - started} ms`);
    } finally {
      await d.stop();
    }
  });

  test('a last will may not publish under $nodeset.', async () => {
    const d = await startDispatcher();
    try {
      const forger = new Node({
        dispatcherUrl: d.url,
        startTimeoutMs: 3000,
        lastWill: { uri: '$nodeset.node.left', message: { name: 'billing', reason: 'kicked' } },
      });
      await assert.rejects(forger.start(), { code: 'PERMISSION_DENIED' });
      await forger.stop();
    } finally {
      await d.stop();
    }
  });
});

describe('identities own their names', () => {
  const NAMED = { billing: 'billing-secret-token', other: 'other-secret-token' };
  const named = () =>
    new AuthConfig({
      identities: [
        { name: 'billing', token: hashToken(NAMED.billing), names: ['billing', 'billing-*'], query: true },
        { name: 'other', token: hashToken(NAMED.other) },
      ],
    });

  test("a node name listed for one identity cannot be taken by another, in HELLO, a publish's sender or a collection", async () => {
    const d = await startDispatcher({ auth: named() });
    try {
      const squatter = new Node({ dispatcherUrl: d.url, token: NAMED.other, name: 'billing', startTimeoutMs: 3000 });
      await assert.rejects(squatter.start(), { code: 'PERMISSION_DENIED' });
      await squatter.stop();
      const outsider = new Node({
        dispatcherUrl: d.url,
        token: NAMED.billing,
        name: 'not-billing',
        startTimeoutMs: 3000,
      });
      await assert.rejects(outsider.start(), { code: 'PERMISSION_DENIED' });
      await outsider.stop();
      const billing = await startNode(d, { token: NAMED.billing, name: 'billing-2' });
      let answered = 0;
      await billing.subscribe('invoice', () => ++answered);
      // A raw connection of the other identity sends a publish as "billing".
      const raw = await RawClient.connect(d.address.port, false);
      raw.send(encodeFrame(FrameKind.HELLO, { v: 1, name: 'someone', token: NAMED.other }));
      await raw.next((f) => f.kind === FrameKind.WELCOME);
      raw.send(encodeFrame(FrameKind.PUB, ['invoice', 2, 7, 0, 'billing'], Buffer.from('1')));
      assert.deepEqual(await raw.nextError(), {
        code: 'PERMISSION_DENIED',
        r: 7,
        message: 'identity other may not use the node name billing',
      });
      // A collection of the other identity cannot hold a member named billing.
      const collection = new NodeCollection({ dispatcherUrl: d.url, token: NAMED.other, name: 'other-coll' });
      const member = collection.add(new Node({ name: 'billing' }));
      const honest = collection.add(new Node({ name: 'worker-1' }));
      await collection.start();
      // Both join the same shared subscription in one turn: only the squatter is refused.
      const [squatted, fair] = await Promise.allSettled([member.subscribe('invoice'), honest.subscribe('invoice')]);
      assert.equal(squatted.status, 'rejected');
      assert.equal((squatted as PromiseRejectedResult).reason.code, 'PERMISSION_DENIED');
      assert.equal(fair.status, 'fulfilled');
      assert.deepEqual(member.subscriptions(), []);
      assert.deepEqual(honest.subscriptions(), [{ uri: 'invoice', group: null }]);
      assert.deepEqual(
        d.subscribers('invoice').flatMap((s) => s.nodes),
        ['billing-2', 'worker-1'],
      );
      await collection.stop();
      assert.equal(answered, 0);
      raw.destroy();
      await billing.stop();
    } finally {
      await d.stop();
    }
  });

  test('$nodeset. events come only from the dispatcher, and no node is "dispatcher"', async () => {
    const d = await startDispatcher();
    try {
      const watcher = await startNode(d);
      const seen: string[] = [];
      await watcher.subscribe('$nodeset.node.*', (_m, info) => void seen.push(`${info.from} ${info.uri}`));
      const forger = await startNode(d, { name: 'forger' });
      await assert.rejects(forger.publish('$nodeset.node.left', { name: 'x' }, { ack: true }), {
        code: 'PERMISSION_DENIED',
      });
      const impostor = new Node({ dispatcherUrl: d.url, name: 'dispatcher', startTimeoutMs: 3000 });
      await assert.rejects(impostor.start(), { code: 'PERMISSION_DENIED' });
      await impostor.stop();
      // Its own metrics every node may still publish.
      assert.equal(await forger.publish('$nodeset.stats', { ok: true }, { ack: true }), 0);
      await forger.stop();
      await until(() => seen.some((e) => e === 'dispatcher $nodeset.node.left'), 5000, 'the real left event');
      assert.ok(
        seen.every((e) => e.startsWith('dispatcher ')),
        seen.join(', '),
      );
      await watcher.stop();
    } finally {
      await d.stop();
    }
  });

  test('querying the node list needs the query permission', async () => {
    const d = await startDispatcher({ auth: named() });
    try {
      const other = await startNode(d, { token: NAMED.other, name: 'someone' });
      await assert.rejects(other.nodes(), { code: 'PERMISSION_DENIED' });
      await assert.rejects(other.stats(), { code: 'PERMISSION_DENIED' });
      const billing = await startNode(d, { token: NAMED.billing, name: 'billing' });
      const list = (await billing.nodes()) as { name: string }[];
      assert.deepEqual(list.map((n) => n.name).sort(), ['billing', 'someone']);
      await other.stop();
      await billing.stop();
    } finally {
      await d.stop();
    }
  });
});

describe('authentication and permissions', () => {
  let dispatcher: Dispatcher;
  const nodes: Node[] = [];
  const as = async (token: string | undefined, name?: string) => {
    const n = await startNode(dispatcher, { token, name, startTimeoutMs: 3000 });
    nodes.push(n);
    return n;
  };

  before(async () => {
    dispatcher = await startDispatcher({ auth: authConfig() });
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await dispatcher.stop();
  });

  test('a missing or wrong token is refused with AUTH_FAILED and the connection closed', async () => {
    for (const token of [undefined, 'wrong-token']) {
      const node = new Node({ dispatcherUrl: dispatcher.url, token, startTimeoutMs: 3000 });
      await assert.rejects(node.start(), { code: 'AUTH_FAILED' });
      await node.stop();
    }
    const raw = await RawClient.connect(dispatcher.address.port, false);
    raw.send(encodeFrame(FrameKind.HELLO, { v: 1, name: 'raw', token: 'nope' }));
    assert.deepEqual(await raw.nextError(), { code: 'AUTH_FAILED', message: 'wrong token', fatal: true });
    await raw.waitClosed();
    assert.ok(dispatcher.stats.authFailures >= 3);
  });

  test('the token may travel in the URL', async () => {
    const node = await startNode(`nodeset://${TOKENS.bob}@127.0.0.1:${dispatcher.address.port}`);
    nodes.push(node);
    assert.ok(node.connected);
  });

  test('publish and subscribe outside the permissions are refused per operation; the connection stays', async () => {
    const alice = await as(TOKENS.alice, 'alice-1');
    const bob = await as(TOKENS.bob, 'bob-1');
    const got: unknown[] = [];
    await bob.subscribe('orders.>', (m) => void got.push(m));
    assert.equal(await alice.publish('orders.new', 1, { ack: true }), 1);
    await assert.rejects(alice.publish('orders.secret', 2, { ack: true }), { code: 'PERMISSION_DENIED' });
    await assert.rejects(alice.publish('billing.new', 3, { ack: true }), { code: 'PERMISSION_DENIED' });
    await assert.rejects(alice.subscribe('orders.>'), { code: 'PERMISSION_DENIED' });
    await assert.rejects(alice.subscribe('orders.internal'), { code: 'PERMISSION_DENIED' });
    await assert.rejects(alice.subscribe('billing.*'), { code: 'PERMISSION_DENIED' });
    await assert.rejects(alice.request('billing.quote', 1), { code: 'PERMISSION_DENIED' });
    await assert.rejects(alice.subscribers('billing.quote'), { code: 'PERMISSION_DENIED' });
    // Still connected, still allowed what it may do. orders.* is allowed; the
    // denied orders.internal inside it is filtered at delivery.
    const aliceGot: string[] = [];
    await alice.subscribe('orders.*', (_m, info) => void aliceGot.push(info.uri));
    assert.equal(await alice.publish('orders.paid', 4, { ack: true }), 2);
    assert.equal(await bob.publish('orders.internal', 5, { ack: true }), 1, 'bob only: alice may not see it');
    await until(() => got.length === 3 && aliceGot.length >= 1);
    assert.deepEqual(got, [1, 4, 5]);
    assert.equal(await bob.publish('orders.marker', 6, { ack: true }), 2);
    await until(() => aliceGot.includes('orders.marker'));
    assert.deepEqual(aliceGot, ['orders.paid', 'orders.marker'], 'orders.internal never reached alice');
    assert.ok(dispatcher.stats.permissionDenials >= 7);
  });

  test('a deny rule applied at delivery never costs a direct message, a request or a group message another subscriber may take', async () => {
    // A dispatcher of its own: no other test's subscriptions. alice's orders.*
    // excludes orders.internal at delivery; bob may take everything.
    const d = await startDispatcher({ auth: authConfig() });
    const on = async (token: string, name: string) => {
      const n = await startNode(d, { token, name, startTimeoutMs: 3000 });
      nodes.push(n);
      return n;
    };
    const alice = await on(TOKENS.alice, 'alice-2');
    const bob = await on(TOKENS.bob, 'bob-2');
    const pub = await on(TOKENS.bob, 'bob-pub');
    const aliceGot: unknown[] = [];
    const bobGot: unknown[] = [];
    await alice.subscribe('orders.*', (m) => void aliceGot.push(m), { group: 'workers' });
    // alice answers requests too, and is denied this one at delivery like the rest.
    await alice.respond('orders.*', (m) => void aliceGot.push(m));
    await bob.subscribe('orders.*', (m) => void bobGot.push(m), { group: 'workers' });
    for (let i = 0; i < 20; i++) {
      assert.equal(await pub.publish('orders.internal', i, { mode: 'direct', ack: true }), 1, `direct ${i}`);
    }
    for (let i = 20; i < 40; i++) assert.equal(await pub.publish('orders.internal', i, { ack: true }), 1, `group ${i}`);
    await until(() => bobGot.length === 40, 5000, 'every message at bob');
    assert.deepEqual(aliceGot, [], 'none reached the denied subscriber');
    // A request goes to one that may see it, too.
    await bob.unsubscribe('orders.*', { group: 'workers' });
    const responder = await on(TOKENS.bob, 'bob-responder');
    await responder.respond('orders.*', () => 'from bob');
    for (let i = 0; i < 10; i++) assert.equal(await pub.request('orders.internal', i), 'from bob');
    assert.deepEqual(aliceGot, []);
    for (const n of [alice, bob, pub, responder]) await n.stop();
    await d.stop();
  });

  test('connections per identity are limited', async () => {
    await as(TOKENS.carol, 'carol-1');
    const second = new Node({ dispatcherUrl: dispatcher.url, token: TOKENS.carol, startTimeoutMs: 3000 });
    await assert.rejects(second.start(), { code: 'LIMIT_EXCEEDED' });
    await second.stop();
  });
});

describe('auth file and secure defaults', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodeset-auth-'));

  test('YAML and JSON files load; mistakes are named', () => {
    const yamlPath = join(dir, 'auth.yaml');
    writeFileSync(
      yamlPath,
      `identities:\n  - name: svc\n    token: "${hashToken('t')}"\n    publish:\n      allow: ["a.>"]\n`,
    );
    assert.equal(AuthConfig.load(yamlPath).authenticate('t')?.name, 'svc');
    const jsonPath = join(dir, 'auth.json');
    writeFileSync(jsonPath, JSON.stringify({ identities: [{ name: 'j', token: hashToken('u') }] }));
    assert.equal(AuthConfig.load(jsonPath).authenticate('u')?.name, 'j');
    assert.equal(AuthConfig.load(jsonPath).authenticate('t'), null);

    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'identities:\n  - name: x\n    token: plaintext\n');
    assert.throws(() => AuthConfig.load(bad), /identities\.0\.token: must be a token hash/);
    writeFileSync(bad, `identities:\n  - name: x\n    token: "${hashToken('a')}"\n    publish: { allow: ["a..b"] }\n`);
    assert.throws(() => AuthConfig.load(bad), /identities\.0\.publish\.allow\.0: not a valid event pattern/);
    writeFileSync(bad, `identities:\n  - name: x\n    token: "${hashToken('a')}"\n    colour: blue\n`);
    assert.throws(() => AuthConfig.load(bad), /colour/);
    writeFileSync(bad, 'identities: [unclosed');
    assert.throws(() => AuthConfig.load(bad), { code: 'BAD_OPTION' });
  });

  test('a non-loopback listen without auth is refused, and says why', async () => {
    await assert.rejects(new Dispatcher({ host: '0.0.0.0', port: 0 }).start(), /without authentication.*--insecure/);
    const cli = new CliProcess('nodeset-dispatcher', ['--listen', '0.0.0.0:0']);
    assert.equal(await cli.exit(), 2);
    assert.match(cli.stderr.join('\n'), /refusing to listen on 0\.0\.0\.0 without authentication/);
  });

  test('nodeset-dispatcher --hash-token prints the stored form', async () => {
    const cli = new CliProcess('nodeset-dispatcher', ['--hash-token', 'my-token']);
    assert.equal(await cli.exit(), 0);
    assert.deepEqual(cli.lines, [hashToken('my-token')]);
  });

  test('nodeset-node with a wrong token exits 1 with AUTH_FAILED', async () => {
    const d = await startDispatcher({ auth: authConfig() });
    try {
      const cli = new CliProcess('nodeset-node', [
        'publisher',
        '--dispatcher-url',
        d.url,
        '--event',
        'x',
        '--token',
        'bad',
      ]);
      assert.equal(await cli.exit(), 1);
      assert.match(cli.stderr.join('\n'), /AUTH_FAILED/);
    } finally {
      await d.stop();
    }
  });
});

describe('TLS', () => {
  let c: TestCerts;

  before(async () => {
    c = await makeCerts();
  });

  test('nodesets:// with the CA works; a node that does not trust the certificate cannot connect', async () => {
    const d = await startDispatcher({ tls: { cert: c.serverCert, key: c.serverKey } });
    assert.match(d.url, /^nodesets:\/\//);
    const sub = await startNode(d, { tls: { ca: c.ca } });
    const pub = await startNode(d, { tls: { ca: c.ca } });
    try {
      const got: unknown[] = [];
      await sub.subscribe('tls.event', (m) => void got.push(m));
      assert.equal(await pub.publish('tls.event', 'secret', { ack: true }), 1);
      await until(() => got.length === 1);
      const untrusting = new Node({ dispatcherUrl: d.url, startTimeoutMs: 500 });
      await assert.rejects(untrusting.start(), { code: 'CONNECTION_LOST' });
      await untrusting.stop();
    } finally {
      await sub.stop();
      await pub.stop();
      await d.stop();
    }
  });

  test('sockets that never start TLS count against the connection limit and are cut at the handshake timeout', async () => {
    const d = await startDispatcher({
      tls: { cert: c.serverCert, key: c.serverKey },
      maxConnections: 5,
      handshakeTimeoutMs: 500,
    });
    try {
      const raws = await Promise.all(Array.from({ length: 20 }, () => RawClient.connect(d.address.port, false)));
      await until(() => raws.every((r) => r.closed), 10_000, 'every silent socket closed');
      assert.ok(d.stats.connectionsRefused >= 15, `${d.stats.connectionsRefused} refused past the limit`);
      // Room again: a real TLS node gets in.
      const node = await startNode(d, { tls: { ca: c.ca } });
      assert.ok(node.connected);
      await node.stop();
    } finally {
      await d.stop();
    }
  });

  test('mutual TLS: a client certificate is required', async () => {
    const d = await startDispatcher({ tls: { cert: c.serverCert, key: c.serverKey, ca: c.ca } });
    try {
      const without = new Node({ dispatcherUrl: d.url, tls: { ca: c.ca }, startTimeoutMs: 500 });
      await assert.rejects(without.start());
      await without.stop();
      const withCert = await startNode(d, { tls: { ca: c.ca, cert: c.clientCert, key: c.clientKey } });
      assert.ok(withCert.connected);
      await withCert.stop();
      assert.ok(d.stats.tlsFailures >= 1);
    } finally {
      await d.stop();
    }
  });

  test('StreamNode direct connections use TLS when configured', async () => {
    const d = await startDispatcher();
    const streamTls = { cert: c.serverCert, key: c.serverKey };
    const rx = await new StreamNode({ dispatcherUrl: d.url, streamTls }).start();
    const tx = await new StreamNode({ dispatcherUrl: d.url, streamTls: { ca: c.ca } }).start();
    try {
      const received = new Promise<string>((resolve) => {
        void rx.subscribeStream('tls.stream', (readable) => {
          let text = '';
          readable.on('data', (c: Buffer) => (text += c.toString()));
          readable.on('end', () => resolve(text));
        });
      });
      assert.match(rx.streamAddress ?? '', /^tls:127\.0\.0\.1:\d+$/);
      await until(async () => ((await rx.subscribers('tls.stream')) as unknown[]).length === 1);
      const stream = await tx.stream('tls.stream');
      stream.end('over tls');
      assert.equal(await received, 'over tls');
    } finally {
      await rx.stop();
      await tx.stop();
      await d.stop();
    }
  });
});
