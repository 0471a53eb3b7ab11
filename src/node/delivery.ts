/**
 * Delivery on the node: a received message goes to its subscription's
 * handler, or waits in the subscription's bounded queue while its handlers
 * are busy (the overflow policy decides past the bound). Requests are
 * answered with the handler's return value; gaps in publishers' sequence
 * numbers are reported.
 */
import type { Logger } from 'pino';
import { toWireError } from '../protocol/errors.js';
import { ContentType, type MsgFields } from '../protocol/frames.js';
import { NO_HEADERS } from '../protocol/headers.js';
import { decodePayload } from '../protocol/payload.js';
import type { LocalSubscription, NodeChannel } from './channel.js';
import { GapTracker } from './gaps.js';
import type { EventInfo, OverflowEvent } from './handlers.js';
import type { MessageTracing } from './tracing.js';

/** Emitted (`gap` event) when a subscription missed messages of a publisher's stream. */
export interface GapEvent {
  subscription: string;
  from: string;
  uri: string;
  /** First and last sequence numbers missed. */
  missed: [number, number];
}

/** What delivery needs of its node. */
export interface DeliveryHost {
  readonly logger: Logger;
  /** The node's channel now (it may change before start: a collection's). */
  channel(): NodeChannel;
  /** The handler of subscriptions made without one. */
  onEvent(event: string, message: unknown, info: EventInfo): unknown;
  /** Encodes a reply (TOO_LARGE past the dispatcher's limit). */
  encode(what: string, value: unknown): { ct: number; bytes: Buffer };
  overflowed(event: OverflowEvent): void;
  gap(event: GapEvent): void;
}

export class Delivery {
  /** Messages received for this node's subscriptions. */
  received = 0;
  /** Times a subscription's queue overflowed. */
  overflows = 0;
  /** Gaps seen in publishers' sequence numbers. */
  gaps = 0;
  /** Messages that were waiting for a handler when their subscription was removed. */
  droppedUnsubscribed = 0;
  readonly #host: DeliveryHost;
  /** Subscriptions whose full queue paused the connection's reads (`block`). */
  readonly #blocked = new Set<LocalSubscription>();
  /** Set when the node starts with tracing available; null: handlers run without spans. */
  tracing: MessageTracing | null = null;

  constructor(host: DeliveryHost) {
    this.#host = host;
  }

  /** One received message for one of the node's subscriptions. */
  deliver(sub: LocalSubscription, msg: MsgFields, payload: Buffer): void {
    this.received++;
    sub.received++;
    // Numbered `all`-mode messages outside queue groups: each subscriber sees every one.
    if (msg.seq !== 0 && !msg.single && sub.group === null) this.#checkSeq(sub, msg);
    if (sub.inFlight < sub.maxInFlight) this.#run(sub, msg, payload);
    else this.#enqueue(sub, msg, payload);
  }

  /** The subscription was removed: its handler is never called again, and what waits for it is dropped, counted. */
  removed(sub: LocalSubscription): void {
    sub.removed = true;
    this.droppedUnsubscribed += sub.queue.length;
    sub.dropped += sub.queue.length;
    sub.queue.length = 0;
    if (this.#blocked.delete(sub) && this.#blocked.size === 0) this.#host.channel().pauseReading(false);
  }

  #checkSeq(sub: LocalSubscription, msg: MsgFields): void {
    sub.gaps ??= new GapTracker();
    const missed = sub.gaps.check(msg.from, msg.uri, msg.seq);
    if (missed === null) return;
    this.gaps++;
    const gap: GapEvent = { subscription: sub.uri, from: msg.from, uri: msg.uri, missed };
    this.#host.logger.warn(gap, 'messages missed');
    this.#host.gap(gap);
  }

  /** A message for a subscription whose handlers are all busy: queue it, or apply the overflow policy. */
  #enqueue(sub: LocalSubscription, msg: MsgFields, payload: Buffer): void {
    if (sub.queue.length < sub.queueLimit) {
      sub.queue.push([msg, payload]);
      if (sub.overflow === 'block' && sub.queue.length >= sub.queueLimit) {
        this.#blocked.add(sub);
        this.#host.channel().pauseReading(true);
        this.#overflowed(sub, 0);
      }
      return;
    }
    switch (sub.overflow) {
      case 'drop-oldest':
        sub.queue.shift();
        sub.queue.push([msg, payload]);
        this.#overflowed(sub, 1);
        return;
      case 'disconnect':
        this.#overflowed(sub, sub.queue.length + 1);
        sub.queue.length = 0;
        this.#host.channel().resetConnection();
        return;
      case 'block':
        // Reads are paused; frames of the chunk already read still arrive: keep them
        // (bounded by one socket read) rather than lose them.
        sub.queue.push([msg, payload]);
        return;
      default:
        this.#overflowed(sub, 1);
    }
  }

  #overflowed(sub: LocalSubscription, dropped: number): void {
    this.overflows++;
    sub.dropped += dropped;
    this.#host.logger.warn({ subscription: sub.uri, policy: sub.overflow, dropped }, 'subscription queue overflow');
    this.#host.overflowed({ subscription: sub.uri, policy: sub.overflow, dropped });
  }

  /** A handler finished: start the next queued message, and resume reading once a blocked queue has room. */
  #finished(sub: LocalSubscription): void {
    sub.inFlight--;
    sub.handled++;
    if (sub.removed) return; // unsubscribed meanwhile
    while (sub.inFlight < sub.maxInFlight && sub.queue.length > 0) {
      const [msg, payload] = sub.queue.shift() as [MsgFields, Buffer];
      this.#run(sub, msg, payload);
    }
    if (this.#blocked.has(sub) && sub.queue.length < sub.queueLimit) {
      this.#blocked.delete(sub);
      if (this.#blocked.size === 0) this.#host.channel().pauseReading(false);
    }
    if (sub.idle !== null && sub.inFlight === 0 && sub.queue.length === 0) sub.idle();
  }

  /** Runs the handler for one message: decode, check, call, answer a request. */
  #run(sub: LocalSubscription, msg: MsgFields, payload: Buffer): void {
    sub.inFlight++;
    const replyTo = msg.replyConn;
    const replyId = msg.replyId;
    let message: unknown;
    try {
      message = decodePayload(msg.ct, payload);
      if (sub.type !== null) message = sub.type.parse(message);
    } catch (err) {
      this.#handlerFailed(err, sub, replyTo, replyId);
      this.#finished(sub);
      return;
    }
    const info: EventInfo = {
      uri: msg.uri,
      from: msg.from,
      host: msg.host,
      headers: msg.headers ?? NO_HEADERS,
      subscription: sub.uri,
      isRequest: replyTo !== 0,
    };
    if (this.tracing !== null) {
      this.#runTraced(this.tracing, sub, message, info, replyTo, replyId);
      return;
    }
    let result: unknown;
    try {
      result = sub.handler === null ? this.#host.onEvent(msg.uri, message, info) : sub.handler(message, info);
    } catch (err) {
      this.#handlerFailed(err, sub, replyTo, replyId);
      this.#finished(sub);
      return;
    }
    if (!isThenable(result)) {
      if (replyTo !== 0) this.#reply(replyTo, replyId, result);
      this.#finished(sub);
      return;
    }
    result.then(
      (value: unknown) => {
        try {
          if (replyTo !== 0) this.#reply(replyTo, replyId, value);
        } finally {
          this.#finished(sub);
        }
      },
      (err: unknown) => {
        try {
          this.#handlerFailed(err, sub, replyTo, replyId);
        } finally {
          this.#finished(sub);
        }
      },
    );
  }

  /** #run with a span around the handler (and the reply), continuing the publisher's trace. */
  #runTraced(
    tracing: MessageTracing,
    sub: LocalSubscription,
    message: unknown,
    info: EventInfo,
    replyTo: number,
    replyId: number,
  ): void {
    const { span, context } = tracing.startReceive(info.uri, info.from, info.headers, replyTo !== 0);
    const settle = (ok: boolean, value: unknown): void => {
      try {
        if (!ok) this.#handlerFailed(value, sub, replyTo, replyId);
        else if (replyTo !== 0) this.#reply(replyTo, replyId, value);
      } finally {
        tracing.end(span, ok ? undefined : value);
        this.#finished(sub);
      }
    };
    let result: unknown;
    try {
      result = tracing.within(context, () =>
        sub.handler === null ? this.#host.onEvent(info.uri, message, info) : sub.handler(message, info),
      );
    } catch (err) {
      settle(false, err);
      return;
    }
    if (!isThenable(result)) settle(true, result);
    else
      result.then(
        (value: unknown) => settle(true, value),
        (err: unknown) => settle(false, err ?? new Error('handler rejected')),
      );
  }

  #reply(to: number, r: number, value: unknown): void {
    let encoded: { ct: number; bytes: Buffer };
    try {
      encoded = this.#host.encode('reply', value);
    } catch (err) {
      this.#replyError(to, r, err);
      return;
    }
    try {
      this.#host.channel().reply(to, r, encoded.ct, encoded.bytes);
    } catch (err) {
      this.#replyError(to, r, err);
    }
  }

  #replyError(to: number, r: number, err: unknown): void {
    const wire = toWireError(err) ?? { code: 'HANDLER_ERROR', message: 'handler failed' };
    // The message travels in a frame header: a long one is cut, never a reason to fail.
    if (wire.message.length > MAX_ERROR_MESSAGE_CHARS)
      wire.message = `${wire.message.slice(0, MAX_ERROR_MESSAGE_CHARS)}…`;
    try {
      this.#host.channel().reply(to, r, ContentType.EMPTY, null, wire);
    } catch (replyErr) {
      this.#host.logger.warn({ err: replyErr }, 'the error reply could not be sent');
    }
  }

  #handlerFailed(err: unknown, sub: LocalSubscription, replyTo: number, replyId: number): void {
    this.#host.logger.error({ err, subscription: sub.uri }, 'handler failed');
    if (replyTo !== 0) this.#replyError(replyTo, replyId, err);
  }
}

/** Longest error message sent back to a requester, in characters. */
const MAX_ERROR_MESSAGE_CHARS = 4096;

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
