/**
 * The dispatcher's side of one node connection: the protocol (frames in and
 * out), the handshake and authentication, the connection's subscriptions and
 * its liveness. Routing is the router's: a session hands it publishes and
 * replies, and serves it as a Peer.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { decodeHeader, headerOf, isRecord, isUint, payloadOf } from '../protocol/decoder.js';
import { NodesetError } from '../protocol/errors.js';
import { isValidName, parseEventUri } from '../protocol/event-uri.js';
import { decodePubHeader, pubCorrelationId, pubFields, pubFieldsOf } from '../protocol/fast-headers.js';
import {
  encodeFrame,
  FrameKind,
  type OkHeader,
  PING_FRAME,
  PONG_FRAME,
  PROTOCOL_VERSION,
  PubFlag,
  packHeader,
  type ReplyHeader,
  STATS_EVENT,
  unpackHeader,
  type WelcomeHeader,
} from '../protocol/frames.js';
import type { Identity } from '../security/auth-config.js';
import { denyFilter, mayPublish, maySubscribe } from '../security/permissions.js';
import { FrameSocket, type FrameSocketHandlers } from '../transport/frame-socket.js';
import { keepable } from '../transport/shared-reads.js';
import type { ResolvedDispatcherOptions } from './options.js';
import { type LeaveReason, type Peer, PeerRouting, Subscription } from './peer.js';
import { FORWARDED, INTERNAL_SENDER, RESERVED_PREFIX, type Router } from './router.js';
import type { DispatcherStats } from './stats.js';
import type { StreamGrant, StreamIds } from './stream-ids.js';
import { SubscriptionSet } from './subscription-set.js';

/** What a session needs of the dispatcher that accepted it. */
export interface SessionHost {
  readonly options: ResolvedDispatcherOptions;
  readonly stats: DispatcherStats;
  readonly logger: Logger;
  readonly router: Router;
  /** Counts a connection of an authenticated identity; throws LIMIT_EXCEEDED past its limit. */
  admit(identity: Identity): void;
  /**
   * How long before this attempt from `ip` may be checked, in ms (0: now),
   * taking its turn; -1 when its turn would come after `deadline` (ms since the epoch).
   */
  authWaitMs(ip: string, deadline: number): number;
  /** The outcome of an authentication from this address (failures lengthen its back-off). */
  authenticated(ip: string, ok: boolean): void;
  /** Stream ids and resume tokens (gap detection keys on the stream id). */
  readonly streams: StreamIds;
  /** The handshake is done. */
  opened(session: Session): void;
  /** The connection is gone (its subscriptions are still listed, for the presence event). */
  closed(session: Session, wasOpen: boolean): void;
  /** Answers a QUERY (or a promise of the answer, from another host). */
  query(session: Session, what: unknown, uri: unknown): unknown;
}

const MAX_NODES_PER_SUBSCRIPTION = 10_000;
const STREAM_ADDRESS_RE = /^(tls:)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/;

/** A message the dispatcher publishes for a node that disappears without a graceful stop. */
export interface LastWill {
  readonly uri: string;
  readonly ct: number;
  readonly payload: Buffer;
}

enum State {
  Handshake = 0,
  Open = 1,
  Closing = 2,
  Closed = 3,
}

/** The PUB header being routed (one at a time: routing is synchronous). */
const PUB = pubFields();

/** Bytes of list items a QUERY answer carries per page. */
const QUERY_PAGE_BYTES = 256 * 1024;

/** Items of `list` from `from` that fit in about `budget` bytes packed (at least one), and where the next page starts. */
function pageOf(list: unknown[], from: number, budget: number): { items: unknown[]; next: number } {
  const items: unknown[] = [];
  let bytes = 0;
  let i = Math.min(from, list.length);
  for (; i < list.length; i++) {
    const size = packHeader(list[i]).length;
    if (items.length > 0 && bytes + size > budget) break;
    items.push(list[i]);
    bytes += size;
  }
  return { items, next: i };
}

export class Session implements FrameSocketHandlers, Peer {
  readonly id: number;
  readonly fs: FrameSocket;
  readonly address: string;
  readonly connectedAt = Date.now();
  name = '';
  host = '';
  lastSeen = Date.now();
  msgsIn = 0;
  leaveReason: LeaveReason = 'closed';
  /** The authenticated identity; null when the dispatcher has no auth configured. */
  identity: Identity | null = null;
  /** Last will, registered in HELLO. */
  will: LastWill | null = null;
  /** The latest metrics the node published on $nodeset.stats (JSON text). */
  latestMetrics: string | null = null;
  /** When the last PING went out, and the round trip of the last PONG, in ms. */
  #pingSentAt = 0;
  lastRttMs: number | null = null;
  /**
   * Slow-consumer policy chosen in HELLO: false is `cut` (past maxPendingBytes
   * the connection is cut off), true is `pushback` (past pushbackHighBytes the
   * publishers feeding it are held until its queue drains).
   */
  pushback = false;
  readonly routing = new PeerRouting();
  /** This connection's stream id and resume token, from the handshake; null before it. */
  streamGrant: StreamGrant | null = null;
  /** Outbound bytes the kernel had taken, and whether some were still queued, at the last sweep. */
  #handedAtSweep = 0;
  #inWriteAtSweep = 0;
  #backlogAtSweep = false;
  /** Member names the SUB being handled left out (see #allowedNodes). */
  #refusedNames: string[] | null = null;
  /** Node names this connection was found allowed to use (bounded). */
  #namesAllowed: Set<string> | null = null;
  /** Publish permission by event name, for this identity (bounded). */
  #publishAllowed: Map<string, boolean> | null = null;
  readonly subs = new SubscriptionSet<Subscription>();
  #state = State.Handshake;
  #joined = false;
  readonly #host: SessionHost;
  readonly #ip: string;
  readonly #router: Router;
  #handshakeTimer: NodeJS.Timeout | null;
  #closeTimer: NodeJS.Timeout | null = null;
  /** An authentication waiting for its turn (see SessionHost.authWaitMs). */
  #authTimer: NodeJS.Timeout | null = null;

  constructor(host: SessionHost, id: number, socket: Socket) {
    this.#host = host;
    this.#router = host.router;
    this.id = id;
    this.#ip = socket.remoteAddress ?? '?';
    this.address = `${this.#ip}:${socket.remotePort ?? 0}`;
    // Before the handshake a frame carries a header and no payload: an unknown peer holds little memory.
    this.fs = new FrameSocket(socket, this, {
      maxPayloadBytes: 0,
      maxSkipBytes: Math.max(16 * 1024 * 1024, 4 * host.options.maxPayloadBytes),
    });
    this.#handshakeTimer = setTimeout(() => {
      this.#handshakeTimer = null;
      this.fail(new NodesetError('NOT_CONNECTED', 'no HELLO within the handshake timeout'));
    }, host.options.handshakeTimeoutMs);
  }

  // ---- Peer (what the router uses) -------------------------------------------

  get pendingBytes(): number {
    return this.fs.pendingBytes;
  }

  get msgsOut(): number {
    return this.routing.msgsOut;
  }

  get identityName(): string | null {
    return this.identity?.name ?? null;
  }

  sendMsg(sid: number, tail: Uint8Array, payload: Uint8Array): void {
    this.fs.sendMsg(sid, tail, payload);
  }

  sendReply(r: number, ct: number, err: { code: string; message: string } | undefined, payload: Buffer | null): void {
    const header: ReplyHeader = err === undefined ? { r, ct } : { r, ct, err };
    this.fs.send(FrameKind.REPLY, packHeader(header), payload);
  }

  holdReading(held: boolean): void {
    if (held) this.fs.socket.pause();
    else if (!this.fs.closed) this.fs.socket.resume();
  }

  wantDrained(): void {
    this.fs.wantDrained();
  }

  /** Warns the node that it is falling behind (non-fatal SLOW_CONSUMER); the router sends it once until it drains. */
  warnSlow(pendingBytes: number, limitBytes: number): void {
    this.fs.send(
      FrameKind.ERROR,
      packHeader({
        code: 'SLOW_CONSUMER',
        message: `falling behind: ${pendingBytes} bytes queued; cut off past ${limitBytes}`,
        pending: pendingBytes,
        limit: limitBytes,
      }),
    );
  }

  // ---- liveness ---------------------------------------------------------------

  /**
   * One heartbeat sweep: a connection silent past the timeout is dropped,
   * a pushback one that held its publishers too long is cut off, the others
   * are pinged. `stalled`: the dispatcher itself was not running on time,
   * so no one is judged silent this round.
   */
  sweep(now: number, stalled = false): void {
    if (!this.open) return;
    // An idle connection gives back its outbound buffers.
    this.fs.trim();
    const o = this.#host.options;
    // A connection working through its backlog is busy, not dead; one whose
    // reading is held back cannot show it is alive, and is not judged.
    if (this.#readingBacklog() || this.#router.isHeld(this) || stalled) this.lastSeen = now;
    const heldMs = this.#router.holdingForMs(this, now);
    if (heldMs > o.maxPushbackMs) {
      this.#host.logger.warn(
        { node: this.name, id: this.id, heldMs },
        'pushback subscriber held its publishers too long; cutting it off',
      );
      this.#router.cutSlowConsumer(this);
      return;
    }
    if (this.lastSeen < now - o.heartbeatTimeoutMs) {
      this.#host.stats.heartbeatFailures++;
      this.#host.logger.warn(
        { node: this.name, id: this.id, silentMs: now - this.lastSeen },
        'node missed its heartbeats; dropping it and its routes',
      );
      this.terminate('heartbeat-timeout');
    } else {
      this.#pingSentAt = now;
      this.fs.sendAhead(PING_FRAME);
    }
  }

  /**
   * True when, since the last sweep, the
   * peer took bytes off a backlog that the kernel could not take at once. The
   * peer is then reading, so it is alive, even if its PONG is still behind
   * what it has to read. Progress shows as a write that completed (fewer bytes
   * queued for what was sent) or as the write in progress getting shorter.
   */
  #readingBacklog(): boolean {
    const socket = this.fs.socket;
    const queued = this.fs.unwrittenBytes;
    const handed = this.fs.bytesOut - queued;
    const inWrite = (socket as { _handle?: { writeQueueSize?: number } })._handle?.writeQueueSize ?? 0;
    const moved =
      this.#backlogAtSweep &&
      (handed > this.#handedAtSweep || (handed === this.#handedAtSweep && inWrite < this.#inWriteAtSweep));
    this.#handedAtSweep = handed;
    this.#inWriteAtSweep = inWrite;
    this.#backlogAtSweep = queued > 0;
    return moved;
  }

  get open(): boolean {
    return this.#state === State.Open;
  }

  received(): void {
    this.lastSeen = Date.now();
  }

  frame(kind: number, buf: Buffer, headerStart: number, payloadStart: number, end: number): void {
    if (this.#state !== State.Open) {
      if (this.#state === State.Handshake) this.#handshake(kind, keepable(headerOf(buf, headerStart, payloadStart)));
      return;
    }
    this.msgsIn++;
    let r: number | undefined;
    try {
      if (kind === FrameKind.PUB) {
        const h = PUB;
        if (!decodePubHeader(buf, headerStart, payloadStart, h, this.id)) {
          const header = decodeHeader(headerOf(buf, headerStart, payloadStart));
          r = pubCorrelationId(header); // a refused header (bad headers map…) is still answered to its r
          pubFieldsOf(header, h);
        }
        r = h.r;
        // The publishing member of a node collection (nil: the connection's name).
        let sender = this.name;
        if (h.sender !== null && h.sender !== sender) {
          if (!isValidName(h.sender)) throw new NodesetError('BAD_FRAME', 'PUB sender must be a node name');
          this.#checkName(h.sender);
          sender = h.sender;
        }
        const payload = payloadOf(buf, payloadStart, end);
        const flags = h.flags;
        const n = this.#router.publish(this, sender, h.uri, flags, r, h.ct, payload, h.seq, h.headers);
        if (n !== FORWARDED) {
          if ((flags & PubFlag.REQUEST) !== 0) {
            if (n === 0) this.error(new NodesetError('NO_RESPONDERS', `no responder for request ${h.uri}`), r);
          } else if ((flags & PubFlag.ACK) !== 0) {
            const dropped = this.#router.lastDropped;
            this.ok(dropped === 0 ? { r, n } : { r, n, dropped });
          }
        }
        if (h.uri.charCodeAt(0) === 36 /* $ */ && h.uri === STATS_EVENT && (flags & PubFlag.ANNOUNCE) === 0)
          this.latestMetrics = payload.toString('utf8');
        return;
      }
      // Control frames are few: their header is copied out of a shared read buffer, so nothing
      // decoded from it (a binary value is a view of its bytes) can change under a later callback.
      const header = keepable(headerOf(buf, headerStart, payloadStart));
      switch (kind) {
        case FrameKind.PING:
          // In order: behind what was routed to this connection before its PING was read (a flush barrier).
          this.fs.sendConstant(PONG_FRAME);
          return;
        case FrameKind.PONG:
          if (this.#pingSentAt !== 0) this.lastRttMs = Date.now() - this.#pingSentAt;
          return;
        case FrameKind.SUB: {
          const h = this.#record(header, 'SUB');
          r = isUint(h.r) ? h.r : undefined;
          this.#refusedNames = null;
          const declared = this.#subscribe(h, payloadOf(buf, payloadStart, end));
          if (r === undefined) return;
          const answer: OkHeader = { r };
          if (this.#refusedNames !== null) answer.refused = this.#refusedNames;
          if (declared === undefined) {
            this.ok(answer);
          } else {
            // Confirmed once other hosts' all-hosts events will reach it too.
            void declared.then(() => {
              if (this.open) this.ok(answer);
            });
          }
          return;
        }
        case FrameKind.UNSUB: {
          const h = this.#record(header, 'UNSUB');
          r = isUint(h.r) ? h.r : undefined;
          if (!isUint(h.sid)) throw new NodesetError('BAD_FRAME', 'UNSUB needs a numeric sid');
          const sub = this.subs.get(h.sid);
          if (sub !== undefined) {
            this.subs.delete(h.sid);
            this.#router.remove(sub);
          }
          if (r !== undefined) this.ok({ r });
          return;
        }
        case FrameKind.REPLY: {
          const h = this.#record(header, 'REPLY');
          if (!isUint(h.r) || !isUint(h.to) || !isUint(h.ct)) {
            throw new NodesetError('BAD_FRAME', 'REPLY needs numeric r, to and ct');
          }
          this.#router.reply(this, h.to, h.r, h.ct, h.err, payloadOf(buf, payloadStart, end));
          return;
        }
        case FrameKind.QUERY: {
          const h = this.#record(header, 'QUERY');
          if (!isUint(h.r)) throw new NodesetError('BAD_FRAME', 'QUERY needs a numeric r');
          r = h.r;
          if (h.from !== undefined && !isUint(h.from))
            throw new NodesetError('BAD_FRAME', 'QUERY from must be an offset');
          const from = h.from ?? 0;
          const data = this.#host.query(this, h.what, h.uri);
          if (data instanceof Promise) {
            const id = r;
            data.then(
              (d) => this.#answerQuery(id, d, from),
              (err: unknown) => this.#refuseFrame(err, id),
            );
          } else {
            this.#answerQuery(r, data, from);
          }
          return;
        }
        case FrameKind.GOODBYE:
          // It leaves: nothing more is routed to it (its routes go now), what is queued is written.
          this.leaveReason = 'graceful';
          // Nothing after GOODBYE is read.
          this.fs.decoder.stop();
          this.#dropRoutes();
          this.close();
          return;
        case FrameKind.HELLO:
          throw new NodesetError('BAD_HANDSHAKE', 'HELLO sent twice');
        default:
          throw new NodesetError('UNKNOWN_FRAME', `unknown frame kind ${kind}`);
      }
    } catch (err) {
      this.#refuseFrame(err, r);
    }
  }

  refused(error: NodesetError, fatal: boolean): void {
    // Before the handshake every refusal is fatal: an unknown peer gets one answer.
    if (fatal || this.#state === State.Handshake) this.fail(error);
    else this.error(error);
  }

  /** The outbound queue emptied: publishers held for this connection read again; the slow warning re-arms. */
  drained(): void {
    this.#router.drained(this);
  }

  closed(): void {
    this.#router.detach(this);
    if (this.#handshakeTimer !== null) clearTimeout(this.#handshakeTimer);
    if (this.#closeTimer !== null) clearTimeout(this.#closeTimer);
    if (this.#authTimer !== null) clearTimeout(this.#authTimer);
    this.#authTimer = null;
    this.#handshakeTimer = null;
    this.#closeTimer = null;
    // Whether the handshake completed: a connection refused at it never joined, so it does not leave.
    const wasOpen = this.#joined;
    this.#state = State.Closed;
    this.#host.closed(this, wasOpen);
    for (const sub of this.subs.values()) this.#router.remove(sub);
    this.subs.clear();
  }

  /** The dispatcher is going away: GOODBYE, then a graceful close. */
  shutdown(): void {
    this.leaveReason = 'shutdown';
    if (this.open) this.fs.send(FrameKind.GOODBYE, packHeader({ reason: 'shutdown' }));
    this.close();
  }

  /** Disconnected by an operator (presence reason `kicked`). */
  kick(): void {
    this.fs.send(FrameKind.GOODBYE, packHeader({ reason: 'kicked' }));
    this.leaveReason = 'kicked';
    this.close();
  }

  /** Sends an ERROR frame; the connection stays. */
  error(error: NodesetError, r?: number): void {
    this.#host.stats.errorsSent++;
    this.fs.send(
      FrameKind.ERROR,
      packHeader(
        r === undefined
          ? { code: error.code, message: error.message }
          : { r, code: error.code, message: error.message },
      ),
    );
  }

  ok(header: OkHeader): void {
    this.fs.send(FrameKind.OK, packHeader(header));
  }

  /** Sends a fatal ERROR frame and closes the connection once it is written. */
  fail(error: NodesetError, reason: LeaveReason = 'protocol-error'): void {
    if (this.#state === State.Closed || this.#state === State.Closing) return;
    this.#host.stats.errorsSent++;
    this.leaveReason = reason;
    this.fs.decoder.stop();
    this.fs.send(FrameKind.ERROR, packHeader({ code: error.code, message: error.message, fatal: true }));
    this.close();
  }

  /**
   * Ends the connection gracefully: queued frames are written first, but a
   * peer that does not read them within the close grace is cut off.
   */
  close(): void {
    if (this.#state === State.Closed || this.#state === State.Closing) return;
    this.#state = State.Closing;
    this.fs.end();
    this.#closeTimer = setTimeout(() => this.#discardQueue(), this.#host.options.closeTimeoutMs);
  }

  /**
   * Cuts the connection off, discarding what is queued (counted). A slow
   * consumer is told first: its SLOW_CONSUMER frame goes ahead of the
   * discarded queue, right after the write its socket holds, and the
   * connection is closed once that is read (or after the close grace).
   */
  terminate(reason: LeaveReason): void {
    if (this.#state === State.Closed) return;
    this.leaveReason = reason;
    this.#state = State.Closing;
    if (reason !== 'slow-consumer') {
      this.#discardQueue();
      return;
    }
    const limit = this.#host.options.maxPendingBytes;
    const pending = this.fs.pendingBytes;
    const notice = encodeFrame(FrameKind.ERROR, {
      code: 'SLOW_CONSUMER',
      message: `cut off: ${pending} bytes queued, past the limit of ${limit}; what was queued is dropped`,
      pending,
      limit,
      fatal: true,
    });
    const lost = this.fs.cutAhead(notice);
    const stats = this.#host.stats;
    stats.dropped += lost.msgs;
    stats.droppedBytes += lost.bytes;
    this.fs.decoder.stop();
    // Its routes go now, not when the notice has been read: nothing more is routed to it.
    this.#dropRoutes();
    // What the socket still holds is written if it reads within the grace; else it is lost, and counted.
    this.#closeTimer ??= setTimeout(() => this.#discardQueue(), this.#host.options.closeTimeoutMs);
  }

  /**
   * Removes this connection's routes at once (it is leaving); publishers it
   * held read again. Its subscriptions stay listed until it closes, for its
   * `$nodeset.node.left` presence.
   */
  #dropRoutes(): void {
    this.#router.detach(this);
    for (const sub of this.subs.values()) this.#router.remove(sub);
  }

  /** Closes the socket at once: what was queued for it and not yet handed to the kernel is lost, and counted. */
  #discardQueue(): void {
    const stats = this.#host.stats;
    stats.dropped += this.fs.pendingMsgs;
    stats.droppedBytes += this.fs.pendingBytes;
    this.fs.destroy();
  }

  #handshake(kind: number, header: Buffer | null): void {
    if (kind !== FrameKind.HELLO) {
      // Fatal: a peer that does not start with HELLO gets one answer, not one per frame.
      this.fail(new NodesetError('NOT_CONNECTED', `expected HELLO before any other frame, got kind ${kind}`));
      return;
    }
    let h: Record<string, unknown>;
    try {
      h = this.#record(header, 'HELLO');
    } catch (err) {
      this.fail(err as NodesetError);
      return;
    }
    if (h.v !== PROTOCOL_VERSION) {
      this.fail(
        new NodesetError(
          'BAD_VERSION',
          `protocol version ${String(h.v)} is not supported (this dispatcher speaks ${PROTOCOL_VERSION})`,
        ),
      );
      return;
    }
    const name = h.name;
    if (!isValidName(name)) {
      this.fail(new NodesetError('BAD_HANDSHAKE', 'HELLO needs a node name of letters, digits and _.:-'));
      return;
    }
    const hello = { ...h, name };
    if (this.#host.options.auth !== null) {
      // This address failed to authenticate lately: its attempts are checked one per back-off
      // interval, so parallel guesses gain nothing. One that cannot be checked in time is refused
      // without taking a turn.
      const wait = this.#host.authWaitMs(this.#ip, this.connectedAt + this.#host.options.handshakeTimeoutMs);
      if (wait !== 0) {
        this.#host.stats.authThrottled++;
        if (wait < 0) {
          this.fail(
            new NodesetError('LIMIT_EXCEEDED', 'too many failed authentications from this address; retry later'),
          );
          return;
        }
        this.#authTimer = setTimeout(() => {
          this.#authTimer = null;
          if (this.#state === State.Handshake) this.#authenticate(hello);
        }, wait);
        return;
      }
    }
    this.#authenticate(hello);
  }

  /** The handshake, once this address may be checked: credentials, then the rest of HELLO. */
  #authenticate(h: Record<string, unknown> & { name: string }): void {
    const auth = this.#host.options.auth;
    if (auth !== null) {
      const identity = auth.authenticate(h.token);
      this.#host.authenticated(this.#ip, identity !== null);
      if (identity === null) {
        this.#host.stats.authFailures++;
        this.#host.logger.warn({ address: this.address, name: h.name }, 'authentication failed');
        this.fail(new NodesetError('AUTH_FAILED', h.token ? 'wrong token' : 'a token is required'));
        return;
      }
      try {
        this.#host.admit(identity);
      } catch (err) {
        this.fail(err as NodesetError);
        return;
      }
      this.identity = identity;
    }
    try {
      this.#checkName(h.name);
    } catch (err) {
      this.fail(err as NodesetError);
      return;
    }
    if (h.slow !== undefined && h.slow !== 'cut' && h.slow !== 'pushback') {
      this.fail(new NodesetError('BAD_HANDSHAKE', 'HELLO slow must be "cut" or "pushback"'));
      return;
    }
    this.pushback = h.slow === 'pushback';
    if (h.will !== undefined && h.will !== null) {
      const will = h.will as Record<string, unknown>;
      try {
        if (!isRecord(will) || typeof will.uri !== 'string' || !isUint(will.ct)) {
          throw new NodesetError('BAD_HANDSHAKE', 'HELLO will must be { uri, ct, payload }');
        }
        const uri = parseEventUri(will.uri, false);
        if (uri.event.startsWith(RESERVED_PREFIX)) {
          throw new NodesetError('PERMISSION_DENIED', `a last will may not publish to ${RESERVED_PREFIX} events`);
        }
        if (this.identity !== null && !mayPublish(this.identity.publish, uri.event)) {
          throw new NodesetError(
            'PERMISSION_DENIED',
            `identity ${this.identity.name} may not publish its will to ${will.uri}`,
          );
        }
        const payload = will.payload instanceof Uint8Array ? Buffer.from(will.payload) : Buffer.alloc(0);
        if (payload.length > this.#host.options.maxPayloadBytes)
          throw new NodesetError('TOO_LARGE', 'last will is too large');
        this.will = { uri: will.uri, ct: will.ct, payload };
      } catch (err) {
        this.fail(err as NodesetError);
        return;
      }
    }
    if (this.#handshakeTimer !== null) clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = null;
    const o = this.#host.options;
    this.name = h.name;
    this.host = typeof h.host === 'string' && isValidName(h.host) ? h.host : o.hostName;
    this.#state = State.Open;
    this.#joined = true;
    this.fs.decoder.setMaxPayloadBytes(o.maxPayloadBytes);
    const grant = this.#host.streams.open(this.id, h.resume, h.name, this.identity?.name ?? null);
    this.streamGrant = grant;
    this.routing.stream = grant.stream;
    const welcome: WelcomeHeader = {
      v: PROTOCOL_VERSION,
      host: o.hostName,
      id: this.id,
      hb: o.heartbeatIntervalMs,
      maxPayload: o.maxPayloadBytes,
      resume: grant.token,
    };
    this.fs.send(FrameKind.WELCOME, packHeader(welcome));
    this.#host.opened(this);
  }

  /** A SUB; a collection's member names come in `nodes`, or as the payload (a MessagePack list) when many. */
  #subscribe(h: Record<string, unknown>, payload: Buffer): Promise<void> | undefined {
    if (!isUint(h.sid)) throw new NodesetError('BAD_FRAME', 'SUB needs a numeric sid');
    const group = h.group ?? null;
    if (group !== null && !isValidName(group)) {
      throw new NodesetError('BAD_FRAME', 'SUB group must be a name of letters, digits and _.:-');
    }
    const uri = parseEventUri(h.uri, true);
    if (uri.node !== null) throw new NodesetError('BAD_URI', `cannot subscribe to a node target: ${String(h.uri)}`);
    if (uri.host !== null && !this.#router.isLocalHost(uri.host)) {
      throw new NodesetError('NO_ROUTE', `host ${uri.host} is not this dispatcher's (${this.#host.options.hostName})`);
    }
    if (this.identity !== null && !maySubscribe(this.identity.subscribe, uri.event)) {
      throw new NodesetError(
        'PERMISSION_DENIED',
        `identity ${this.identity.name} may not subscribe to ${String(h.uri)}`,
      );
    }
    let nodes: unknown = h.nodes ?? null;
    if (payload.length > 0) {
      try {
        nodes = unpackHeader(payload);
      } catch {
        throw new NodesetError('BAD_FRAME', 'SUB payload must be a MessagePack list of node names');
      }
    }
    if (
      nodes !== null &&
      (!Array.isArray(nodes) || nodes.length > MAX_NODES_PER_SUBSCRIPTION || !nodes.every((n) => isValidName(n)))
    ) {
      throw new NodesetError('BAD_FRAME', 'SUB nodes must be a list of node names');
    }
    if (nodes !== null) nodes = this.#allowedNodes(nodes as string[]);
    const stream = h.stream ?? null;
    if (stream !== null && (typeof stream !== 'string' || !STREAM_ADDRESS_RE.test(stream))) {
      throw new NodesetError('BAD_FRAME', 'SUB stream must be a [tls:]host:port address');
    }
    if (h.reply !== undefined && typeof h.reply !== 'boolean')
      throw new NodesetError('BAD_FRAME', 'SUB reply must be a boolean');
    const responds = h.reply === true;
    if (h.slow !== undefined && h.slow !== 'pushback' && h.slow !== 'cut')
      throw new NodesetError('BAD_FRAME', 'SUB slow must be "cut" or "pushback"');
    const pushback = h.slow === 'pushback';
    const existing = this.subs.get(h.sid);
    if (existing !== undefined) {
      // Same sid again: idempotent when identical (node list and stream address updated), otherwise a replacement.
      if (
        existing.uri === h.uri &&
        existing.group === group &&
        existing.responds === responds &&
        existing.pushback === pushback
      ) {
        existing.update(nodes as string[] | null, stream);
        return;
      }
      this.#router.remove(existing);
      this.subs.delete(h.sid);
    } else if (this.subs.size >= this.#host.options.maxSubscriptionsPerConnection) {
      throw new NodesetError(
        'LIMIT_EXCEEDED',
        `more than ${this.#host.options.maxSubscriptionsPerConnection} subscriptions on one connection`,
      );
    }
    const deny = this.identity === null ? null : denyFilter(this.identity.subscribe, uri.event);
    const sub = new Subscription(
      this,
      h.sid,
      h.uri as string,
      uri,
      group,
      nodes as string[] | null,
      stream,
      deny,
      responds,
      pushback,
    );
    this.subs.set(sub);
    return this.#router.add(sub);
  }

  /**
   * A QUERY's answer travels in the OK frame's payload. A list goes in pages
   * of about QUERY_PAGE_BYTES from offset `from`; `next` asks for the rest.
   */
  #answerQuery(r: number, data: unknown, from: number): void {
    if (!this.open) return;
    if (!Array.isArray(data)) {
      this.fs.send(FrameKind.OK, packHeader({ r }), packHeader(data));
      return;
    }
    const page = pageOf(data, from, QUERY_PAGE_BYTES);
    const header: OkHeader = { r };
    if (page.next < data.length) header.next = page.next;
    this.fs.send(FrameKind.OK, packHeader(header), packHeader(page.items));
  }

  #record(header: Buffer | null, what: string): Record<string, unknown> {
    const h = decodeHeader(header);
    if (!isRecord(h)) throw new NodesetError('BAD_FRAME', `${what} header must be a map`);
    return h;
  }

  /**
   * A node name this connection uses (its own, a collection member's, a
   * publish's sender) must be one its identity may use; `dispatcher` is the
   * dispatcher's own. PERMISSION_DENIED otherwise. Checked names are remembered (bounded).
   */
  #checkName(name: string): void {
    if (this.#namesAllowed?.has(name) === true) return;
    if (name === INTERNAL_SENDER) {
      throw new NodesetError('PERMISSION_DENIED', `the node name ${INTERNAL_SENDER} is the dispatcher's own`);
    }
    const auth = this.#host.options.auth;
    const identity = this.identity;
    if (auth !== null && identity !== null && !auth.mayUseName(identity, name)) {
      throw new NodesetError('PERMISSION_DENIED', `identity ${identity.name} may not use the node name ${name}`);
    }
    this.#namesAllowed ??= new Set();
    if (this.#namesAllowed.size >= 1024) this.#namesAllowed.clear();
    this.#namesAllowed.add(name);
  }

  /**
   * A collection's member names, less those its identity may not use: they
   * are named in the OK (`refused`), so only those members fail, not the
   * others sharing the SUB. PERMISSION_DENIED when none is allowed.
   */
  #allowedNodes(nodes: string[]): string[] {
    const allowed: string[] = [];
    let refused: string[] | null = null;
    let firstError: unknown = null;
    for (const n of nodes) {
      try {
        this.#checkName(n);
        allowed.push(n);
      } catch (err) {
        firstError ??= err;
        refused ??= [];
        refused.push(n);
      }
    }
    if (allowed.length === 0 && firstError !== null) throw firstError;
    this.#refusedNames = refused;
    return allowed;
  }

  /** Whether this session's identity may publish to an event name (cached). */
  mayPublish(event: string): boolean {
    if (this.identity === null) return true;
    this.#publishAllowed ??= new Map<string, boolean>();
    const allowed = this.#publishAllowed;
    let ok = allowed.get(event);
    if (ok === undefined) {
      ok = mayPublish(this.identity.publish, event);
      if (allowed.size >= 1024) allowed.clear();
      allowed.set(event, ok);
    }
    return ok;
  }

  #refuseFrame(err: unknown, r: number | undefined): void {
    if (err instanceof NodesetError) {
      if (err.code === 'PERMISSION_DENIED') this.#host.stats.permissionDenials++;
      this.error(err, r);
      return;
    }
    this.#host.logger.error({ err, session: this.id }, 'internal error while handling a frame');
    this.error(new NodesetError('INTERNAL', 'internal error; the frame was dropped'), r);
  }
}
