// A dispatcher session over an in-memory duplex: the protocol of one
// connection (handshake, subscribe, publish, queries, errors, goodbye) with
// a real router behind it and no sockets.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { describe, test } from 'node:test';
import pino from 'pino';
import { resolveDispatcherOptions } from '../src/dispatcher/options.js';
import { Router } from '../src/dispatcher/router.js';
import { Session, type SessionHost } from '../src/dispatcher/session.js';
import { DispatcherStats } from '../src/dispatcher/stats.js';
import { StreamIds } from '../src/dispatcher/stream-ids.js';
import { decodeHeader, headerOf, payloadOf } from '../src/protocol/decoder.js';
import type { NodesetError } from '../src/protocol/errors.js';
import { FrameKind, PROTOCOL_VERSION, packHeader, packPubHeader, unpackHeader } from '../src/protocol/frames.js';
import { FrameSocket } from '../src/transport/frame-socket.js';
import { until } from './helpers.js';

/** Two in-memory ends; what one writes, the other reads. Shaped like a socket where sessions need it. */
function duplexPair(): [Socket, Socket] {
  const make = () =>
    new Duplex({
      // Like TCP without half-open: an end that is ended ends the other, and both close.
      allowHalfOpen: false,
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        other(this).push(chunk);
        callback();
      },
      final(callback) {
        other(this)?.push(null);
        callback();
      },
    });
  const a = make();
  const b = make();
  const other = (d: Duplex) => (d === a ? b : a);
  for (const end of [a, b]) {
    Object.assign(end, { setNoDelay() {}, remoteAddress: 'memory', remotePort: 1 });
    end.on('close', () => other(end).destroy());
  }
  return [a as unknown as Socket, b as unknown as Socket];
}

interface Frame {
  kind: number;
  header: unknown;
  payload: Buffer;
}

/** The node's end: frames written with FrameSocket, frames read into a list. */
class Client {
  readonly frames: Frame[] = [];
  readonly fs: FrameSocket;
  closed = false;
  constructor(socket: Socket) {
    this.fs = new FrameSocket(socket, {
      frame: (kind, buf, hs, ps, end) => {
        const header = headerOf(buf, hs, ps);
        this.frames.push({
          kind,
          header: header === null ? null : decodeHeader(header),
          payload: payloadOf(buf, ps, end),
        });
      },
      refused: () => {},
      closed: () => {
        this.closed = true;
      },
    });
  }
  send(kind: number, header: unknown, payload: Buffer | null = null): void {
    this.fs.send(kind, header === null ? null : packHeader(header), payload);
    this.fs.flush();
  }
  async next(kind: number): Promise<Frame> {
    await until(() => this.frames.some((f) => f.kind === kind), 3000, `a frame of kind ${kind}`);
    const i = this.frames.findIndex((f) => f.kind === kind);
    return this.frames.splice(i, 1)[0] as Frame;
  }
}

function host() {
  const options = resolveDispatcherOptions({ hostName: 'memhost', handshakeTimeoutMs: 300 });
  const stats = new DispatcherStats();
  const sessions = new Map<number, Session>();
  const logger = pino({ level: 'silent' });
  const router = new Router({ ...options, logger }, stats, (id) => sessions.get(id));
  const events: string[] = [];
  const h: SessionHost = {
    options,
    stats,
    logger,
    router,
    admit: () => {},
    authWaitMs: () => 0,
    authenticated: () => {},
    streams: new StreamIds(),
    opened: (s) => void events.push(`opened ${s.name}`),
    closed: (s, wasOpen) => {
      sessions.delete(s.id);
      events.push(`closed ${s.name || '?'} ${wasOpen ? s.leaveReason : 'before handshake'}`);
    },
    query: (_s, what) => (what === 'nodes' ? [...sessions.values()].map((s) => ({ name: s.name })) : { what }),
  };
  let nextId = 1;
  const connect = () => {
    const [server, client] = duplexPair();
    const session = new Session(h, nextId++, server);
    sessions.set(session.id, session);
    return { session, client: new Client(client) };
  };
  return { connect, events, stats, router };
}

async function hello(client: Client, name: string): Promise<Frame> {
  client.send(FrameKind.HELLO, { v: PROTOCOL_VERSION, name });
  return client.next(FrameKind.WELCOME);
}

describe('dispatcher session (in memory)', () => {
  test('handshake, subscribe, publish with ack, and MSG delivery between two sessions', async () => {
    const { connect, events } = host();
    const sub = connect();
    const pub = connect();
    const welcome = (await hello(sub.client, 'sub')).header as { host: string; id: number };
    assert.equal(welcome.host, 'memhost');
    assert.equal(welcome.id, sub.session.id);
    await hello(pub.client, 'pub');
    sub.client.send(FrameKind.SUB, { sid: 5, uri: 'orders.*', r: 1 });
    assert.deepEqual((await sub.client.next(FrameKind.OK)).header, { r: 1 });
    pub.client.fs.send(FrameKind.PUB, packPubHeader('orders.new', 2, 9, 0, null, 0), Buffer.from('"hi"'));
    pub.client.fs.flush();
    assert.deepEqual((await pub.client.next(FrameKind.OK)).header, { r: 9, n: 1 });
    const msg = await sub.client.next(FrameKind.MSG);
    assert.deepEqual((msg.header as unknown[]).slice(0, 3), [5, 'orders.new', 'pub']);
    assert.equal(msg.payload.toString(), '"hi"');
    assert.deepEqual(events, ['opened sub', 'opened pub']);
  });

  test('a frame before HELLO closes the connection; malformed frames and unknown kinds after it are refused and it stays', async () => {
    const { connect } = host();
    const early = connect().client;
    early.send(FrameKind.SUB, { sid: 1, uri: 'x', r: 1 });
    assert.equal(((await early.next(FrameKind.ERROR)).header as NodesetError).code, 'NOT_CONNECTED');
    await until(() => early.closed, 3000, 'a frame before HELLO to close the connection');
    const { client } = connect();
    await hello(client, 'n');
    client.send(FrameKind.SUB, { sid: 'one', uri: 'x', r: 2 });
    assert.equal(((await client.next(FrameKind.ERROR)).header as NodesetError).code, 'BAD_FRAME');
    client.send(FrameKind.SUB, { sid: 1, uri: 'bad uri', r: 3 });
    assert.equal(((await client.next(FrameKind.ERROR)).header as NodesetError).code, 'BAD_URI');
    client.send(99, null);
    assert.equal(((await client.next(FrameKind.ERROR)).header as NodesetError).code, 'UNKNOWN_FRAME');
    client.send(FrameKind.QUERY, { r: 4, what: 'nodes' });
    const ok = await client.next(FrameKind.OK);
    assert.deepEqual(ok.header, { r: 4 });
    assert.deepEqual(unpackHeader(ok.payload), [{ name: 'n' }]);
    assert.equal(client.closed, false);
  });

  test('no HELLO within the handshake timeout: a fatal error, then closed', async () => {
    const { connect, events } = host();
    const { client } = connect();
    const error = await client.next(FrameKind.ERROR);
    assert.deepEqual(
      [(error.header as NodesetError).code, (error.header as { fatal?: boolean }).fatal],
      ['NOT_CONNECTED', true],
    );
    await until(() => events.includes('closed ? before handshake'), 3000, 'the session to close');
  });

  test('GOODBYE ends the session gracefully and its subscriptions leave the router', async () => {
    const { connect, events, router } = host();
    const { client } = connect();
    await hello(client, 'leaving');
    client.send(FrameKind.SUB, { sid: 1, uri: 'a', r: 1 });
    await client.next(FrameKind.OK);
    assert.equal(router.subscriptionCount, 1);
    client.send(FrameKind.GOODBYE, { reason: 'done' });
    await until(() => events.includes('closed leaving graceful'), 3000, 'a graceful close');
    assert.equal(router.subscriptionCount, 0);
  });
});
