/**
 * The Node facade: what a service uses to publish, subscribe, request and
 * query. It owns its subscriptions (and sends them again after every
 * reconnect); delivery to handlers is delivery.ts's, sequence numbers are
 * gaps.ts's, the connection is its channel's.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { NodesetError, SlowConsumerError } from '../protocol/errors.js';
import { parseEventUri } from '../protocol/event-uri.js';
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  type DeliveryMode,
  deliveryFlags,
  packPlainPubHeader,
  packPubHeader,
  type QueryWhat,
  STATS_EVENT,
  setSeq,
} from '../protocol/frames.js';
import { HeaderCache } from '../protocol/header-cache.js';
import { checkHeaders, type MessageHeaders } from '../protocol/headers.js';
import { encodePayload } from '../protocol/payload.js';
import { abortable, abortedError, throwIfAborted } from './abort.js';
import { announceSender } from './announce.js';
import {
  type ChannelOwner,
  LinkChannel,
  type LocalSubscription,
  type NodeChannel,
  subscriptionKey,
} from './channel.js';
import { Delivery, type GapEvent } from './delivery.js';
import { linkOptions, type Welcome } from './dispatcher-link.js';
import { Sequences } from './gaps.js';
import {
  declaredHandlers,
  type EventInfo,
  type Handler,
  type OverflowEvent,
  type SubscribeOptions,
} from './handlers.js';
import { ATTACH_CHANNEL, CHANNEL_OWNER, SUBSCRIPTION_ENDED } from './internal.js';
import { defaultLogger } from './logger.js';
import type { MessageType } from './message.js';
import { NodeMetrics } from './metrics.js';
import { MAX_WILL_BYTES, type NodeOptions, resolveNodeOptions, resolveSubscribeOptions } from './options.js';
import { Subscription, type SubscriptionOwner } from './subscription.js';
import { type MessageTracing, startTracing } from './tracing.js';
import type {
  ConnectedNodeInfo,
  DispatcherStatsAnswer,
  EventMap,
  HandlerMessage,
  PublishResult,
  ReplyFor,
  ReplyMessage,
  Responder,
  SentMessage,
  SubscriberInfo,
  UntypedEvents,
} from './typed.js';

export type { GapEvent, NodeOptions };

export interface PublishOptions {
  /** `all` (default): every subscriber; `direct`: exactly one, round-robin. */
  mode?: DeliveryMode;
  /** Check (and strip metadata from) the message with this type before sending. */
  type?: MessageType;
  /** Resolve with the number of subscribers delivered to. */
  ack?: boolean;
  /** Timeout for the acknowledgement, in ms. */
  timeoutMs?: number;
  /**
   * Headers delivered with the message (`info.headers`): string names (HTTP
   * token characters) to string values, at most 32 entries and 4 KiB.
   */
  headers?: MessageHeaders;
  /**
   * With `ack`: stop waiting for the acknowledgement when it aborts (rejects
   * with ABORTED; the publish may still have been delivered). Ignored without `ack`.
   */
  signal?: AbortSignal;
}

export interface RequestOptions {
  timeoutMs?: number;
  /** Check (and strip metadata from) the request with this type before sending. */
  type?: MessageType;
  /** Headers delivered to the responder with the request (as PublishOptions.headers). */
  headers?: MessageHeaders;
  /** Check the reply with this type (VALIDATION on mismatch); the result is typed by it. */
  replyType?: MessageType;
  /** Stop waiting when it aborts: rejects with ABORTED at once, and a late reply is ignored. */
  signal?: AbortSignal;
}

export interface StartOptions {
  /** Stop connecting when it aborts: the node is stopped, and start rejects with ABORTED. */
  signal?: AbortSignal;
}

export interface DrainOptions {
  /** Stop waiting when it aborts (rejects with ABORTED; what is queued is still written). */
  signal?: AbortSignal;
}

/** The typed methods of a node seen through an event map (`node.typed<E>()`). */
export interface TypedMethods<E extends EventMap> {
  /** {@inheritDoc Node.publish} */
  publish<U extends string, O extends PublishOptions | undefined = undefined>(
    uri: U,
    message?: SentMessage<E, U, O>,
    options?: O,
  ): PublishResult<O>;
  /** {@inheritDoc Node.subscribe} */
  subscribe<M = never, U extends string = string, O extends SubscribeOptions = SubscribeOptions>(
    uri: U,
    handler?: Handler<HandlerMessage<M, E, U, O>>,
    options?: O,
  ): Promise<Subscription<HandlerMessage<M, E, U, O>>>;
  /** {@inheritDoc Node.respond} */
  respond<M = never, U extends string = string, O extends SubscribeOptions = SubscribeOptions>(
    uri: U,
    handler: Responder<HandlerMessage<M, E, U, O>, ReplyFor<E, U>>,
    options?: O,
  ): Promise<Subscription<HandlerMessage<M, E, U, O>>>;
  /** {@inheritDoc Node.request} */
  request<R = never, U extends string = string, O extends RequestOptions = RequestOptions>(
    uri: U,
    message?: SentMessage<E, U, O>,
    options?: O,
  ): Promise<[R] extends [never] ? ReplyMessage<E, U, O> : R>;
}

/** A node typed by an event map: its other members are the Node's. */
export type TypedNode<E extends EventMap> = Omit<Node, keyof TypedMethods<E>> & TypedMethods<E>;

const PLAIN_HEADER_CACHE_LIMIT = 1024;

function packCheckedPubHeader(uri: string, sender: string | null, ct: number, flags: number): Buffer {
  parseEventUri(uri, false);
  return packPlainPubHeader(uri, sender, ct, flags);
}
/**
 * The dispatcher's word that this node falls behind reading (see
 * docs/guarantees.md): a warning past half its limit, or the notice that it
 * was cut off at the limit (the node then reconnects and subscribes again).
 */
export interface SlowConsumerEvent {
  /** Bytes queued for this connection at the dispatcher when it warned. */
  pendingBytes: number;
  /** Queued bytes at which the dispatcher cuts the connection off (`cut` policy). */
  limitBytes: number;
  /** True when the connection was cut off and what was queued for it dropped; false for the warning. */
  cut: boolean;
}

/** What an acknowledged publish's answer said was lost (the `dropped` event). */
export interface PublishDroppedEvent {
  uri: string;
  /** Subscriptions the message was written to (what the publish resolved with). */
  delivered: number;
  /** Copies refused because their subscriber's connection was over its limit (and cut off) or closing. */
  dropped: number;
}

export interface NodeEvents {
  connect: [Welcome];
  reconnect: [Welcome];
  disconnect: [Error | undefined];
  error: [Error];
  drain: [];
  event: [string, unknown, EventInfo];
  overflow: [OverflowEvent];
  gap: [GapEvent];
  'slow-consumer': [SlowConsumerEvent];
  /** An acknowledged publish reached `delivered` subscriptions, and `dropped` copies were lost (slow consumers cut off or closing). */
  dropped: [PublishDroppedEvent];
}

/**
 * A node: publishes and subscribes through its host's dispatcher. It owns its
 * subscriptions and sends them again after every reconnect, so a restarted
 * dispatcher needs nothing from the user.
 *
 * `node.typed<Events>()` gives the same node typed by an event map (see
 * {@link EventMap}): one declaration types publish, subscribe, respond and
 * request for the names it lists; other names stay untyped.
 */
export class Node extends EventEmitter<NodeEvents> {
  readonly name: string;
  readonly logger: Logger;
  readonly ackTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly startTimeoutMs: number;
  readonly closeTimeoutMs: number;
  #channel: NodeChannel;
  #owner: ChannelOwner;
  #subs = new Map<number, LocalSubscription>();
  #byKey = new Map<string, LocalSubscription>();
  /** Subscriptions being drained: unsubscribed at the dispatcher, still handling what they received. */
  #draining = new Set<LocalSubscription>();
  /** The Subscription object of each subscription, made with it. */
  #handles = new WeakMap<LocalSubscription, Subscription>();
  #subscriptionOwner: SubscriptionOwner = {
    unsubscribe: (sub) => this.#unsubscribeLocal(sub),
    drain: (sub, signal) => this.#drainLocal(sub, signal),
  };
  #nextSid = 1;
  #plainHeaders = new HeaderCache(packCheckedPubHeader, PLAIN_HEADER_CACHE_LIMIT);
  #resubscribed: Promise<unknown> = Promise.resolve();
  #started = false;
  /** This node's metrics; published on `$nodeset.stats` every statsIntervalMs. */
  readonly metrics = new NodeMetrics();
  readonly statsIntervalMs: number;
  #statsTimer: NodeJS.Timeout | null = null;
  #published = 0;
  readonly #sequences: Sequences;
  readonly #delivery: Delivery;
  /** OpenTelemetry, when installed and a tracer provider is registered at start; null otherwise. */
  #tracing: MessageTracing | null = null;

  constructor(options: NodeOptions = {}) {
    super();
    const o = resolveNodeOptions(options);
    this.name = o.name ?? randomUUID();
    this.logger = (options.logger ?? defaultLogger()).child({ node: this.name });
    this.ackTimeoutMs = o.ackTimeoutMs;
    this.requestTimeoutMs = o.requestTimeoutMs;
    this.startTimeoutMs = o.startTimeoutMs;
    this.closeTimeoutMs = o.closeTimeoutMs;
    this.statsIntervalMs = o.statsIntervalMs;
    this.#sequences = new Sequences(
      o.announceIntervalMs,
      announceSender(() => this.#channel),
    );
    this.#delivery = new Delivery({
      logger: this.logger,
      channel: () => this.#channel,
      onEvent: (event, message, info) => this.onEvent(event, message, info),
      encode: (what, value) => this.#encode(what, value),
      overflowed: (event) => this.emit('overflow', event),
      gap: (event) => this.emit('gap', event),
    });
    this.#owner = {
      name: this.name,
      subscriptions: () => this.#subs.values(),
      subscriptionBySid: (sid) => this.#subs.get(sid),
      deliver: (sub, msg, payload) => this.#delivery.deliver(sub, msg, payload),
      channelOpened: (welcome, first, resubscribed) => {
        this.#resubscribed = resubscribed;
        this.logger.info(
          { dispatcher: welcome.host, subscriptions: this.#subs.size, first },
          'connected to the dispatcher',
        );
        // After the frames buffered offline, which go out once this returns: tell subscribers where each stream is.
        queueMicrotask(() => this.#sequences.announce());
        if (first) this.emit('connect', welcome);
        else this.emit('reconnect', welcome);
      },
      channelLost: (error) => {
        this.logger.warn({ err: error?.message }, 'disconnected from the dispatcher');
        this.emit('disconnect', error);
      },
      channelError: (error) => {
        if (error instanceof SlowConsumerError) {
          this.logger.warn({ pending: error.pendingBytes, limit: error.limitBytes }, error.message);
          this.emit('slow-consumer', {
            pendingBytes: error.pendingBytes,
            limitBytes: error.limitBytes,
            cut: error.cut,
          });
        } else {
          this.#reportError(error);
        }
      },
      channelDrained: () => this.emit('drain'),
    };
    const will = options.lastWill === undefined ? null : lastWillHeader(options.lastWill);
    this.#channel = new LinkChannel(this.#owner, linkOptions(this.name, o, this.logger, will));
  }

  /** True while connected and past the handshake. */
  get connected(): boolean {
    return this.#channel.isOpen;
  }

  /** Bytes accepted by publish but not yet handed to the kernel (or buffered offline). */
  get pendingBytes(): number {
    return this.#channel.pendingBytes;
  }

  /**
   * Resolves once every frame queued on the connection has been handed to the
   * kernel: the flow-control point for fast publishers (or listen for `drain`).
   */
  drain(options: DrainOptions = {}): Promise<void> {
    if (options.signal === undefined) return this.#channel.drain();
    return abortable(this.#channel.drain(), options.signal, 'drain');
  }

  /**
   * This node, typed by an event map: the same object, whose publish,
   * subscribe, respond and request check and infer the messages of the
   * names in `E` (names outside it stay untyped).
   *
   * ```ts
   * type Events = { 'orders.created': Order; 'math.add': { req: { a: number; b: number }; res: number } };
   * const events = node.typed<Events>();
   * events.publish('orders.created', order);          // checked
   * const sum = await events.request('math.add', { a: 1, b: 2 }); // number
   * ```
   */
  typed<E extends EventMap>(): TypedNode<E> {
    return this as unknown as TypedNode<E>;
  }

  /** The dispatcher's host name, once connected. */
  get dispatcherHost(): string | null {
    return this.#channel.welcome?.host ?? null;
  }

  /**
   * Connects (retrying with back-off) and subscribes the handlers declared
   * with `@on`. Resolves once connected and every subscription is confirmed.
   * Aborting `signal` stops the node (no more retries) and rejects with ABORTED.
   */
  async start(options: StartOptions = {}): Promise<this> {
    const { signal } = options;
    throwIfAborted(signal, `start of node ${this.name}`);
    if (!this.#started) {
      this.#started = true;
      this.#tracing = await startTracing(this.name);
      this.#delivery.tracing = this.#tracing;
      for (const d of declaredHandlers(this)) {
        const method = (this as unknown as Record<string | symbol, unknown>)[d.method];
        if (typeof method !== 'function') continue;
        this.#addLocal(d.uri, method.bind(this) as Handler, d.options);
      }
    }
    const connected = this.#channel.start(this.startTimeoutMs);
    if (signal === undefined) await connected;
    else
      await abortable(connected, signal, `start of node ${this.name}`, () => {
        this.stop().catch((err: unknown) => this.logger.debug({ err }, 'stop after an aborted start failed'));
      });
    await this.#resubscribed;
    if (this.statsIntervalMs > 0 && this.#statsTimer === null) {
      this.#statsTimer = setInterval(() => void this.publishStats(), this.statsIntervalMs);
    }
    return this;
  }

  /** Says goodbye, writes what is queued, closes. Leaves no timers or sockets. Idempotent. */
  async stop(): Promise<void> {
    if (this.#statsTimer !== null) clearInterval(this.#statsTimer);
    this.#statsTimer = null;
    // Iterations end: a stopped node receives nothing more.
    for (const sub of this.#subs.values()) this.#handles.get(sub)?.[SUBSCRIPTION_ENDED]();
    this.#sequences.stop();
    await this.#channel.stop(this.closeTimeoutMs);
  }

  /** Publishes this node's metrics on `$nodeset.stats` now (also done every statsIntervalMs). */
  async publishStats(): Promise<void> {
    if (!this.connected) return;
    const metrics = await this.metrics.snapshot();
    const message = {
      node: this.name,
      at: new Date().toISOString(),
      published: this.#published,
      received: this.#delivery.received,
      overflows: this.#delivery.overflows,
      droppedUnsubscribed: this.#delivery.droppedUnsubscribed,
      gaps: this.#delivery.gaps,
      pendingBytes: this.pendingBytes,
      metrics,
    };
    try {
      this.#publishPlain(STATS_EVENT, message, 0, null);
    } catch (err) {
      this.logger.debug({ err: (err as Error).message }, 'stats not published');
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /**
   * Subscribes to an event URI (wildcards allowed). Resolves with its
   * {@link Subscription} once the dispatcher has confirmed it (at once when
   * disconnected: it is sent on connect). Without a handler, events go to
   * `onEvent`, or to the subscription's async iterator once iterated.
   * Subscribing again to the same URI and group only replaces the handler
   * (and resolves with the same Subscription). The message is typed by the
   * `type:` option, else by the node's event map, else `unknown`. Aborting
   * `options.signal` unsubscribes (rejects with ABORTED if not yet confirmed).
   */
  async subscribe<M = never, U extends string = string, O extends SubscribeOptions = SubscribeOptions>(
    uri: U,
    handler?: Handler<HandlerMessage<M, UntypedEvents, U, O>>,
    options?: O,
  ): Promise<Subscription<HandlerMessage<M, UntypedEvents, U, O>>> {
    return (await this.subscribeWith(
      uri,
      (handler as Handler | undefined) ?? null,
      options ?? {},
      null,
    )) as Subscription<HandlerMessage<M, UntypedEvents, U, O>>;
  }

  /**
   * Answers requests to `uri` (wildcards allowed): the handler's return value
   * (or resolved promise) is the reply, a throw the error. Requests go only
   * to subscriptions made with respond() (or `@on(uri, { reply: true })`),
   * never to passive subscribers; with none, a request fails with
   * NO_RESPONDERS. A responder also gets the plain publishes to `uri`.
   * With an event map, the handler must return the map's `res` for `uri`.
   */
  async respond<M = never, U extends string = string, O extends SubscribeOptions = SubscribeOptions>(
    uri: U,
    handler: Responder<HandlerMessage<M, UntypedEvents, U, O>, ReplyFor<UntypedEvents, U>>,
    options?: O,
  ): Promise<Subscription<HandlerMessage<M, UntypedEvents, U, O>>> {
    return (await this.subscribeWith(uri, handler as Handler, { ...options, reply: true }, null)) as Subscription<
      HandlerMessage<M, UntypedEvents, U, O>
    >;
  }

  /** Removes a subscription (same URI, group and `reply` as given to subscribe or respond). */
  async unsubscribe(uri: string, options: { group?: string; reply?: boolean } = {}): Promise<void> {
    const sub = this.#byKey.get(subscriptionKey(uri, options.group ?? null, options.reply === true));
    if (sub === undefined) return;
    await this.#unsubscribeLocal(sub);
  }

  /** The URIs this node subscribes to. */
  subscriptions(): { uri: string; group: string | null }[] {
    return [...this.#subs.values()].map((s) => ({ uri: s.uri, group: s.group }));
  }

  /**
   * Publishes a message. Without `ack` it returns nothing and allocates no
   * promise (the throughput path); errors (BAD_URI, TOO_LARGE, BUFFER_FULL…)
   * are thrown. With `ack: true` it resolves with the number of subscribers
   * the dispatcher delivered to, or rejects.
   */
  publish<U extends string, O extends PublishOptions | undefined = undefined>(
    uri: U,
    message?: SentMessage<UntypedEvents, U, O>,
    options?: O,
  ): PublishResult<O>;
  publish(uri: string, message?: unknown, options?: PublishOptions): undefined | Promise<number> {
    if (options === undefined && this.#tracing === null) {
      this.#publishPlain(uri, message, 0, null);
      return;
    }
    const flags = deliveryFlags(options?.mode);
    const body = options?.type === undefined ? message : options.type.toJSON(options.type.parse(message));
    const headers = checkHeaders(options?.headers, 'BAD_OPTION');
    const ack = options?.ack === true;
    const timeoutMs = options?.timeoutMs ?? this.ackTimeoutMs;
    const signal = ack ? options?.signal : undefined;
    // Already aborted: nothing is sent.
    if (signal?.aborted === true) return Promise.reject(abortedError(signal, `publish ${uri}`));
    const tracing = this.#tracing;
    if (tracing === null) {
      if (!ack) {
        this.#publishPlain(uri, body, flags, headers);
        return;
      }
      return abortable(this.#publishAcked(uri, body, flags, timeoutMs, headers), signal, `publish ${uri}`);
    }
    const sent = tracing.startSend(uri, headers, false);
    try {
      const traced = checkHeaders(sent.headers, 'BAD_OPTION');
      if (!ack) {
        this.#publishPlain(uri, body, flags, traced);
        tracing.end(sent.span);
        return;
      }
      return abortable(this.#publishAcked(uri, body, flags, timeoutMs, traced), signal, `publish ${uri}`).then(
        (n) => {
          tracing.end(sent.span);
          return n;
        },
        (err: unknown) => {
          tracing.end(sent.span, err);
          throw err;
        },
      );
    } catch (err) {
      tracing.end(sent.span, err);
      throw err;
    }
  }

  /**
   * Sends a request to one responder of `uri`; resolves with its handler's
   * return value. The reply is typed by the explicit type argument, else by
   * `replyType:` (checked at run time), else by the event map's `res`.
   * Aborting `options.signal` rejects with ABORTED at once; a late reply is ignored.
   */
  request<R = never, U extends string = string, O extends RequestOptions = RequestOptions>(
    uri: U,
    message?: SentMessage<UntypedEvents, U, O>,
    options?: O,
  ): Promise<[R] extends [never] ? ReplyMessage<UntypedEvents, U, O> : R>;
  async request(uri: string, message?: unknown, options: RequestOptions = {}): Promise<unknown> {
    const { signal } = options;
    throwIfAborted(signal, `request ${uri}`);
    parseEventUri(uri, false);
    const body = options.type === undefined ? message : options.type.toJSON(options.type.parse(message));
    const { ct, bytes } = this.#encode(uri, body);
    let headers = checkHeaders(options.headers, 'BAD_OPTION');
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    const tracing = this.#tracing;
    const sent = tracing?.startSend(uri, headers, true);
    try {
      if (sent !== undefined) headers = checkHeaders(sent.headers, 'BAD_OPTION');
      const replied = this.#channel.request(uri, ct, bytes, timeoutMs, headers);
      const reply = await abortable(replied, signal, `request ${uri}`);
      if (sent !== undefined) tracing?.end(sent.span);
      return options.replyType === undefined ? reply : options.replyType.parse(reply);
    } catch (err) {
      if (sent !== undefined) tracing?.end(sent.span, err);
      throw err;
    }
  }

  /** The dispatcher's counters (QUERY `stats`; needs the `query` permission with authentication). */
  stats(): Promise<DispatcherStatsAnswer> {
    return this.#query('stats') as Promise<DispatcherStatsAnswer>;
  }

  /** Nodes connected to the dispatcher (QUERY `nodes`). */
  nodes(): Promise<ConnectedNodeInfo[]> {
    return this.#query('nodes') as Promise<ConnectedNodeInfo[]>;
  }

  /** Subscriptions that match a publish URI (QUERY `subscribers`). */
  subscribers(uri: string): Promise<SubscriberInfo[]> {
    return this.#query('subscribers', uri) as Promise<SubscriberInfo[]>;
  }

  /**
   * Default handler for subscriptions made without one. Emits `event`;
   * subclasses may override it. Its return value answers a request.
   */
  onEvent(event: string, message: unknown, info: EventInfo): unknown {
    this.emit('event', event, message, info);
    return undefined;
  }

  // ---- for subclasses and hosts --------------------------------------------

  /** Subscribes with a direct-stream address attached (StreamNode). */
  protected async subscribeWith(
    uri: string,
    handler: Handler | null,
    options: SubscribeOptions,
    stream: string | null,
  ): Promise<Subscription> {
    const { signal } = options;
    throwIfAborted(signal, `subscribe ${uri}`);
    const { sub, isNew } = this.#addLocal(uri, handler, options, stream);
    const handle = this.#handles.get(sub) as Subscription;
    if (!isNew) return handle;
    try {
      const confirmed = this.#channel.subscribe(sub, this.ackTimeoutMs);
      await (signal === undefined ? confirmed : abortable(confirmed, signal, `subscribe ${uri}`));
    } catch (err) {
      if (!sub.removed) await this.#unsubscribeLocal(sub).catch(() => {});
      throw err;
    }
    if (signal !== undefined) this.#unsubscribeOnAbort(sub, signal);
    return handle;
  }

  /** The callbacks a channel uses; for NodeCollection. @internal */
  get [CHANNEL_OWNER](): ChannelOwner {
    return this.#owner;
  }

  /** Moves this node onto another channel (a collection's); only before start. @internal */
  [ATTACH_CHANNEL](channel: NodeChannel): void {
    if (this.#started) throw new NodesetError('BAD_OPTION', `node ${this.name} is already started`);
    this.#channel = channel;
  }

  // ---- internals -----------------------------------------------------------

  #encode(uri: string, message: unknown): { ct: number; bytes: Buffer } {
    const encoded = encodePayload(message);
    const limit = this.#channel.welcome?.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    if (encoded.bytes.length > limit) {
      throw new NodesetError(
        'TOO_LARGE',
        `message for ${uri} is ${encoded.bytes.length} bytes, over the limit of ${limit}`,
      );
    }
    return encoded;
  }

  #publishPlain(uri: string, message: unknown, flags: number, headers: MessageHeaders | null): void {
    const { ct, bytes } = this.#encode(uri, message);
    // Validated when first packed (a bad URI throws and is not cached); with headers, packed for this message.
    const header = headers === null ? this.#plainHeaders.get(uri, null, ct, flags) : null;
    if (header === null) parseEventUri(uri, false);
    // Only `all`-mode publishes are numbered: a direct one reaches a single subscriber, so it is no one's gap.
    const seq = flags === 0 ? this.#sequences.next(uri) : 0;
    try {
      const packed = header === null ? packPubHeader(uri, flags, 0, ct, null, seq, headers) : setSeq(header, seq);
      this.#channel.publish(uri, flags, ct, bytes, packed, seq, headers);
    } catch (err) {
      // Refused here (BUFFER_FULL…): never sent, so its number is not a gap anyone should see.
      this.#sequences.giveBack(uri, seq);
      throw err;
    }
    this.#published++;
  }

  async #publishAcked(
    uri: string,
    message: unknown,
    flags: number,
    timeoutMs: number,
    headers: MessageHeaders | null,
  ): Promise<number> {
    parseEventUri(uri, false);
    const { ct, bytes } = this.#encode(uri, message);
    const seq = flags === 0 ? this.#sequences.next(uri) : 0;
    return this.#channel.publishAcked(uri, flags, ct, bytes, timeoutMs, seq, headers).then(
      (answer) => {
        if (answer.dropped > 0) {
          this.logger.warn({ uri, delivered: answer.n, dropped: answer.dropped }, 'copies of a publish were dropped');
          try {
            this.emit('dropped', { uri, delivered: answer.n, dropped: answer.dropped });
          } catch (err) {
            // A listener's failure is its own: the publish was acknowledged.
            this.logger.error({ err: (err as Error).message }, "a 'dropped' listener threw");
          }
        }
        return answer.n;
      },
      (err: unknown) => {
        // Refused before it was sent: its number is given back, unless a later publish took the next one.
        if (err instanceof NodesetError && err.code === 'BUFFER_FULL') this.#sequences.giveBack(uri, seq);
        throw err;
      },
    );
  }

  /** Removes a subscription now; what waits in its queue is dropped, and counted. */
  async #unsubscribeLocal(sub: LocalSubscription): Promise<void> {
    if (sub.removed) return;
    // From here on its handler is never called: what waits in its queue is dropped, and counted.
    this.#removeLocal(sub);
    // A draining one has been unsubscribed at the dispatcher already.
    if (!this.#draining.delete(sub)) await this.#channel.unsubscribe(sub, this.ackTimeoutMs);
  }

  /**
   * Drains a subscription: UNSUB first (the dispatcher confirms once it sends
   * it nothing more), then waits until what it received is handled, then
   * removes it. Aborting removes it at once.
   */
  async #drainLocal(sub: LocalSubscription, signal: AbortSignal | undefined): Promise<void> {
    if (sub.removed) return;
    const what = `drain of ${sub.uri}`;
    throwIfAborted(signal, what);
    const abort = (): void => {
      if (!sub.removed) this.#removeLocal(sub);
    };
    this.#draining.add(sub);
    try {
      await abortable(this.#channel.unsubscribe(sub, this.ackTimeoutMs), signal, what, abort);
    } catch (err) {
      // Not confirmed (lost connection, timeout): removed here, as unsubscribe() would.
      this.#draining.delete(sub);
      if (!sub.removed) this.#removeLocal(sub);
      throw err;
    }
    // Messages the dispatcher sent before its confirmation may still wait in the connection's
    // inbox (handed over in slices, after I/O): let each slice run before calling it idle.
    const idle = async (): Promise<void> => {
      for (;;) {
        if (sub.removed) return;
        if (sub.inFlight > 0 || sub.queue.length > 0) {
          await new Promise<void>((resolve) => {
            sub.idle = resolve;
          });
          sub.idle = null;
        }
        const seen = sub.received;
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (sub.removed || (sub.received === seen && sub.inFlight === 0 && sub.queue.length === 0)) return;
      }
    };
    try {
      await abortable(idle(), signal, what, abort);
    } finally {
      this.#draining.delete(sub);
    }
    if (!sub.removed) this.#removeLocal(sub);
  }

  /** Aborting the signal later unsubscribes; the listener goes with the subscription. */
  #unsubscribeOnAbort(sub: LocalSubscription, signal: AbortSignal): void {
    const aborted = (): void => {
      this.#unsubscribeLocal(sub).catch((err: unknown) =>
        this.logger.debug({ err, subscription: sub.uri }, 'unsubscribe on abort failed'),
      );
    };
    signal.addEventListener('abort', aborted, { once: true });
    sub.onRemoved = () => signal.removeEventListener('abort', aborted);
  }

  #query(what: QueryWhat, uri?: string): Promise<unknown> {
    return this.#channel.query(what, uri, this.ackTimeoutMs);
  }

  #addLocal(
    uri: string,
    handler: Handler | null,
    options: SubscribeOptions,
    stream: string | null = null,
  ): { sub: LocalSubscription; isNew: boolean } {
    const parsed = parseEventUri(uri, true);
    if (parsed.node !== null) throw new NodesetError('BAD_URI', `cannot subscribe to a node target: ${uri}`);
    const group = options.group ?? null;
    const responds = options.reply === true;
    const key = subscriptionKey(uri, group, responds);
    const existing = this.#byKey.get(key);
    if (existing !== undefined) {
      if (handler !== null) existing.handler = handler;
      if (options.type !== undefined) existing.type = options.type;
      return { sub: existing, isNew: false };
    }
    const { maxInFlight, queueLimit, overflow, pushback } = resolveSubscribeOptions(options);
    const sub: LocalSubscription = {
      sid: this.#nextSid++,
      uri,
      group,
      responds,
      pushback,
      handler,
      type: options.type ?? null,
      stream,
      inFlight: 0,
      maxInFlight,
      queueLimit,
      overflow,
      queue: [],
      removed: false,
      gaps: null,
      received: 0,
      handled: 0,
      dropped: 0,
      idle: null,
      onRemoved: null,
    };
    this.#subs.set(sub.sid, sub);
    this.#byKey.set(key, sub);
    this.#handles.set(sub, new Subscription(sub, this.#subscriptionOwner));
    return { sub, isNew: true };
  }

  #removeLocal(sub: LocalSubscription): void {
    this.#delivery.removed(sub);
    this.#subs.delete(sub.sid);
    this.#byKey.delete(subscriptionKey(sub.uri, sub.group, sub.responds));
    sub.onRemoved?.();
    sub.onRemoved = null;
    // A drain waiting for it to go idle: it is gone.
    const idle = sub.idle;
    sub.idle = null;
    idle?.();
    this.#handles.get(sub)?.[SUBSCRIPTION_ENDED]();
  }

  #reportError(error: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else this.logger.warn({ err: error }, error.message);
  }
}

function lastWillHeader(will: { uri: string; message?: unknown }): { uri: string; ct: number; payload: Buffer } {
  parseEventUri(will.uri, false);
  const { ct, bytes } = encodePayload(will.message);
  // The will travels in the HELLO header, which holds MAX_HEADER_BYTES with the name and token.
  if (bytes.length > MAX_WILL_BYTES) {
    throw new NodesetError('TOO_LARGE', `last will is ${bytes.length} bytes, over the limit of ${MAX_WILL_BYTES}`);
  }
  return { uri: will.uri, ct, payload: bytes };
}
