import type { Socket } from 'node:net';
import { decodeHeader, headerOf, isRecord, isUint, payloadOf } from '../protocol/decoder.js';
import { NodesetError } from '../protocol/errors.js';
import { type EventUri, isValidName, parseEventUri } from '../protocol/event-uri.js';
import { decodePubHeader, type PubFields, pubFields } from '../protocol/fast-headers.js';
import {
  FrameKind,
  type OkHeader,
  PONG_FRAME,
  PROTOCOL_VERSION,
  packHeader,
  packMsgTail,
  unpackHeader,
  type WelcomeHeader,
} from '../protocol/frames.js';
import { HeaderCache } from '../protocol/header-cache.js';
import type { RouteEntry } from '../protocol/routing-table.js';
import type { Identity } from '../security/auth-config.js';
import { denyFilter, mayPublish, maySubscribe } from '../security/permissions.js';
import { FrameSocket, type FrameSocketHandlers } from '../transport/frame-socket.js';
import type { Dispatcher, Target } from './dispatcher.js';
import { SubscriptionSet } from './subscription-set.js';

/** What few subscriptions carry: kept apart so the common one stays small. */
interface SubscriptionExtras {
  /** The URI as the node sent it, when it differs from the pattern (`host/event`). */
  uri: string | null;
  nodes: string[] | null;
  stream: string | null;
  deny: string[] | null;
}

/** One subscription held by a session. */
export class Subscription implements RouteEntry {
  readonly session: Session;
  readonly sid: number;
  readonly pattern: string;
  readonly wildcard: boolean;
  readonly group: string | null;
  #extras: SubscriptionExtras | null = null;

  constructor(
    session: Session,
    sid: number,
    uri: string,
    target: EventUri,
    group: string | null,
    nodes: string[] | null,
    stream: string | null,
    deny: string[] | null,
  ) {
    this.session = session;
    this.sid = sid;
    this.pattern = target.event;
    this.wildcard = target.wildcard;
    this.group = group;
    const ownUri = uri === target.event ? null : uri;
    if (ownUri !== null || nodes !== null || stream !== null || deny !== null) {
      this.#extras = { uri: ownUri, nodes, stream, deny };
    }
  }

  /** The URI as the node sent it. */
  get uri(): string {
    return this.#extras?.uri ?? this.pattern;
  }

  /** Names of the nodes behind this subscription (a collection's members); null: the connection's name. */
  get nodes(): string[] | null {
    return this.#extras?.nodes ?? null;
  }

  /** Direct-stream address of the subscriber (StreamNode), or null. */
  get stream(): string | null {
    return this.#extras?.stream ?? null;
  }

  /** Deny patterns of the identity that overlap this subscription; matching events are not delivered. */
  get deny(): string[] | null {
    return this.#extras?.deny ?? null;
  }

  /** A repeated SUB for the same sid and URI: new member list and stream address. */
  update(nodes: string[] | null, stream: string | null): void {
    if (this.#extras === null && nodes === null && stream === null) return;
    this.#extras ??= { uri: null, nodes: null, stream: null, deny: null };
    this.#extras.nodes = nodes;
    this.#extras.stream = stream;
  }
}

/** True when a `node@host/…` target names a node behind this subscription. */
export function servesNode(sub: Subscription, node: string): boolean {
  return sub.nodes === null ? sub.session.name === node : sub.nodes.includes(node);
}

const MAX_NODES_PER_SUBSCRIPTION = 10_000;
const STREAM_ADDRESS_RE = /^(tls:)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/;

/** Why a session ended: reported in logs and (later) presence events. */
export type LeaveReason =
  | 'graceful'
  | 'closed'
  | 'heartbeat-timeout'
  | 'slow-consumer'
  | 'kicked'
  | 'protocol-error'
  | 'shutdown';

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

const GROUP_RE = /^[A-Za-z0-9_.:-]{1,255}$/;

/** The PUB header being routed (one at a time: routing is synchronous). */
const PUB = pubFields();

/** A PUB header the fast path declined: validated from its general decoding into `out`. */
function pubFromValue(h: unknown, out: PubFields): void {
  if (
    !Array.isArray(h) ||
    h.length < 4 ||
    typeof h[0] !== 'string' ||
    !isUint(h[1]) ||
    !isUint(h[2]) ||
    !isUint(h[3])
  ) {
    throw new NodesetError('BAD_FRAME', 'PUB header must be [uri, flags, id, contentType, sender?, seq?]');
  }
  if (h.length > 4 && h[4] !== null && typeof h[4] !== 'string') {
    throw new NodesetError('BAD_FRAME', 'PUB sender must be a node name');
  }
  if (h.length > 5 && !isUint(h[5])) throw new NodesetError('BAD_FRAME', 'PUB seq must be an unsigned integer');
  out.uri = h[0];
  out.flags = h[1];
  out.r = h[2];
  out.ct = h[3];
  out.sender = h.length > 4 ? (h[4] as string | null) : null;
  out.seq = h.length > 5 ? (h[5] as number) : 0;
}

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

/** URIs whose MSG tails a connection keeps. */
const TAIL_CACHE_LIMIT = 256;

function packPlainTail(uri: string, sender: string | null, ct: number, mode: number): Buffer {
  return packMsgTail(uri, sender ?? '', ct, 0, 0, mode === 1);
}

/** The dispatcher's side of one node connection. */
export class Session implements FrameSocketHandlers {
  readonly id: number;
  readonly fs: FrameSocket;
  readonly address: string;
  readonly connectedAt = Date.now();
  name = '';
  host = '';
  lastSeen = Date.now();
  msgsIn = 0;
  msgsOut = 0;
  leaveReason: LeaveReason = 'closed';
  /** The authenticated identity; null when the dispatcher has no auth configured. */
  identity: Identity | null = null;
  /** Last will, registered in HELLO. */
  will: LastWill | null = null;
  /** The latest metrics the node published on $nodeset.stats (JSON text). */
  latestMetrics: string | null = null;
  /** When the last PING went out, and the round trip of the last PONG, in ms. */
  pingSentAt = 0;
  lastRttMs: number | null = null;
  /**
   * Slow-consumer policy chosen in HELLO: false is `cut` (past maxPendingBytes
   * the connection is cut off), true is `pushback` (past pushbackHighBytes the
   * publishers feeding it are held until its queue drains).
   */
  pushback = false;
  /** Publishers this (pushback) connection holds back, and since when; null when none. */
  holding: Set<Session> | null = null;
  holdingSince = 0;
  /** How many pushback subscribers hold this connection's reading; it reads again at 0. */
  heldBy = 0;
  /** Told it is falling behind since its queue last drained (the warning is re-armed on drain). */
  slowWarned = false;
  /** Outbound bytes the kernel had taken, and whether some were still queued, at the last sweep. */
  #handedAtSweep = 0;
  #inWriteAtSweep = 0;
  #backlogAtSweep = false;
  /** Requests routed to this session and not answered yet (`conn:r`), in order; bounded. */
  awaitingReply: Set<string> | null = null;
  /** Publish permission by event name, for this identity (bounded). */
  #publishAllowed: Map<string, boolean> | null = null;
  readonly subs = new SubscriptionSet<Subscription>();
  #tails: HeaderCache | null = null;
  /** The URI this session published to last, and its target (see Dispatcher.publish). */
  lastUri = '';
  lastTarget: Target | null = null;
  #state = State.Handshake;
  #dispatcher: Dispatcher;
  #handshakeTimer: NodeJS.Timeout | null;
  #closeTimer: NodeJS.Timeout | null = null;

  constructor(dispatcher: Dispatcher, id: number, socket: Socket) {
    this.#dispatcher = dispatcher;
    this.id = id;
    this.address = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    this.fs = new FrameSocket(socket, this, { maxPayloadBytes: dispatcher.options.maxPayloadBytes });
    this.#handshakeTimer = setTimeout(() => {
      this.#handshakeTimer = null;
      this.fail(new NodesetError('NOT_CONNECTED', 'no HELLO within the handshake timeout'));
    }, dispatcher.options.handshakeTimeoutMs);
  }

  /**
   * Packed MSG header tails for this session's plain publishes (made on the
   * first one); mode 1: routed to a single subscriber.
   */
  get tails(): HeaderCache {
    this.#tails ??= new HeaderCache(packPlainTail, TAIL_CACHE_LIMIT);
    return this.#tails;
  }

  /**
   * Called once per heartbeat sweep: true when, since the last sweep, the
   * peer took bytes off a backlog that the kernel could not take at once. The
   * peer is then reading, so it is alive, even if its PONG is still behind
   * what it has to read. Progress shows as a write that completed (fewer bytes
   * queued for what was sent) or as the write in progress getting shorter.
   */
  readingBacklog(): boolean {
    const socket = this.fs.socket;
    const queued = socket.writableLength;
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
      if (this.#state === State.Handshake) this.#handshake(kind, headerOf(buf, headerStart, payloadStart));
      return;
    }
    this.msgsIn++;
    let r: number | undefined;
    try {
      if (kind === FrameKind.PUB) {
        const h = PUB;
        if (!decodePubHeader(buf, headerStart, payloadStart, h, this.id)) {
          pubFromValue(decodeHeader(headerOf(buf, headerStart, payloadStart)), h);
        }
        r = h.r;
        // The publishing member of a node collection (nil: the connection's name).
        let sender = this.name;
        if (h.sender !== null) {
          if (!isValidName(h.sender)) throw new NodesetError('BAD_FRAME', 'PUB sender must be a node name');
          sender = h.sender;
        }
        this.#dispatcher.publish(this, sender, h.uri, h.flags, r, h.ct, payloadOf(buf, payloadStart, end), h.seq);
        return;
      }
      const header = headerOf(buf, headerStart, payloadStart);
      switch (kind) {
        case FrameKind.PING:
          this.fs.sendConstant(PONG_FRAME);
          return;
        case FrameKind.PONG:
          if (this.pingSentAt !== 0) this.lastRttMs = Date.now() - this.pingSentAt;
          return;
        case FrameKind.SUB: {
          const h = this.#record(header, 'SUB');
          r = isUint(h.r) ? h.r : undefined;
          const declared = this.#subscribe(h, payloadOf(buf, payloadStart, end));
          if (r === undefined) return;
          if (declared === undefined) {
            this.ok({ r });
          } else {
            // Confirmed once other hosts' all-hosts events will reach it too.
            const id = r;
            void declared.then(() => {
              if (this.open) this.ok({ r: id });
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
            this.#dispatcher.removeSubscription(sub);
          }
          if (r !== undefined) this.ok({ r });
          return;
        }
        case FrameKind.REPLY: {
          const h = this.#record(header, 'REPLY');
          if (!isUint(h.r) || !isUint(h.to) || !isUint(h.ct)) {
            throw new NodesetError('BAD_FRAME', 'REPLY needs numeric r, to and ct');
          }
          this.#dispatcher.reply(this, h.to, h.r, h.ct, h.err, payloadOf(buf, payloadStart, end));
          return;
        }
        case FrameKind.QUERY: {
          const h = this.#record(header, 'QUERY');
          if (!isUint(h.r)) throw new NodesetError('BAD_FRAME', 'QUERY needs a numeric r');
          r = h.r;
          if (h.from !== undefined && !isUint(h.from))
            throw new NodesetError('BAD_FRAME', 'QUERY from must be an offset');
          const from = h.from ?? 0;
          const data = this.#dispatcher.query(this, h.what, h.uri);
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
          this.leaveReason = 'graceful';
          this.fs.end();
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
    if (fatal) this.fail(error);
    else this.error(error);
  }

  /** The outbound queue emptied: publishers held for this connection read again; the slow warning re-arms. */
  drained(): void {
    this.slowWarned = false;
    if (this.holding !== null) this.#dispatcher.releaseHeld(this);
  }

  /** Warns the node, once until its queue drains, that it is falling behind (non-fatal SLOW_CONSUMER). */
  warnSlow(pendingBytes: number, limitBytes: number): void {
    this.slowWarned = true;
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

  closed(): void {
    if (this.holding !== null) this.#dispatcher.releaseHeld(this);
    if (this.#handshakeTimer !== null) clearTimeout(this.#handshakeTimer);
    if (this.#closeTimer !== null) clearTimeout(this.#closeTimer);
    this.#handshakeTimer = null;
    this.#closeTimer = null;
    const wasOpen = this.#state === State.Open || this.#state === State.Closing;
    this.#state = State.Closed;
    this.#dispatcher.removeSession(this, wasOpen);
  }

  /** Sends an ERROR frame; the connection stays. */
  error(error: NodesetError, r?: number): void {
    this.#dispatcher.stats.errorsSent++;
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
    this.#dispatcher.stats.errorsSent++;
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
    this.#closeTimer = setTimeout(() => this.fs.destroy(), this.#dispatcher.options.closeTimeoutMs);
  }

  /** Cuts the connection off at once, discarding what is queued. */
  terminate(reason: LeaveReason): void {
    if (this.#state === State.Closed) return;
    this.leaveReason = reason;
    this.#state = State.Closing;
    this.fs.destroy();
  }

  #handshake(kind: number, header: Buffer | null): void {
    if (kind !== FrameKind.HELLO) {
      this.error(new NodesetError('NOT_CONNECTED', `expected HELLO before any other frame, got kind ${kind}`));
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
    if (!isValidName(h.name)) {
      this.fail(new NodesetError('BAD_HANDSHAKE', 'HELLO needs a node name of letters, digits and _.:-'));
      return;
    }
    const auth = this.#dispatcher.options.auth;
    if (auth !== null) {
      const identity = auth.authenticate(h.token);
      if (identity === null) {
        this.#dispatcher.stats.authFailures++;
        this.#dispatcher.logger.warn({ address: this.address, name: h.name }, 'authentication failed');
        this.fail(new NodesetError('AUTH_FAILED', h.token ? 'wrong token' : 'a token is required'));
        return;
      }
      const limit = identity.maxConnections ?? this.#dispatcher.options.maxConnectionsPerIdentity;
      const open = this.#dispatcher.identityConnections.get(identity.name) ?? 0;
      if (open >= limit) {
        this.fail(new NodesetError('LIMIT_EXCEEDED', `identity ${identity.name} already has ${open} connections`));
        return;
      }
      this.identity = identity;
      this.#dispatcher.identityConnections.set(identity.name, open + 1);
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
        if (this.identity !== null && !mayPublish(this.identity.publish, uri.event)) {
          throw new NodesetError(
            'PERMISSION_DENIED',
            `identity ${this.identity.name} may not publish its will to ${will.uri}`,
          );
        }
        const payload = will.payload instanceof Uint8Array ? Buffer.from(will.payload) : Buffer.alloc(0);
        if (payload.length > this.#dispatcher.options.maxPayloadBytes)
          throw new NodesetError('TOO_LARGE', 'last will is too large');
        this.will = { uri: will.uri, ct: will.ct, payload };
      } catch (err) {
        this.fail(err as NodesetError);
        return;
      }
    }
    if (this.#handshakeTimer !== null) clearTimeout(this.#handshakeTimer);
    this.#handshakeTimer = null;
    this.name = h.name;
    this.host = typeof h.host === 'string' && isValidName(h.host) ? h.host : this.#dispatcher.hostName;
    this.#state = State.Open;
    const o = this.#dispatcher.options;
    const welcome: WelcomeHeader = {
      v: PROTOCOL_VERSION,
      host: this.#dispatcher.hostName,
      id: this.id,
      hb: o.heartbeatIntervalMs,
      maxPayload: o.maxPayloadBytes,
    };
    this.fs.send(FrameKind.WELCOME, packHeader(welcome));
    this.#dispatcher.sessionOpened(this);
  }

  /** A SUB; a collection's member names come in `nodes`, or as the payload (a MessagePack list) when many. */
  #subscribe(h: Record<string, unknown>, payload: Buffer): Promise<void> | undefined {
    if (!isUint(h.sid)) throw new NodesetError('BAD_FRAME', 'SUB needs a numeric sid');
    const group = h.group ?? null;
    if (group !== null && (typeof group !== 'string' || !GROUP_RE.test(group))) {
      throw new NodesetError('BAD_FRAME', 'SUB group must be a name of letters, digits and _.:-');
    }
    const uri = parseEventUri(h.uri, true);
    if (uri.node !== null) throw new NodesetError('BAD_URI', `cannot subscribe to a node target: ${String(h.uri)}`);
    if (uri.host !== null && !this.#dispatcher.isLocalHost(uri.host)) {
      throw new NodesetError('NO_ROUTE', `host ${uri.host} is not this dispatcher's (${this.#dispatcher.hostName})`);
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
    const stream = h.stream ?? null;
    if (stream !== null && (typeof stream !== 'string' || !STREAM_ADDRESS_RE.test(stream))) {
      throw new NodesetError('BAD_FRAME', 'SUB stream must be a [tls:]host:port address');
    }
    const existing = this.subs.get(h.sid);
    if (existing !== undefined) {
      // Same sid again: idempotent when identical (node list and stream address updated), otherwise a replacement.
      if (existing.uri === h.uri && existing.group === group) {
        existing.update(nodes as string[] | null, stream);
        return;
      }
      this.#dispatcher.removeSubscription(existing);
      this.subs.delete(h.sid);
    } else if (this.subs.size >= this.#dispatcher.options.maxSubscriptionsPerConnection) {
      throw new NodesetError(
        'LIMIT_EXCEEDED',
        `more than ${this.#dispatcher.options.maxSubscriptionsPerConnection} subscriptions on one connection`,
      );
    }
    const deny = this.identity === null ? null : denyFilter(this.identity.subscribe, uri.event);
    const sub = new Subscription(this, h.sid, h.uri as string, uri, group, nodes as string[] | null, stream, deny);
    this.subs.set(sub);
    return this.#dispatcher.addSubscription(sub);
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
      if (err.code === 'PERMISSION_DENIED') this.#dispatcher.stats.permissionDenials++;
      this.error(err, r);
      return;
    }
    this.#dispatcher.logger.error({ err, session: this.id }, 'internal error while handling a frame');
    this.error(new NodesetError('INTERNAL', 'internal error; the frame was dropped'), r);
  }
}
