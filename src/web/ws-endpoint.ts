import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { NodesetError } from '../protocol/errors.js';
import { parseEventUri } from '../protocol/event-uri.js';
import type { DeliveryMode } from '../protocol/frames.js';
import type { MessageHeaders } from '../protocol/headers.js';
import { type BridgeContext, bearerToken } from './bridge-context.js';
import { refuse, sendError } from './http-errors.js';
import { wireEvent } from './node-pool.js';

/** A WebSocket client's frames: JSON objects with an `op`, answered by `{ id, ok, result | error }`. */
interface Op {
  id?: unknown;
  op?: unknown;
  event?: unknown;
  message?: unknown;
  mode?: unknown;
  timeout?: unknown;
  /** Message headers (publish, request): string names to string values. */
  headers?: unknown;
}

/** Pending bytes on one WebSocket before events for it are dropped and the client told. */
const MAX_WS_BUFFERED_BYTES = 8 * 1024 * 1024;
/** Past this many pending bytes (answers the client keeps asking for and never reads) the socket is closed. */
const HARD_WS_BUFFERED_BYTES = 2 * MAX_WS_BUFFERED_BYTES;

/** Largest WebSocket message a client may send, in bytes. */
export const MAX_WS_MESSAGE_BYTES = 1024 * 1024;

/**
 * Only `/ws` is upgraded, and only a well-formed WebSocket handshake: any
 * other upgrade request is answered 400 `BAD_REQUEST` and closed (before the
 * plugin would upgrade it only to close it, or `ws` refuse it without a
 * code). Registered after the WebSocket plugin's own hooks.
 */
export function refuseOtherUpgrades(app: FastifyInstance): void {
  app.addHook('onRequest', (request, reply, done) => {
    if (!request.ws) {
      done();
      return;
    }
    const path = request.url.split('?', 1)[0];
    const key = request.headers['sec-websocket-key'];
    if (path !== '/ws') {
      refuse(request, reply, new NodesetError('BAD_REQUEST', `only /ws takes a WebSocket upgrade, not ${path}`));
    } else if (request.headers['sec-websocket-version'] !== '13' || typeof key !== 'string' || !WS_KEY_RE.test(key)) {
      reply.header('sec-websocket-version', '13');
      refuse(
        request,
        reply,
        new NodesetError('BAD_REQUEST', 'a WebSocket upgrade needs Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key'),
      );
    } else {
      done();
    }
  });
}

/** A handshake key: 16 bytes in base64. */
const WS_KEY_RE = /^[+/0-9A-Za-z]{22}==$/;

/**
 * `GET /ws`: the WebSocket endpoint (a GET without the upgrade is told it
 * needs one). The socket's own 'error' listener is set before any frame is
 * read; the plugin's is only a last resort.
 */
export function webSocketRoute(app: FastifyInstance, bridge: BridgeContext): void {
  app.route({
    method: 'GET',
    url: '/ws',
    exposeHeadRoute: false,
    handler: (_request, reply) =>
      sendError(reply, new NodesetError('BAD_REQUEST', 'GET /ws is a WebSocket endpoint: send an upgrade'), {
        upgrade: 'websocket',
      }),
    wsHandler: (ws, request) => handleWebSocket(bridge, ws, request),
  });
}

/**
 * `/ws`: subscribe, unsubscribe, publish and request over one WebSocket, for
 * browsers and other languages. Events arrive as
 * `{ type: 'event', event, message, from, headers?, host? }`.
 */
export function handleWebSocket(bridge: BridgeContext, ws: WebSocket, request: FastifyRequest): void {
  const subscriptions = new Map<string, () => Promise<void>>();
  // A bad frame (unmasked, invalid UTF-8, oversize) is an 'error' on this socket:
  // ws has already answered with a close code; without a listener it would end the process.
  ws.on('error', (err) => {
    bridge.logger.debug({ err: err.message }, 'WebSocket client error');
    ws.terminate();
  });
  /** Events dropped since the client was last told, while it does not read. */
  let dropped = 0;
  const send = (value: unknown) => {
    if (ws.readyState !== ws.OPEN) return;
    if (ws.bufferedAmount > HARD_WS_BUFFERED_BYTES) {
      ws.terminate();
      return;
    }
    ws.send(JSON.stringify(value));
  };
  const fail = (id: unknown, err: unknown) => {
    const e = err instanceof NodesetError ? err : new NodesetError('INTERNAL', 'internal error');
    send({ id, ok: false, error: { code: e.code, message: e.message } });
  };
  try {
    bridge.verify(request);
  } catch (err) {
    fail(null, err);
    ws.close(4003, 'signature required');
    return;
  }
  const node = bridge.nodeFor(bearerToken(request));
  node.catch((err: unknown) => {
    fail(null, err);
    ws.close(4001, (err as Error).message.slice(0, 100));
  });

  /**
   * Subscribes and unsubscribes of one event run one at a time, in the order
   * they came: two subscribes sent together make one subscription, and an
   * unsubscribe sent after a subscribe undoes it.
   */
  const queues = new Map<string, Promise<void>>();
  const inOrder = <T>(event: string, fn: () => Promise<T>): Promise<T> => {
    const result = (queues.get(event) ?? Promise.resolve()).then(fn);
    const settled = result.then(
      () => {},
      () => {},
    );
    queues.set(event, settled);
    void settled.then(() => {
      if (queues.get(event) === settled) queues.delete(event);
    });
    return result;
  };

  ws.on('message', (data) => {
    let op: Op;
    try {
      op = JSON.parse(data.toString()) as Op;
      if (typeof op !== 'object' || op === null) throw new Error('not an object');
    } catch {
      fail(null, new NodesetError('BAD_FRAME', 'WebSocket messages are JSON objects'));
      return;
    }
    void run(op).then(
      (result) => send({ id: op.id ?? null, ok: true, result }),
      (err: unknown) => fail(op.id ?? null, err),
    );
  });
  ws.on('close', () => {
    for (const remove of subscriptions.values()) void remove();
    subscriptions.clear();
  });

  async function run(op: Op): Promise<unknown> {
    if (typeof op.event !== 'string') throw new NodesetError('BAD_URI', 'field "event" is required');
    const event = op.event;
    const n = await node;
    switch (op.op) {
      case 'subscribe': {
        parseEventUri(event, true);
        return inOrder(event, async () => {
          if (subscriptions.has(event)) return { subscribed: event };
          const remove = await bridge.pool.listen(n, event, (e) => {
            if (ws.bufferedAmount > MAX_WS_BUFFERED_BYTES) {
              // Counted, and told once the client reads again: a notice per drop would fill the same buffer.
              dropped++;
              bridge.stats.wsDropped++;
              return;
            }
            if (dropped > 0) {
              fail(null, new NodesetError('SLOW_CONSUMER', `${dropped} events dropped: the WebSocket was not reading`));
              dropped = 0;
            }
            send({ type: 'event', ...wireEvent(e) });
          });
          if (ws.readyState !== ws.OPEN) await remove();
          else subscriptions.set(event, remove);
          return { subscribed: event };
        });
      }
      case 'unsubscribe':
        return inOrder(event, async () => {
          const remove = subscriptions.get(event);
          subscriptions.delete(event);
          await remove?.();
          return { unsubscribed: event };
        });
      case 'publish': {
        // The mode is checked by publish itself (BAD_OPTION).
        // So are the headers (BAD_OPTION, TOO_LARGE).
        const delivered = await n.publish(event, op.message, {
          ack: true,
          mode: op.mode as DeliveryMode | undefined,
          headers: op.headers as MessageHeaders | undefined,
        });
        return { delivered };
      }
      case 'request': {
        const timeoutMs = typeof op.timeout === 'number' && op.timeout > 0 ? op.timeout : 5000;
        const headers = op.headers as MessageHeaders | undefined;
        return { reply: (await n.request(event, op.message, { timeoutMs, headers })) ?? null };
      }
      default:
        throw new NodesetError('BAD_FRAME', 'op must be subscribe, unsubscribe, publish or request');
    }
  }
}
