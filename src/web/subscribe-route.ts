import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { NodesetError } from '../protocol/errors.js';
import { parseEventUri } from '../protocol/event-uri.js';
import { type BridgeContext, bearerToken } from './bridge-context.js';
import { type BridgeEvent, wireEvent } from './node-pool.js';

/** Bytes a subscription stream may hold for a client that does not read before it is closed. */
const MAX_STREAM_BUFFERED_BYTES = 8 * 1024 * 1024;

/** Events a stream may receive while it is being set up; past it the stream is closed rather than buffer more. */
const MAX_EARLY_EVENTS = 1000;

const events = { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] } as const;
const eventsSchema = { type: 'object', properties: { event: events } } as const;

interface EventFields {
  event?: string | string[];
}

const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/**
 * `GET /subscribe?event=a&event=b`, and `POST /subscribe` with the events in
 * the query, form fields or a JSON body (the original's two forms): a stream
 * of events. Open streams are kept in `streams` so that the bridge can end them.
 */
export function subscribeRoutes(
  app: FastifyInstance,
  bridge: BridgeContext,
  streams: Set<ServerResponse>,
  keepAliveMs: number,
): void {
  const preValidation = async (request: FastifyRequest) => bridge.verify(request);
  app.get<{ Querystring: EventFields }>(
    '/subscribe',
    { schema: { querystring: eventsSchema }, preValidation, exposeHeadRoute: false },
    (request, reply) => subscribe(bridge, request, reply, list(request.query.event), streams, keepAliveMs),
  );
  app.post<{ Querystring: EventFields; Body: EventFields | undefined }>(
    '/subscribe',
    {
      schema: { querystring: eventsSchema, body: eventsSchema },
      preValidation: async (request) => {
        bridge.verify(request);
        // The events may all be in the query: no body is an empty one.
        request.body ??= {};
      },
    },
    (request, reply) =>
      subscribe(
        bridge,
        request,
        reply,
        [...list(request.query.event), ...list(request.body?.event)],
        streams,
        keepAliveMs,
      ),
  );
}

/**
 * Streams events: Server-Sent Events for `Accept: text/event-stream`, else
 * one JSON object per line. An HTTP/1.0 client gets one event, then the end.
 */
async function subscribe(
  bridge: BridgeContext,
  request: FastifyRequest,
  reply: FastifyReply,
  events: string[],
  streams: Set<ServerResponse>,
  keepAliveMs: number,
): Promise<void> {
  if (events.length === 0) throw new NodesetError('BAD_URI', 'give at least one ?event=');
  for (const e of events) parseEventUri(e, true);
  const res = reply.raw;
  const sse = String(request.headers.accept ?? '').includes('text/event-stream');
  const once = request.raw.httpVersion === '1.0';
  const removers: (() => Promise<void>)[] = [];
  let closed = false;
  let id = 0;
  let keepAlive: NodeJS.Timeout | null = null;
  /** Events that arrive while the other subscriptions are made, before the head is written. */
  let early: BridgeEvent[] | null = [];
  const release = () => {
    for (const remove of removers.splice(0)) void remove();
  };
  const close = () => {
    if (closed) return;
    closed = true;
    if (keepAlive !== null) clearInterval(keepAlive);
    streams.delete(res);
    release();
  };
  const send = (e: BridgeEvent) => {
    if (closed) return;
    if (early !== null) {
      if (early.length <= MAX_EARLY_EVENTS) early.push(e);
      return;
    }
    if (res.writableLength > MAX_STREAM_BUFFERED_BYTES) {
      // A client that does not read: end its stream (it may reconnect) rather than buffer without bound.
      bridge.logger.warn({ buffered: res.writableLength }, 'subscription stream not read; closing it');
      res.destroy();
      close();
      return;
    }
    const line = JSON.stringify(wireEvent(e));
    res.write(sse ? `id: ${++id}\ndata: ${line}\n\n` : `${line}\n`);
    if (once) {
      res.end();
      close();
    }
  };
  // The response closes when the client goes away (the request 'close' only means its body was read).
  // Listened to before the first wait, so that a client gone during it is seen.
  res.on('close', close);
  try {
    const node = await bridge.nodeFor(bearerToken(request));
    for (const e of events) {
      removers.push(await bridge.pool.listen(node, e, send));
      // Gone meanwhile: what was just added is let go too.
      if (closed) {
        release();
        break;
      }
    }
  } catch (err) {
    close();
    throw err;
  }
  // From here on the stream is written here, not by fastify.
  reply.hijack();
  if (closed || res.destroyed) {
    close();
    return;
  }
  streams.add(res);
  res.writeHead(200, {
    'content-type': sse ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
    'cache-control': 'no-store',
    ...(once ? {} : { connection: 'keep-alive' }),
  });
  if (sse) {
    res.write(': subscribed\n\n');
    keepAlive = setInterval(() => res.write(': keep-alive\n\n'), keepAliveMs);
  } else {
    res.flushHeaders();
  }
  const waiting = early;
  early = null;
  if (waiting.length > MAX_EARLY_EVENTS) {
    // Not one of them is dropped quietly: the stream ends and the client subscribes again.
    bridge.logger.warn({ events: waiting.length }, 'events burst while a stream was set up; closing it');
    res.destroy();
    close();
    return;
  }
  for (const e of waiting) send(e);
}
