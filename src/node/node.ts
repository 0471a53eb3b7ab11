import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { NodesetError, SlowConsumerError } from '../protocol/errors.js';
import { parseEventUri } from '../protocol/event-uri.js';
import {
  ContentType,
  DEFAULT_MAX_PAYLOAD_BYTES,
  type DeliveryMode,
  PubFlag,
  packPlainPubHeader,
  type QueryWhat,
  type SlowConsumerPolicy,
  STATS_EVENT,
  setSeq,
} from '../protocol/frames.js';
import { HeaderCache } from '../protocol/header-cache.js';
import { decodePayload, encodePayload } from '../protocol/payload.js';
import type { TlsClientOptions } from '../transport/tcp.js';
import type { BackoffOptions } from './backoff.js';
import { type ChannelOwner, LinkChannel, type LocalSubscription, type NodeChannel } from './channel.js';
import { linkOptions, type Welcome } from './dispatcher-link.js';
import {
  declaredHandlers,
  type EventInfo,
  type Handler,
  type OverflowEvent,
  type SubscribeOptions,
} from './handlers.js';
import { ATTACH_CHANNEL, CHANNEL_OWNER } from './internal.js';
import { defaultLogger } from './logger.js';
import type { MessageType } from './message.js';
import { NodeMetrics } from './metrics.js';
import { MAX_WILL_BYTES } from './options.js';

export interface NodeOptions {
  /** Node name; a random UUID when not given. */
  name?: string;
  /** Dispatcher URL, `nodeset://[token@]host:port`. Default: env NODESET_DISPATCHER_URL, else nodeset://127.0.0.1:5333. */
  dispatcherUrl?: string;
  /** Authentication token; default: the one in the URL, else env NODESET_TOKEN. */
  token?: string;
  /** TLS settings for `nodesets://` URLs: CA to trust, client certificate for mutual TLS. */
  tls?: TlsClientOptions;
  /** Host name to announce; default: the dispatcher's. */
  host?: string;
  /** Reconnect back-off: first delay (default 100 ms) and cap (default 30 s). */
  reconnect?: BackoffOptions;
  /** `start()` rejects when no connection is made within this time, in ms (0: wait forever). Default 30,000. */
  startTimeoutMs?: number;
  /** Timeout of one connection attempt, handshake included, in ms. Default 5000. */
  connectTimeoutMs?: number;
  /** Default timeout of `publish(..., { ack: true })`, in ms. Default 10,000. */
  ackTimeoutMs?: number;
  /** Default timeout of `request()`, in ms. Default 5000. */
  requestTimeoutMs?: number;
  /** Frames buffered while disconnected: at most this many. Default 10,000. */
  offlineMaxMessages?: number;
  /** Frames buffered while disconnected: at most this many bytes. Default 8 MiB. */
  offlineMaxBytes?: number;
  /** Outbound bytes queued on a live connection before publish throws BUFFER_FULL. Default 8 MiB. */
  maxPendingBytes?: number;
  /**
   * When this connection falls behind reading what it subscribed to: `cut`
   * (the default) lets the dispatcher cut it off past its limit; `pushback`
   * makes the dispatcher hold back the publishers feeding it until it catches up.
   */
  slowConsumer?: SlowConsumerPolicy;
  /** On stop, how long queued frames may take to be written, in ms. Default 5000. */
  closeTimeoutMs?: number;
  /** Publish `metrics` on `$nodeset.stats` this often, in ms (0: never). Default 5000. */
  statsIntervalMs?: number;
  /** A message the dispatcher publishes for this node if it disappears without a graceful stop. */
  lastWill?: { uri: string; message?: unknown };
  logger?: Logger;
}

export interface PublishOptions {
  /** `all` (default): every subscriber; `direct`: exactly one, round-robin. */
  mode?: DeliveryMode;
  /** Check (and strip metadata from) the message with this type before sending. */
  type?: MessageType;
  /** Resolve with the number of subscribers delivered to. */
  ack?: boolean;
  /** Timeout for the acknowledgement, in ms. */
  timeoutMs?: number;
}

export interface RequestOptions {
  timeoutMs?: number;
  type?: MessageType;
}

const PLAIN_HEADER_CACHE_LIMIT = 1024;

function packCheckedPubHeader(uri: string, sender: string | null, ct: number, flags: number): Buffer {
  parseEventUri(uri, false);
  return packPlainPubHeader(uri, sender, ct, flags);
}
/** Sequence counters kept per node (URIs published) and per subscription (publishers × URIs seen). */
const SEQ_TABLE_LIMIT = 100_000;

/** Emitted (`gap` event) when a subscription missed messages of a publisher's stream. */
export interface GapEvent {
  subscription: string;
  from: string;
  uri: string;
  /** First and last sequence numbers missed. */
  missed: [number, number];
}

/** The dispatcher's warning that this node is falling behind reading (see docs/guarantees.md). */
export interface SlowConsumerEvent {
  /** Bytes queued for this connection at the dispatcher when it warned. */
  pendingBytes: number;
  /** Queued bytes at which the dispatcher cuts the connection off (`cut` policy). */
  limitBytes: number;
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
}

/**
 * A node: publishes and subscribes through its host's dispatcher. It owns its
 * subscriptions and sends them again after every reconnect, so a restarted
 * dispatcher needs nothing from the user.
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
  #nextSid = 1;
  #plainHeaders = new HeaderCache(packCheckedPubHeader, PLAIN_HEADER_CACHE_LIMIT);
  #resubscribed: Promise<unknown> = Promise.resolve();
  #started = false;
  /** This node's metrics; published on `$nodeset.stats` every statsIntervalMs. */
  readonly metrics = new NodeMetrics();
  readonly statsIntervalMs: number;
  #statsTimer: NodeJS.Timeout | null = null;
  #published = 0;
  #received = 0;
  /** Messages that were waiting for a handler when their subscription was removed. */
  #droppedUnsubscribed = 0;
  #overflows = 0;
  #gaps = 0;
  readonly #seqs = new Map<string, number>();
  /** Subscriptions whose full queue paused the connection's reads (`block`). */
  readonly #blocked = new Set<LocalSubscription>();

  constructor(options: NodeOptions = {}) {
    super();
    this.name = options.name ?? randomUUID();
    if (!/^[A-Za-z0-9_.:-]{1,255}$/.test(this.name)) {
      throw new NodesetError('BAD_OPTION', `node name ${JSON.stringify(this.name)} must be letters, digits and _.:-`);
    }
    this.logger = (options.logger ?? defaultLogger()).child({ node: this.name });
    this.ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 5000;
    this.startTimeoutMs = options.startTimeoutMs ?? 30_000;
    this.closeTimeoutMs = options.closeTimeoutMs ?? 5000;
    this.statsIntervalMs = options.statsIntervalMs ?? 5000;
    this.#owner = {
      name: this.name,
      subscriptions: () => this.#subs.values(),
      subscriptionBySid: (sid) => this.#subs.get(sid),
      deliver: (sub, header, payload) => this.#deliver(sub, header, payload),
      channelOpened: (welcome, first, resubscribed) => {
        this.#resubscribed = resubscribed;
        this.logger.info(
          { dispatcher: welcome.host, subscriptions: this.#subs.size, first },
          'connected to the dispatcher',
        );
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
          this.emit('slow-consumer', { pendingBytes: error.pendingBytes, limitBytes: error.limitBytes });
        } else {
          this.#reportError(error);
        }
      },
      channelDrained: () => this.emit('drain'),
    };
    const will = options.lastWill === undefined ? null : lastWillHeader(options.lastWill);
    this.#channel = new LinkChannel(this.#owner, linkOptions(this.name, options, this.logger, will));
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
  drain(): Promise<void> {
    return this.#channel.drain();
  }

  /** The dispatcher's host name, once connected. */
  get dispatcherHost(): string | null {
    return this.#channel.welcome?.host ?? null;
  }

  /**
   * Connects (retrying with back-off) and subscribes the handlers declared
   * with `@on`. Resolves once connected and every subscription is confirmed.
   */
  async start(): Promise<this> {
    if (!this.#started) {
      this.#started = true;
      for (const d of declaredHandlers(this)) {
        const method = (this as unknown as Record<string | symbol, unknown>)[d.method];
        if (typeof method !== 'function') continue;
        this.#addLocal(d.uri, method.bind(this) as Handler, d.options);
      }
    }
    await this.#channel.start(this.startTimeoutMs);
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
      received: this.#received,
      overflows: this.#overflows,
      droppedUnsubscribed: this.#droppedUnsubscribed,
      gaps: this.#gaps,
      pendingBytes: this.pendingBytes,
      metrics,
    };
    try {
      this.publish(STATS_EVENT, message);
    } catch (err) {
      this.logger.debug({ err: (err as Error).message }, 'stats not published');
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /**
   * Subscribes to an event URI (wildcards allowed). Without a handler, events
   * go to `onEvent`. Subscribing again to the same URI and group only
   * replaces the handler. Resolves once the dispatcher has confirmed it (at
   * once when disconnected: it is sent on connect).
   */
  async subscribe<M = unknown>(uri: string, handler?: Handler<M>, options: SubscribeOptions = {}): Promise<void> {
    await this.subscribeWith(uri, (handler as Handler | undefined) ?? null, options, null);
  }

  /** Removes a subscription (same URI and group as given to subscribe). */
  async unsubscribe(uri: string, options: { group?: string } = {}): Promise<void> {
    const sub = this.#byKey.get(subKey(uri, options.group ?? null));
    if (sub === undefined) return;
    this.#removeLocal(sub);
    // From here on its handler is never called: what waits in its queue is dropped, and counted.
    this.#droppedUnsubscribed += sub.queue.length;
    sub.queue.length = 0;
    await this.#channel.unsubscribe(sub, this.ackTimeoutMs);
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
  publish(uri: string, message?: unknown, options?: PublishOptions & { ack?: false }): void;
  publish(uri: string, message: unknown, options: PublishOptions & { ack: true }): Promise<number>;
  publish(uri: string, message?: unknown, options?: PublishOptions): undefined | Promise<number>;
  publish(uri: string, message?: unknown, options?: PublishOptions): undefined | Promise<number> {
    if (options === undefined) {
      this.#publishPlain(uri, message, 0);
      return;
    }
    const flags = options.mode === 'direct' ? PubFlag.DIRECT : 0;
    if (options.mode !== undefined && options.mode !== 'all' && options.mode !== 'direct') {
      throw new NodesetError('BAD_OPTION', `mode must be 'all' or 'direct', got ${JSON.stringify(options.mode)}`);
    }
    const body = options.type === undefined ? message : options.type.toJSON(options.type.parse(message));
    if (options.ack !== true) {
      this.#publishPlain(uri, body, flags);
      return;
    }
    return this.#publishAcked(uri, body, flags, options.timeoutMs ?? this.ackTimeoutMs);
  }

  /** Sends a request to one subscriber of `uri`; resolves with its handler's return value. */
  async request<R = unknown>(uri: string, message?: unknown, options: RequestOptions = {}): Promise<R> {
    parseEventUri(uri, false);
    const body = options.type === undefined ? message : options.type.toJSON(options.type.parse(message));
    const { ct, bytes } = this.#encode(uri, body);
    return (await this.#channel.request(uri, ct, bytes, options.timeoutMs ?? this.requestTimeoutMs)) as R;
  }

  /** Dispatcher statistics. */
  stats(): Promise<unknown> {
    return this.#query('stats');
  }

  /** Nodes connected to the dispatcher. */
  nodes(): Promise<unknown> {
    return this.#query('nodes');
  }

  /** Subscriptions that match a publish URI. */
  subscribers(uri: string): Promise<unknown> {
    return this.#query('subscribers', uri);
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
  ): Promise<void> {
    const { sub, isNew } = this.#addLocal(uri, handler, options, stream);
    if (!isNew) return;
    try {
      await this.#channel.subscribe(sub, this.ackTimeoutMs);
    } catch (err) {
      this.#removeLocal(sub);
      throw err;
    }
  }

  /** The callbacks a channel uses; for NodeCollection. */
  get [CHANNEL_OWNER](): ChannelOwner {
    return this.#owner;
  }

  /** Moves this node onto another channel (a collection's); only before start. */
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

  #publishPlain(uri: string, message: unknown, flags: number): void {
    const { ct, bytes } = this.#encode(uri, message);
    // Validated when first packed (a bad URI throws and is not cached).
    const header = this.#plainHeaders.get(uri, null, ct, flags);
    // Only `all`-mode publishes are numbered: a direct one reaches a single subscriber, so it is no one's gap.
    const seq = flags === 0 ? this.#nextSeq(uri) : 0;
    try {
      this.#channel.publish(uri, flags, ct, bytes, setSeq(header, seq), seq);
    } catch (err) {
      // Refused here (BUFFER_FULL…): never sent, so its number is not a gap anyone should see.
      this.#unSeq(uri, seq);
      throw err;
    }
    this.#published++;
  }

  async #publishAcked(uri: string, message: unknown, flags: number, timeoutMs: number): Promise<number> {
    parseEventUri(uri, false);
    const { ct, bytes } = this.#encode(uri, message);
    const seq = flags === 0 ? this.#nextSeq(uri) : 0;
    return this.#channel.publishAcked(uri, flags, ct, bytes, timeoutMs, seq).catch((err: unknown) => {
      // Refused before it was sent: its number is given back, unless a later publish took the next one.
      if (err instanceof NodesetError && err.code === 'BUFFER_FULL') this.#unSeq(uri, seq);
      throw err;
    });
  }

  /** Gives a sequence number back when it is still the latest for its URI. */
  #unSeq(uri: string, seq: number): void {
    if (seq === 0 || this.#seqs.get(uri) !== seq) return;
    if (seq === 1) this.#seqs.delete(uri);
    else this.#seqs.set(uri, seq - 1);
  }

  /** The next sequence number for a URI (per publishing node and event stream). */
  #nextSeq(uri: string): number {
    const seq = ((this.#seqs.get(uri) ?? 0) % 0xfffffffe) + 1;
    // Bounded: past the limit the counters restart, which subscribers take as a restart, not a gap.
    if (seq === 1 && this.#seqs.size >= SEQ_TABLE_LIMIT) this.#seqs.clear();
    this.#seqs.set(uri, seq);
    return seq;
  }

  /**
   * Gap detection: every `all`-mode message outside queue groups carries its
   * publisher's sequence number. The stream seen last is kept in the
   * subscription itself (the common case: one publisher, one URI), the others
   * in a bounded table.
   */
  #checkSeq(sub: LocalSubscription, from: string, uri: string, seq: number): void {
    let last: number | undefined;
    if (sub.lastFrom === from && sub.lastUri === uri) {
      last = sub.lastSeq;
    } else {
      sub.seen ??= new Map();
      if (sub.lastFrom !== null) this.#remember(sub.seen, sub.lastFrom, sub.lastUri as string, sub.lastSeq);
      last = sub.seen.get(from)?.get(uri);
      sub.lastFrom = from;
      sub.lastUri = uri;
    }
    sub.lastSeq = seq;
    // A number at or below the last one means the publisher restarted: a new stream, not a gap.
    if (last === undefined || seq <= last + 1) return;
    this.#gaps++;
    const gap: GapEvent = { subscription: sub.uri, from, uri, missed: [last + 1, seq - 1] };
    this.logger.warn(gap, 'messages missed');
    this.emit('gap', gap);
  }

  #remember(seen: Map<string, Map<string, number>>, from: string, uri: string, seq: number): void {
    let byUri = seen.get(from);
    if (byUri === undefined) {
      if (seen.size >= SEQ_TABLE_LIMIT) seen.clear();
      byUri = new Map();
      seen.set(from, byUri);
    }
    if (byUri.size >= SEQ_TABLE_LIMIT && !byUri.has(uri)) byUri.clear();
    byUri.set(uri, seq);
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
    const key = subKey(uri, group);
    const existing = this.#byKey.get(key);
    if (existing !== undefined) {
      if (handler !== null) existing.handler = handler;
      if (options.type !== undefined) existing.type = options.type;
      return { sub: existing, isNew: false };
    }
    const maxInFlight = options.maxInFlight ?? 1;
    const queueLimit = options.queueLimit ?? 10_000;
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1 || !Number.isInteger(queueLimit) || queueLimit < 0) {
      throw new NodesetError('BAD_OPTION', 'maxInFlight must be an integer >= 1 and queueLimit an integer >= 0');
    }
    const overflow = options.overflow ?? 'drop-newest';
    if (!['drop-newest', 'drop-oldest', 'disconnect', 'block'].includes(overflow)) {
      throw new NodesetError(
        'BAD_OPTION',
        `overflow must be drop-newest, drop-oldest, disconnect or block, got ${overflow}`,
      );
    }
    const sub: LocalSubscription = {
      sid: this.#nextSid++,
      uri,
      group,
      handler,
      type: options.type ?? null,
      stream,
      inFlight: 0,
      maxInFlight,
      queueLimit,
      overflow,
      queue: [],
      removed: false,
      seen: null,
      lastFrom: null,
      lastUri: null,
      lastSeq: 0,
    };
    this.#subs.set(sub.sid, sub);
    this.#byKey.set(key, sub);
    return { sub, isNew: true };
  }

  #removeLocal(sub: LocalSubscription): void {
    sub.removed = true;
    this.#subs.delete(sub.sid);
    this.#byKey.delete(subKey(sub.uri, sub.group));
  }

  /** One received message for one of this node's subscriptions: MSG header [sid, uri, from, ct, replyTo, replyId, direct]. */
  #deliver(sub: LocalSubscription, h: unknown[], payload: Buffer): void {
    this.#received++;
    const seq = h[7];
    if (typeof seq === 'number' && seq !== 0 && h[6] === 0 && sub.group === null) {
      this.#checkSeq(sub, h[2] as string, h[1] as string, seq);
    }
    if (sub.inFlight < sub.maxInFlight) this.#run(sub, h, payload);
    else this.#enqueue(sub, h, payload);
  }

  /** A message for a subscription whose handlers are all busy: queue it, or apply the overflow policy. */
  #enqueue(sub: LocalSubscription, h: unknown[], payload: Buffer): void {
    if (sub.queue.length < sub.queueLimit) {
      sub.queue.push([h, payload]);
      if (sub.overflow === 'block' && sub.queue.length >= sub.queueLimit) {
        this.#blocked.add(sub);
        this.#channel.pauseReading(true);
        this.#overflowed(sub, 0);
      }
      return;
    }
    switch (sub.overflow) {
      case 'drop-oldest':
        sub.queue.shift();
        sub.queue.push([h, payload]);
        this.#overflowed(sub, 1);
        return;
      case 'disconnect':
        this.#overflowed(sub, sub.queue.length + 1);
        sub.queue.length = 0;
        this.#channel.resetConnection();
        return;
      case 'block':
        // Reads are paused; frames of the chunk already read still arrive: keep them
        // (bounded by one socket read) rather than lose them.
        sub.queue.push([h, payload]);
        return;
      default:
        this.#overflowed(sub, 1);
    }
  }

  #overflowed(sub: LocalSubscription, dropped: number): void {
    this.#overflows++;
    this.logger.warn({ subscription: sub.uri, policy: sub.overflow, dropped }, 'subscription queue overflow');
    this.emit('overflow', { subscription: sub.uri, policy: sub.overflow, dropped });
  }

  /** A handler finished: start the next queued message, and resume reading once a blocked queue has room. */
  #finished(sub: LocalSubscription): void {
    sub.inFlight--;
    if (sub.removed) return; // unsubscribed meanwhile
    while (sub.inFlight < sub.maxInFlight && sub.queue.length > 0) {
      const [h, payload] = sub.queue.shift() as [unknown[], Buffer];
      this.#run(sub, h, payload);
    }
    if (this.#blocked.has(sub) && sub.queue.length < sub.queueLimit) {
      this.#blocked.delete(sub);
      if (this.#blocked.size === 0) this.#channel.pauseReading(false);
    }
  }

  /** Runs the handler for one message: decode, check, call, answer a request. */
  #run(sub: LocalSubscription, h: unknown[], payload: Buffer): void {
    sub.inFlight++;
    const uri = h[1] as string;
    const replyTo = (h[4] as number) || 0;
    const replyId = (h[5] as number) || 0;
    let message: unknown;
    try {
      message = decodePayload(h[3] as number, payload);
      if (sub.type !== null) message = sub.type.parse(message);
    } catch (err) {
      this.#handlerFailed(err, sub, replyTo, replyId);
      this.#finished(sub);
      return;
    }
    const info: EventInfo = { uri, from: h[2] as string, subscription: sub.uri, isRequest: replyTo !== 0 };
    let result: unknown;
    try {
      result = sub.handler === null ? this.onEvent(uri, message, info) : sub.handler(message, info);
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
        if (replyTo !== 0) this.#reply(replyTo, replyId, value);
        this.#finished(sub);
      },
      (err: unknown) => {
        this.#handlerFailed(err, sub, replyTo, replyId);
        this.#finished(sub);
      },
    );
  }

  #reply(to: number, r: number, value: unknown): void {
    let encoded: { ct: number; bytes: Buffer };
    try {
      encoded = this.#encode('reply', value);
    } catch (err) {
      this.#replyError(to, r, err);
      return;
    }
    this.#channel.reply(to, r, encoded.ct, encoded.bytes);
  }

  #replyError(to: number, r: number, err: unknown): void {
    const code = err instanceof NodesetError ? err.code : 'HANDLER_ERROR';
    const message = err instanceof Error ? err.message : String(err);
    this.#channel.reply(to, r, ContentType.EMPTY, null, { code, message });
  }

  #handlerFailed(err: unknown, sub: LocalSubscription, replyTo: number, replyId: number): void {
    this.logger.error({ err, subscription: sub.uri }, 'handler failed');
    if (replyTo !== 0) this.#replyError(replyTo, replyId, err);
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

function subKey(uri: string, group: string | null): string {
  return group === null ? uri : `${group}\u0000${uri}`;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
