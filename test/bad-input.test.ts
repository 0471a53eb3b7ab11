import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Dispatcher, Node } from '../src/index.js';
import { encodeFrame, FrameKind, PROTOCOL_VERSION } from '../src/protocol/frames.js';
import { Latch, startDispatcher, startNode, until } from './helpers.js';
import { RawClient } from './raw-client.js';

/** Bad input over raw sockets, with a well-behaved pair of nodes exchanging events throughout. */
describe('bad input never disturbs the dispatcher or other connections', () => {
  let dispatcher: Dispatcher;
  let good: Node;
  let listener: Node;
  let received = 0;

  const goodTrafficStillFlows = async () => {
    const before = received;
    assert.equal(await good.publish('health.check', { ok: true }, { ack: true }), 1);
    assert.equal(received, before + 1);
  };

  before(async () => {
    dispatcher = await startDispatcher({ maxPayloadBytes: 64 * 1024, handshakeTimeoutMs: 300 });
    listener = await startNode(dispatcher, { name: 'listener' });
    const first = new Latch();
    await listener.subscribe('health.check', () => {
      received++;
      first.countDown();
    });
    good = await startNode(dispatcher, { name: 'good' });
  });
  after(async () => {
    await good.stop();
    await listener.stop();
    await dispatcher.stop();
  });

  test('garbage bytes before the handshake: an error, then the connection is closed', async () => {
    const raw = await RawClient.connect(dispatcher.address.port, false);
    raw.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const err = await raw.nextError();
    assert.ok(['TOO_LARGE', 'BAD_FRAME', 'NOT_CONNECTED'].includes(err.code), err.code);
    await raw.waitClosed();
    await goodTrafficStillFlows();
  });

  test('frames before HELLO get one fatal NOT_CONNECTED, however many are sent, and the connection is closed', async () => {
    const raw = await RawClient.connect(dispatcher.address.port, false);
    const sub = encodeFrame(FrameKind.SUB, { sid: 1, uri: 'a' });
    raw.send(Buffer.concat(Array.from({ length: 2000 }, () => sub)));
    assert.deepEqual(await raw.nextError(), {
      code: 'NOT_CONNECTED',
      message: 'expected HELLO before any other frame, got kind 3',
      fatal: true,
    });
    await raw.waitClosed(3000);
    assert.ok(raw.closed);
    assert.equal(raw.frames.filter((f) => f.kind === FrameKind.ERROR).length, 0, 'no second answer');
    await goodTrafficStillFlows();
  });

  test('a HELLO with a wrong version or a bad name is refused', async () => {
    const v = await RawClient.connect(dispatcher.address.port, false);
    v.send(encodeFrame(FrameKind.HELLO, { v: 999, name: 'x' }));
    assert.equal((await v.nextError()).code, 'BAD_VERSION');
    await v.waitClosed();
    const n = await RawClient.connect(dispatcher.address.port, false);
    n.send(encodeFrame(FrameKind.HELLO, { v: PROTOCOL_VERSION, name: 'has space' }));
    assert.equal((await n.nextError()).code, 'BAD_HANDSHAKE');
    await n.waitClosed();
  });

  test('a huge length prefix: TOO_LARGE and the connection is closed', async () => {
    const raw = await RawClient.connect(dispatcher.address.port);
    raw.send(Buffer.from([0xff, 0xff, 0xff, 0xf0, 5, 0, 0]));
    const err = await raw.nextError();
    assert.equal(err.code, 'TOO_LARGE');
    assert.equal(err.fatal, true);
    await raw.waitClosed();
    await goodTrafficStillFlows();
  });

  test('an oversize frame within the skip bound: TOO_LARGE, and the connection stays usable', async () => {
    const raw = await RawClient.connect(dispatcher.address.port);
    raw.send(encodeFrame(FrameKind.PUB, ['health.check', 0, 0, 0], Buffer.alloc(200 * 1024, 0x20)));
    assert.equal((await raw.nextError()).code, 'TOO_LARGE');
    raw.send(encodeFrame(FrameKind.PUB, ['health.check', 2, 9, 0], Buffer.from('1')));
    const ok = await raw.next((f) => f.kind === FrameKind.OK);
    assert.deepEqual(ok.header, { r: 9, n: 1 });
    raw.destroy();
    await goodTrafficStillFlows();
  });

  test('unknown frame kind, malformed headers, bad URIs: each its code, connection kept', async () => {
    const raw = await RawClient.connect(dispatcher.address.port);
    raw.send(encodeFrame(200, { x: 1 }));
    assert.equal((await raw.nextError()).code, 'UNKNOWN_FRAME');
    raw.send(Buffer.concat([Buffer.from([0, 0, 0, 5, FrameKind.SUB, 0, 2]), Buffer.from([0x92, 0x01])]));
    assert.equal((await raw.nextError()).code, 'BAD_FRAME');
    raw.send(encodeFrame(FrameKind.PUB, { not: 'an array' }));
    assert.equal((await raw.nextError()).code, 'BAD_FRAME');
    raw.send(encodeFrame(FrameKind.PUB, ['bad..uri', 2, 3, 0], Buffer.from('1')));
    assert.deepEqual(await raw.nextError(), {
      r: 3,
      code: 'BAD_URI',
      message: 'bad event URI "bad..uri": empty token',
    });
    raw.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'node@host', r: 4 }));
    assert.equal((await raw.nextError()).code, 'BAD_URI');
    raw.send(encodeFrame(FrameKind.SUB, { sid: 'x', uri: 'a' }));
    assert.equal((await raw.nextError()).code, 'BAD_FRAME');
    raw.send(encodeFrame(FrameKind.QUERY, { r: 5, what: 'everything' }));
    assert.equal((await raw.nextError()).code, 'BAD_FRAME');
    raw.send(encodeFrame(FrameKind.HELLO, { v: PROTOCOL_VERSION, name: 'again' }));
    assert.equal((await raw.nextError()).code, 'BAD_HANDSHAKE');
    // Still a working connection.
    raw.send(encodeFrame(FrameKind.SUB, { sid: 2, uri: 'raw.works', r: 6 }));
    assert.deepEqual((await raw.next((f) => f.kind === FrameKind.OK)).header, { r: 6 });
    assert.equal(await good.publish('raw.works', 'hi', { ack: true }), 1);
    const msg = await raw.next((f) => f.kind === FrameKind.MSG);
    assert.deepEqual((msg.header as unknown[]).slice(0, 3), [2, 'raw.works', 'good']);
    assert.equal(msg.payload.toString(), '"hi"');
    raw.destroy();
    await goodTrafficStillFlows();
  });

  test('a connection that stops answering pings is dropped with its routes', async () => {
    const d = await startDispatcher({ heartbeatIntervalMs: 50 });
    try {
      const raw = await RawClient.connect(d.address.port, 'mute');
      raw.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'mute.events', r: 1 }));
      await raw.next((f) => f.kind === FrameKind.OK);
      assert.equal(d.subscriptionCount, 1);
      raw.socket.pause(); // reads nothing more, so it never answers a PING
      raw.socket.removeAllListeners('data');
      await raw.waitClosed(3000);
      assert.ok(raw.closed, 'dropped by the heartbeat');
      await until(() => d.subscriptionCount === 0, 3000, 'routes dropped');
      assert.equal(d.stats.heartbeatFailures, 1);
    } finally {
      await d.stop();
    }
  });
});

describe('forged replies', () => {
  test('a connection cannot answer a request it did not receive', async () => {
    const d = await startDispatcher();
    const requester = await startNode(d, { name: 'asker' });
    const responder = await startNode(d, { name: 'answerer' });
    const forger = await RawClient.connect(d.address.port, 'forger');
    try {
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      await responder.respond('slow.question', async () => {
        await gate;
        return 'the real answer';
      });
      const answer = requester.request('slow.question', 1, { timeoutMs: 3000 });
      const requesterId = d.nodes().find((n) => n.name === 'asker')!.id;
      // Guess the correlation ids the requester may be using.
      for (let r = 1; r < 50; r++) {
        forger.send(encodeFrame(FrameKind.REPLY, { r, to: requesterId, ct: 0 }, Buffer.from('"forged"')));
      }
      assert.equal((await forger.nextError()).code, 'BAD_FRAME');
      release();
      assert.equal(await answer, 'the real answer');
    } finally {
      forger.destroy();
      await requester.stop();
      await responder.stop();
      await d.stop();
    }
  });
});
