/**
 * One connection to the dispatcher, as a node or a collection holds it:
 * connect and reconnect with back-off, the handshake, answers awaited by id,
 * the offline buffer, liveness both ways, and handing received messages to
 * the node in time slices.
 */
import type { Logger } from 'pino';
import { decodeHeader, headerOf, isRecord, isUint, payloadOf } from '../protocol/decoder.js';
import { fromWireError, NodesetError, SlowConsumerError, TimeoutError } from '../protocol/errors.js';
import { decodeMsgHeader, msgFieldsOf } from '../protocol/fast-headers.js';
import {
  FrameKind,
  frameSize,
  type HelloHeader,
  type MsgFields,
  PONG_FRAME,
  PROTOCOL_VERSION,
  packHeader,
  type SlowConsumerPolicy,
  unpackHeader,
  writeFrame,
} from '../protocol/frames.js';
import { decodePayload } from '../protocol/payload.js';
import type { DispatcherAddress } from '../protocol/url.js';
import { FrameSocket, type FrameSocketHandlers } from '../transport/frame-socket.js';
import { connectTcp, type TlsClientOptions } from '../transport/tcp.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { NODE_DEFAULTS, type ResolvedConnectionOptions } from './options.js';

export interface Welcome {
  host: string;
  id: number;
  heartbeatMs: number;
  maxPayloadBytes: number;
  /**
   * The token that keeps this connection's stream id across a reconnect to
   * the same dispatcher process; null from a dispatcher without stream ids
   * (it does not take announces either).
   */
  resume: string | null;
}

/** What the link tells its node. */
export interface LinkEvents {
  /** Handshake done; `first` is false after a reconnect. The node re-subscribes here. */
  opened(welcome: Welcome, first: boolean): void;
  /** A MSG frame. */
  message(msg: MsgFields, payload: Buffer): void;
  /** The connection was lost (not called on stop). */
  lost(error: Error | undefined): void;
  /** An error to report (an ERROR frame with no correlation id, a failed reconnect…). */
  error(error: Error): void;
  /** Outbound bytes drained below the limit. */
  drained(): void;
}

export interface LinkOptions {
  name: string;
  host: string | null;
  address: DispatcherAddress;
  backoff: BackoffOptions;
  connectTimeoutMs: number;
  offlineMaxMessages: number;
  offlineMaxBytes: number;
  maxPendingBytes: number;
  /** TLS settings for `nodesets://` URLs. */
  tls: TlsClientOptions | null;
  /** Last will, sent in HELLO. */
  will?: { uri: string; ct: number; payload: Buffer } | null;
  /** What the dispatcher does when this connection falls behind reading (HELLO `slow`). */
  slowConsumer: SlowConsumerPolicy;
  /** Keep reconnecting after AUTH_FAILED (default: stop). */
  retryOnAuthFailure: boolean;
  logger: Logger;
}

/**
 * Handlers run as their messages are read, for at most this long per chunk
 * read; the chunk's later messages wait for the next turn of the event loop
 * (its PINGs are answered at once). While messages wait, reading pauses, so
 * what waits is at most one chunk; the handlers go on in slices of this
 * length between which timers run and the dispatcher is told this node is
 * alive.
 */
const HANDLER_SLICE_MS = 50;

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout | null;
  /** Connection generation the frame went out on; 0 while still buffered offline. */
  sentOn: number;
}

enum LinkState {
  Idle = 0,
  Connecting = 1,
  Handshake = 2,
  Open = 3,
  Stopped = 4,
}

/**
 * A node's connection to its dispatcher: connect and handshake, reconnect
 * with back-off forever, liveness from what is received, correlation of
 * acknowledgements and replies, and a bounded buffer for frames sent while
 * disconnected.
 */
export class DispatcherLink implements FrameSocketHandlers {
  readonly options: LinkOptions;
  welcome: Welcome | null = null;
  #events: LinkEvents;
  #state = LinkState.Idle;
  #fs: FrameSocket | null = null;
  #generation = 0;
  #everOpened = false;
  #backoff: Backoff;
  #retryTimer: NodeJS.Timeout | null = null;
  #liveness: NodeJS.Timeout | null = null;
  #lastSeen = 0;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #offline: Buffer[] = [];
  #offlineBytes = 0;
  #drainWaiters: (() => void)[] = [];
  #openWaiters: { resolve(): void; reject(e: Error): void }[] = [];
  /** The dispatcher's last refusal of a handshake, since the last open (start()'s timeout names it). */
  #lastRefusal: NodesetError | null = null;
  /** MSG frames read but not yet handed to the node (headers and payloads side by side), from #inboxAt on. */
  #inboxHeaders: MsgFields[] = [];
  #inboxPayloads: Buffer[] = [];
  #inboxAt = 0;
  /** A later turn will go on with the inbox. */
  #inboxScheduled = false;
  /** When the first handler of the chunk being read started (0: none yet), how many ran, and whether its time is up. */
  #sliceStart = 0;
  #sliceCount = 0;
  #sliceOver = false;
  /** Reading is paused: by the inbox bound, and by the node (`block` overflow). */
  #pausedByInbox = false;
  #pausedByNode = false;
  /** When this node last wrote to the dispatcher, for keep-alives while it works through a backlog. */
  #lastKeepAlive = 0;

  constructor(options: LinkOptions, events: LinkEvents) {
    this.options = options;
    this.#events = events;
    this.#backoff = new Backoff(options.backoff);
  }

  get isOpen(): boolean {
    return this.#state === LinkState.Open;
  }

  get stopped(): boolean {
    return this.#state === LinkState.Stopped;
  }

  /** Frames buffered while disconnected. */
  get offlineCount(): number {
    return this.#offline.length;
  }

  /** Bytes waiting to be sent: buffered offline, or queued on the socket. */
  get pendingBytes(): number {
    return this.#offlineBytes + (this.#fs?.pendingBytes ?? 0);
  }

  /** Resolves once connected (retrying with back-off); rejects after `timeoutMs` (0: never). */
  start(timeoutMs: number): Promise<void> {
    if (this.#state === LinkState.Stopped) return Promise.reject(new NodesetError('CLOSED', 'node is stopped'));
    if (this.#state === LinkState.Open) return Promise.resolve();
    const opened = new Promise<void>((resolve, reject) => {
      const waiter = { resolve, reject };
      this.#openWaiters.push(waiter);
      if (timeoutMs > 0) {
        const timer = setTimeout(() => {
          this.#openWaiters = this.#openWaiters.filter((w) => w !== waiter);
          const { host, port } = this.options.address;
          const refused = this.#lastRefusal;
          reject(
            refused === null
              ? new NodesetError(
                  'CONNECTION_LOST',
                  `could not reach the dispatcher at ${host}:${port} within ${timeoutMs} ms`,
                )
              : new NodesetError(
                  refused.code,
                  `not connected within ${timeoutMs} ms: the dispatcher at ${host}:${port} refused with ${refused.code}: ${refused.message}`,
                ),
          );
        }, timeoutMs);
        waiter.resolve = () => {
          clearTimeout(timer);
          resolve();
        };
        waiter.reject = (e) => {
          clearTimeout(timer);
          reject(e);
        };
      }
    });
    if (this.#state === LinkState.Idle) void this.#connect();
    return opened;
  }

  /** Ids for frames that expect an answer. */
  nextId(): number {
    const id = this.#nextId;
    this.#nextId = id >= 0xfffffff0 ? 1 : id + 1;
    return id;
  }

  /**
   * Sends a frame now, or buffers it while disconnected. Throws BUFFER_FULL
   * when the bound is reached: nothing is dropped silently.
   */
  send(kind: number, header: Uint8Array | null, payload: Uint8Array | null = null): void {
    const fs = this.#fs;
    if (this.#state === LinkState.Open && fs !== null) {
      if (fs.pendingBytes > this.options.maxPendingBytes) {
        throw new NodesetError(
          'BUFFER_FULL',
          `outbound buffer holds ${fs.pendingBytes} bytes (limit ${this.options.maxPendingBytes}); wait for 'drain'`,
        );
      }
      fs.send(kind, header, payload);
      return;
    }
    if (this.#state === LinkState.Stopped) throw new NodesetError('CLOSED', 'node is stopped');
    this.#bufferOffline(kind, header, payload);
  }

  /**
   * Resolves once everything queued on the live connection has been handed
   * to the kernel (at once when offline: that buffer goes out on reconnect).
   */
  drain(): Promise<void> {
    const fs = this.#fs;
    if (this.#state !== LinkState.Open || fs === null) return Promise.resolve();
    fs.flush();
    if (fs.socket.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  #wakeDrainWaiters(): void {
    if (this.#drainWaiters.length === 0) return;
    for (const wake of this.#drainWaiters.splice(0)) wake();
  }

  /** Stops or resumes reading from the socket (flow control toward the dispatcher). */
  pauseReading(paused: boolean): void {
    this.#pausedByNode = paused;
    this.#applyPause();
  }

  #applyPause(): void {
    const socket = this.#fs?.socket;
    if (socket === undefined) return;
    if (this.#pausedByNode || this.#pausedByInbox) socket.pause();
    else socket.resume();
  }

  /** Drops the current connection; the usual reconnect follows. */
  resetConnection(): void {
    this.#fs?.destroy();
  }

  /** Sends only when connected (control frames that are replayed on reconnect anyway). */
  sendIfOpen(kind: number, header: Uint8Array | null, payload: Uint8Array | null = null): boolean {
    if (this.#state !== LinkState.Open || this.#fs === null) return false;
    this.#fs.send(kind, header, payload);
    return true;
  }

  /**
   * Registers a pending answer (OK, ERROR or REPLY) for id `r`. Call it just
   * before sending the frame: an answer lost with the connection the frame
   * went out on is rejected with CONNECTION_LOST; a frame still waiting in
   * the offline buffer keeps its promise until it is sent.
   */
  expect(r: number, timeoutMs: number, what: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const entry: Pending = {
        resolve,
        reject,
        timer: null,
        sentOn: this.#state === LinkState.Open ? this.#generation : 0,
      };
      if (timeoutMs > 0) {
        entry.timer = setTimeout(() => {
          this.#pending.delete(r);
          reject(new TimeoutError(`${what} timed out after ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.#pending.set(r, entry);
    });
  }

  /** Forgets a pending answer (its frame could not be sent). */
  forget(r: number): void {
    const entry = this.#pending.get(r);
    if (entry?.timer) clearTimeout(entry.timer);
    this.#pending.delete(r);
  }

  /** Sends GOODBYE, writes what is queued and closes. Idempotent. */
  async stop(closeTimeoutMs: number): Promise<void> {
    if (this.#state === LinkState.Stopped) return;
    const wasOpen = this.#state === LinkState.Open;
    this.#state = LinkState.Stopped;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#stopLiveness();
    const closedError = new NodesetError('CLOSED', 'node stopped');
    for (const waiter of this.#openWaiters) waiter.reject(closedError);
    this.#openWaiters = [];
    if (this.#offline.length > 0) {
      this.options.logger.warn(
        { frames: this.#offline.length },
        'node stopped while disconnected: buffered frames not sent',
      );
    }
    this.#offline = [];
    this.#offlineBytes = 0;
    // Messages read but not yet handled are not handled after stop; said, as for buffered frames.
    const unhandled = this.#inboxHeaders.length - this.#inboxAt;
    if (unhandled > 0) this.options.logger.warn({ messages: unhandled }, 'node stopped: messages read but not handled');
    this.#inboxHeaders.length = 0;
    this.#inboxPayloads.length = 0;
    this.#inboxAt = 0;
    const fs = this.#fs;
    if (fs !== null && !fs.closed) {
      const closed = new Promise<void>((resolve) => fs.socket.once('close', () => resolve()));
      if (wasOpen) fs.send(FrameKind.GOODBYE, packHeader({ reason: 'graceful' }));
      fs.end();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, closeTimeoutMs)))]);
      clearTimeout(timer);
      if (!fs.closed) fs.destroy();
    }
    this.#rejectPending(() => true, closedError);
  }

  // ---- FrameSocketHandlers -------------------------------------------------

  /** A chunk was read: messages it deferred go on at the next turn. */
  received(): void {
    this.#lastSeen = Date.now();
    this.#sliceStart = 0;
    this.#sliceCount = 0;
    this.#sliceOver = false;
    if (this.#inboxAt < this.#inboxHeaders.length && !this.#inboxScheduled) {
      this.#inboxScheduled = true;
      setImmediate(this.#deliverInbox);
    }
  }

  /**
   * A MSG: handled at once while the chunk's slice lasts and nothing waits
   * before it; otherwise queued behind what waits (order is kept).
   */
  #message(h: MsgFields, payload: Buffer): void {
    if (this.#inboxAt === this.#inboxHeaders.length) {
      // The clock is read before the 1st, 2nd, 4th, 8th… message of a chunk and
      // then every 64th: a slow handler is noticed after one message, while
      // a chunk of fast ones costs a few clock reads, not one each.
      const n = ++this.#sliceCount;
      if ((n & (n - 1)) === 0 || (n & 63) === 0) {
        const now = performance.now();
        if (this.#sliceStart === 0) this.#sliceStart = now;
        else if (now - this.#sliceStart > HANDLER_SLICE_MS) this.#sliceOver = true;
      }
      if (!this.#sliceOver) {
        this.#events.message(h, payload);
        return;
      }
    }
    this.#inboxHeaders.push(h);
    this.#inboxPayloads.push(payload);
    if (!this.#pausedByInbox) {
      this.#pausedByInbox = true;
      this.#applyPause();
    }
  }

  /**
   * Hands queued messages to the node for at most HANDLER_SLICE_MS; the rest
   * go on at the next turn, after I/O and timers. While a backlog lasts, the
   * dispatcher gets a keep-alive every half heartbeat: this node is busy, not dead.
   */
  #deliverInbox = (): void => {
    this.#inboxScheduled = false;
    const headers = this.#inboxHeaders;
    const payloads = this.#inboxPayloads;
    const start = performance.now();
    let at = this.#inboxAt;
    try {
      while (at < headers.length) {
        this.#events.message(headers[at] as MsgFields, payloads[at] as Buffer);
        at++;
        if (at < headers.length && performance.now() - start > HANDLER_SLICE_MS) break;
      }
    } finally {
      this.#inboxAt = at;
      if (at < headers.length) {
        this.#inboxScheduled = true;
        setImmediate(this.#deliverInbox);
        this.#keepAlive();
      } else {
        // Caught up: read again.
        headers.length = 0;
        payloads.length = 0;
        this.#inboxAt = 0;
        this.#pausedByInbox = false;
        this.#applyPause();
      }
    }
  };

  #keepAlive(): void {
    const fs = this.#fs;
    const hb = this.welcome?.heartbeatMs ?? 0;
    const now = Date.now();
    if (fs === null || this.#state !== LinkState.Open || hb === 0 || now - this.#lastKeepAlive < hb / 2) return;
    this.#lastKeepAlive = now;
    fs.sendAhead(PONG_FRAME);
    fs.flush();
  }

  drained(): void {
    this.#wakeDrainWaiters();
    this.#events.drained();
  }

  frame(kind: number, buf: Buffer, headerStart: number, payloadStart: number, end: number): void {
    try {
      if (kind === FrameKind.MSG) {
        const h =
          decodeMsgHeader(buf, headerStart, payloadStart) ??
          msgFieldsOf(decodeHeader(headerOf(buf, headerStart, payloadStart)));
        this.#message(h, payloadOf(buf, payloadStart, end));
        return;
      }
      const header = headerOf(buf, headerStart, payloadStart);
      switch (kind) {
        case FrameKind.PING:
          // Written now, ahead of the handlers of the messages deferred before it.
          this.#fs?.sendAhead(PONG_FRAME);
          this.#fs?.flush();
          return;
        case FrameKind.PONG:
          return;
        case FrameKind.OK:
          this.#answerOk(decodeHeader(header), payloadOf(buf, payloadStart, end));
          return;
        case FrameKind.REPLY:
          this.#answerReply(decodeHeader(header), payloadOf(buf, payloadStart, end));
          return;
        case FrameKind.ERROR:
          this.#answerError(decodeHeader(header));
          return;
        case FrameKind.WELCOME:
          this.#opened(decodeHeader(header));
          return;
        case FrameKind.GOODBYE:
          this.options.logger.info('dispatcher is going away');
          return;
        default:
          throw new NodesetError('UNKNOWN_FRAME', `unknown frame kind ${kind} from the dispatcher`);
      }
    } catch (err) {
      this.#events.error(err as Error);
    }
  }

  refused(error: NodesetError, fatal: boolean): void {
    this.#events.error(error);
    if (fatal) this.#fs?.destroy();
  }

  closed(_hadError: boolean, error: Error | undefined): void {
    this.#fs = null;
    this.#wakeDrainWaiters();
    this.#stopLiveness();
    if (this.#state === LinkState.Stopped) return;
    const wasOpen = this.#state === LinkState.Open;
    this.#state = LinkState.Connecting;
    const gen = this.#generation;
    this.#rejectPending(
      (p) => p.sentOn === gen,
      new NodesetError('CONNECTION_LOST', 'connection to the dispatcher lost before the answer arrived', {
        cause: error,
      }),
    );
    if (wasOpen) this.#events.lost(error);
    this.#scheduleReconnect();
  }

  // ---- internals -----------------------------------------------------------

  async #connect(): Promise<void> {
    this.#retryTimer = null;
    if (this.#state === LinkState.Stopped) return;
    this.#state = LinkState.Connecting;
    const { host, port } = this.options.address;
    let socket: Awaited<ReturnType<typeof connectTcp>>;
    try {
      const tls = this.options.address.tls ? (this.options.tls ?? {}) : undefined;
      socket = await connectTcp(host, port, this.options.connectTimeoutMs, tls);
    } catch (err) {
      if (this.stopped) return;
      this.options.logger.debug({ err: (err as Error).message }, 'connect failed');
      if (this.#backoff.attempt === 0) this.#events.error(err as Error);
      this.#scheduleReconnect();
      return;
    }
    if (this.stopped) {
      socket.destroy();
      return;
    }
    this.#state = LinkState.Handshake;
    this.#lastSeen = Date.now();
    const fs = new FrameSocket(socket, this, { maxPayloadBytes: NODE_DEFAULTS.maxInboundPayloadBytes });
    this.#fs = fs;
    this.#applyPause();
    const hello: HelloHeader = { v: PROTOCOL_VERSION, name: this.options.name, token: this.options.address.token };
    if (this.options.host !== null) hello.host = this.options.host;
    if (this.options.will) hello.will = this.options.will;
    if (this.options.slowConsumer === 'pushback') hello.slow = 'pushback';
    // The previous connection's token: the same dispatcher process keeps its stream id.
    const resume = this.welcome?.resume ?? null;
    if (resume !== null) hello.resume = resume;
    try {
      fs.send(FrameKind.HELLO, packHeader(hello));
    } catch (err) {
      // A HELLO that cannot be written never will be: start() fails with the reason, no retries.
      for (const waiter of this.#openWaiters.splice(0)) waiter.reject(err as Error);
      this.#events.error(err as Error);
      void this.stop(0);
      return;
    }
    // A dispatcher that accepts but never answers: give up on this attempt.
    this.#startLiveness(this.options.connectTimeoutMs);
  }

  #opened(h: unknown): void {
    if (this.#state !== LinkState.Handshake || this.#fs === null) return;
    if (!isRecord(h) || typeof h.host !== 'string' || !isUint(h.id) || !isUint(h.hb) || !isUint(h.maxPayload)) {
      throw new NodesetError('BAD_FRAME', 'malformed WELCOME');
    }
    this.welcome = {
      host: h.host,
      id: h.id,
      heartbeatMs: h.hb,
      maxPayloadBytes: h.maxPayload,
      resume: typeof h.resume === 'string' ? h.resume : null,
    };
    this.#state = LinkState.Open;
    this.#lastRefusal = null;
    this.#generation++;
    this.#backoff.reset();
    const first = !this.#everOpened;
    this.#everOpened = true;
    // Silence for 2.5 heartbeat intervals means the dispatcher is gone or frozen.
    this.#startLiveness(Math.max(50, Math.round(h.hb * 2.5)));
    this.#events.opened(this.welcome, first);
    // Frames buffered while offline go out after the subscriptions, in order.
    const fs = this.#fs;
    for (const frame of this.#offline) fs.sendRaw(frame);
    this.#offline = [];
    this.#offlineBytes = 0;
    for (const p of this.#pending.values()) if (p.sentOn === 0) p.sentOn = this.#generation;
    for (const waiter of this.#openWaiters) waiter.resolve();
    this.#openWaiters = [];
  }

  /** An OK: its header, with the payload (a QUERY's answer) decoded as `data`. */
  #answerOk(h: unknown, payload: Buffer): void {
    if (!isRecord(h) || !isUint(h.r)) throw new NodesetError('BAD_FRAME', 'malformed OK');
    const entry = this.#take(h.r);
    if (entry === undefined) return;
    if (payload.length === 0) {
      entry.resolve(h);
      return;
    }
    try {
      entry.resolve({ ...h, data: unpackHeader(payload) });
    } catch {
      entry.reject(new NodesetError('BAD_FRAME', 'OK payload is not MessagePack'));
    }
  }

  #answerReply(h: unknown, payload: Buffer): void {
    if (!isRecord(h) || !isUint(h.r) || !isUint(h.ct)) throw new NodesetError('BAD_FRAME', 'malformed REPLY');
    const entry = this.#take(h.r);
    if (entry === undefined) return;
    if (isRecord(h.err)) {
      entry.reject(wireError(h.err));
      return;
    }
    try {
      entry.resolve(decodePayload(h.ct, payload));
    } catch (err) {
      entry.reject(err as Error);
    }
  }

  #answerError(h: unknown): void {
    if (!isRecord(h)) throw new NodesetError('BAD_FRAME', 'malformed ERROR');
    const error = wireError(h);
    const entry = isUint(h.r) ? this.#take(h.r) : undefined;
    if (entry !== undefined) {
      entry.reject(error);
      return;
    }
    if (h.fatal === true && this.#state === LinkState.Handshake) {
      // Refused at the handshake: start() fails with it, unless the refusal is passing
      // (LIMIT_EXCEEDED: the identity's connections, or the address's authentication back-off),
      // when it waits for a later attempt within its timeout. Retrying wrong credentials only
      // lengthens the dispatcher's back-off, so AUTH_FAILED stops the link unless told otherwise.
      this.#lastRefusal = error;
      if (error.code !== 'LIMIT_EXCEEDED') for (const waiter of this.#openWaiters.splice(0)) waiter.reject(error);
      this.#events.error(error);
      if (error.code === 'AUTH_FAILED' && !this.options.retryOnAuthFailure) {
        this.options.logger.error('authentication failed: not retrying (retryOnAuthFailure is off)');
        void this.stop(0);
      }
      return;
    }
    this.#events.error(error);
  }

  #take(r: number): Pending | undefined {
    const entry = this.#pending.get(r);
    if (entry === undefined) return undefined;
    this.#pending.delete(r);
    if (entry.timer !== null) clearTimeout(entry.timer);
    return entry;
  }

  #rejectPending(which: (p: Pending) => boolean, error: Error): void {
    for (const [r, p] of this.#pending) {
      if (!which(p)) continue;
      this.#pending.delete(r);
      if (p.timer !== null) clearTimeout(p.timer);
      p.reject(error);
    }
  }

  #bufferOffline(kind: number, header: Uint8Array | null, payload: Uint8Array | null): void {
    const size = frameSize(header?.length ?? 0, payload?.length ?? 0);
    const o = this.options;
    if (this.#offline.length >= o.offlineMaxMessages || this.#offlineBytes + size > o.offlineMaxBytes) {
      throw new NodesetError(
        'BUFFER_FULL',
        `not connected and the offline buffer is full (${this.#offline.length} frames, ${this.#offlineBytes} bytes; ` +
          `limits ${o.offlineMaxMessages} frames, ${o.offlineMaxBytes} bytes)`,
      );
    }
    const frame = Buffer.allocUnsafe(size);
    writeFrame(frame, 0, kind, header, payload);
    this.#offline.push(frame);
    this.#offlineBytes += size;
  }

  #scheduleReconnect(): void {
    if (this.#state === LinkState.Stopped || this.#retryTimer !== null) return;
    const delay = this.#backoff.next();
    this.options.logger.debug({ delay, attempt: this.#backoff.attempt }, 'reconnecting');
    this.#retryTimer = setTimeout(() => void this.#connect(), delay);
  }

  #startLiveness(silenceMs: number): void {
    this.#stopLiveness();
    const check = Math.max(10, Math.round(silenceMs / 4));
    const judge = () => {
      if (Date.now() - this.#lastSeen <= silenceMs) return;
      this.options.logger.warn({ silentMs: Date.now() - this.#lastSeen }, 'dispatcher silent too long; reconnecting');
      this.#fs?.destroy();
    };
    let lastCheck = Date.now();
    this.#liveness = setInterval(() => {
      // Silence may be this process's own doing: while it does not read (its
      // handlers are behind, or a `block` queue is full) it cannot hear the
      // dispatcher, and while it is stalled (this check runs late) it could not
      // either; when handlers kept the loop busy, judge only after the loop
      // has read what is waiting (setImmediate runs after I/O).
      const now = Date.now();
      const stalled = now - lastCheck > 2 * check;
      lastCheck = now;
      if (this.#pausedByInbox || this.#pausedByNode || stalled) this.#lastSeen = now;
      else if (now - this.#lastSeen > silenceMs) setImmediate(judge);
    }, check);
  }

  #stopLiveness(): void {
    if (this.#liveness !== null) clearInterval(this.#liveness);
    this.#liveness = null;
  }
}

function wireError(h: Record<string, unknown>): NodesetError {
  const error = fromWireError(h, 'INTERNAL', 'error from the dispatcher');
  if (error.code === 'SLOW_CONSUMER' && isUint(h.pending) && isUint(h.limit)) {
    return new SlowConsumerError(error.message, h.pending, h.limit, h.fatal === true);
  }
  return error;
}

/** Link options from the options nodes and collections share. */
export function linkOptions(
  name: string,
  o: ResolvedConnectionOptions,
  logger: Logger,
  will: LinkOptions['will'] = null,
): LinkOptions {
  return {
    name,
    host: o.host,
    address: o.address,
    backoff: o.backoff,
    connectTimeoutMs: o.connectTimeoutMs,
    offlineMaxMessages: o.offlineMaxMessages,
    offlineMaxBytes: o.offlineMaxBytes,
    maxPendingBytes: o.maxPendingBytes,
    tls: o.tls,
    will,
    slowConsumer: o.slowConsumer,
    retryOnAuthFailure: o.retryOnAuthFailure,
    logger,
  };
}
