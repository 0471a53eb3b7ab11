import type { Server, Socket } from 'node:net';
import pino, { type Logger } from 'pino';
import { isErrorCode, NodesetError } from '../protocol/errors.js';
import { ALL_HOSTS, type EventUri, matchesPattern, parseEventUri } from '../protocol/event-uri.js';
import {
  FrameKind,
  PING_FRAME,
  PubFlag,
  packHeader,
  packMsgTail,
  type ReplyHeader,
  STATS_EVENT,
  type SubscriberInfo,
  setSeq,
} from '../protocol/frames.js';
import { Route, RoutingTable } from '../protocol/routing-table.js';
import { formatDispatcherUrl } from '../protocol/url.js';
import { isLoopback, listenTcp } from '../transport/tcp.js';
import { FEDERATION_CONN, type Federation, FederationGlue } from './federation.js';
import { type DispatcherOptions, type ResolvedDispatcherOptions, resolveDispatcherOptions } from './options.js';
import { type NodePresence, PRESENCE_JOINED, PRESENCE_LEFT, presenceOf } from './presence.js';
import { type LeaveReason, Session, type Subscription, servesNode } from './session.js';
import { DispatcherStats, type EventCount, type StatsSnapshot } from './stats.js';

/** A publish target resolved from its URI, cached by URI text with what routing it needs. */
export interface Target {
  readonly uri: EventUri;
  /** False when the URI names another host. */
  readonly local: boolean;
  /** The route of its event, until the subscriptions behind it change (Route.stale). */
  route: Route<Subscription> | null;
  /** Publish counter of its event, for the stats (null until first routed). */
  count: EventCount | null;
}

const TARGET_CACHE_LIMIT = 10_000;
/** Sender name of the dispatcher's own events. */
export const INTERNAL_SENDER = 'dispatcher';

/** Requests a responder may hold unanswered before the oldest is forgotten. */
const MAX_AWAITED_REPLIES = 10_000;

export interface NodeInfo extends NodePresence {
  msgsIn: number;
  msgsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Round trip of the last heartbeat, in ms (null before the first). */
  heartbeatRttMs: number | null;
  /** The latest metrics the node published on $nodeset.stats. */
  metrics: unknown;
}

/**
 * The per-host dispatcher: accepts node connections, keeps the routing table
 * they build by subscribing, and routes every publish to its subscribers.
 * It keeps no state on disk: after a restart, nodes re-subscribe.
 */
export class Dispatcher {
  readonly options: ResolvedDispatcherOptions;
  readonly logger: Logger;
  readonly table = new RoutingTable<Subscription>();
  readonly stats = new DispatcherStats();
  readonly sessions = new Map<number, Session>();
  #server: Server | null = null;
  #address: { host: string; port: number } | null = null;
  #nextSessionId = 1;
  #targets = new Map<string, Target | NodesetError>();
  #heartbeat: NodeJS.Timeout | null = null;
  #stopping: Promise<void> | null = null;
  /** The link to the other hosts' dispatchers, when federated. */
  federation: Federation | null = null;
  /** Queued bytes past which a delivery looks at the slow-consumer rules (warning or pushback); the lower mark. */
  readonly #behindBytes: number;
  /** The connection whose PUB is being routed now (pushback holds it); null otherwise. */
  #publisher: Session | null = null;
  /** The session the last successful delivery went to (for request bookkeeping). */
  #lastDelivered: Session | null = null;

  /** Routing of what arrives from other hosts; null without federation. */
  readonly federationGlue: FederationGlue | null = null;

  constructor(options: DispatcherOptions = {}, federation: Federation | null = null) {
    this.options = resolveDispatcherOptions(options);
    this.#behindBytes = Math.min(this.options.pushbackHighBytes, this.options.maxPendingBytes / 2);
    this.logger = this.options.logger ?? pino({ level: 'silent' });
    if (federation !== null) {
      this.federation = federation;
      this.federationGlue = new FederationGlue(this, federation);
    }
  }

  /**
   * Adds a subscription to the routing table and declares interest to the
   * other hosts; returns a promise while that interest is not yet in effect.
   */
  addSubscription(sub: Subscription): Promise<void> | undefined {
    this.table.add(sub);
    return this.federationGlue?.interestChanged(sub.pattern, 1);
  }

  removeSubscription(sub: Subscription): void {
    if (this.table.remove(sub)) this.federationGlue?.interestChanged(sub.pattern, -1);
  }

  get hostName(): string {
    return this.options.hostName;
  }

  /** The bound address once started. */
  get address(): { host: string; port: number } {
    if (this.#address === null) throw new NodesetError('NOT_CONNECTED', 'dispatcher is not started');
    return this.#address;
  }

  get url(): string {
    const { host, port } = this.address;
    return formatDispatcherUrl(host, port, this.options.tls !== null);
  }

  /** Open connections per identity name (authentication only). */
  readonly identityConnections = new Map<string, number>();

  async start(): Promise<this> {
    if (this.#server !== null) return this;
    const o = this.options;
    if (!isLoopback(o.host) && o.auth === null && !o.insecure) {
      throw new NodesetError(
        'BAD_OPTION',
        `refusing to listen on ${o.host} without authentication: anyone who can reach it could publish and ` +
          'subscribe. Give an auth file (--auth), listen on a loopback address, or pass --insecure.',
      );
    }
    const { server, host, port } = await listenTcp(
      o,
      (socket) => this.#accept(socket),
      o.tls ?? undefined,
      (err) => {
        this.stats.tlsFailures++;
        this.logger.debug({ err: err.message }, 'TLS handshake failed');
      },
    );
    this.#server = server;
    this.#address = { host, port };
    this.#heartbeat = setInterval(() => this.#sweep(), this.options.heartbeatIntervalMs);
    if (this.federation !== null) await this.federation.start(this);
    this.logger.info({ url: this.url, host: this.hostName }, 'dispatcher listening');
    return this;
  }

  /**
   * Stops accepting, tells every node it is going away (GOODBYE), writes what
   * is queued, and closes. Sockets still open after closeTimeoutMs are
   * destroyed. Idempotent; never rejects.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #stop(): Promise<void> {
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    const server = this.#server;
    if (server === null) return;
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    const goodbye = packHeader({ reason: 'shutdown' });
    const closing: Promise<void>[] = [];
    for (const session of this.sessions.values()) {
      session.leaveReason = 'shutdown';
      if (session.open) session.fs.send(FrameKind.GOODBYE, goodbye);
      closing.push(new Promise((resolve) => session.fs.socket.once('close', () => resolve())));
      session.close();
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.options.closeTimeoutMs);
    });
    await Promise.race([Promise.all(closing), timeout]);
    clearTimeout(timer);
    for (const session of this.sessions.values()) session.terminate('shutdown');
    await serverClosed;
    await this.federation?.stop();
    this.logger.info('dispatcher stopped');
  }

  isLocalHost(host: string): boolean {
    return host === this.options.hostName || host === 'localhost' || host === '*';
  }

  // ---- called by sessions -------------------------------------------------

  sessionOpened(session: Session): void {
    this.stats.connectionsOpened++;
    // On the next turn, so the subscriptions sent with the handshake are in the payload.
    setImmediate(() => {
      if (session.open) this.publishInternal(PRESENCE_JOINED, presenceOf(session));
    });
    this.logger.info(
      { node: session.name, host: session.host, address: session.address, id: session.id },
      'node connected',
    );
  }

  removeSession(session: Session, wasOpen: boolean): void {
    if (!this.sessions.delete(session.id)) return;
    const presence = wasOpen ? presenceOf(session) : null;
    this.stats.bytesInClosed += session.fs.bytesIn;
    this.stats.bytesOutClosed += session.fs.bytesOut;
    if (session.identity !== null) {
      const n = (this.identityConnections.get(session.identity.name) ?? 1) - 1;
      if (n <= 0) this.identityConnections.delete(session.identity.name);
      else this.identityConnections.set(session.identity.name, n);
    }
    for (const sub of session.subs.values()) this.removeSubscription(sub);
    session.subs.clear();
    if (wasOpen) {
      if (session.leaveReason !== 'shutdown') {
        this.publishInternal(PRESENCE_LEFT, { ...presence, reason: session.leaveReason });
        const will = session.will;
        if (will !== null && session.leaveReason !== 'graceful') {
          this.stats.willsPublished++;
          this.publishInternal(will.uri, undefined, session.name, will.ct, will.payload);
        }
      }
      this.stats.connectionsClosed++;
      this.logger.info({ node: session.name, id: session.id, reason: session.leaveReason }, 'node disconnected');
    }
  }

  /** Routes one publish. Hot path: no promise, no closure, no re-encode of the payload. */
  publish(
    from: Session,
    sender: string,
    uri: string,
    flags: number,
    r: number,
    ct: number,
    payload: Buffer,
    seq = 0,
  ): void {
    // A connection mostly publishes to the URI it used last (same interned string).
    let target = from.lastTarget;
    if (target === null || from.lastUri !== uri) {
      target = this.resolve(uri);
      from.lastTarget = target;
      from.lastUri = uri;
    }
    const event = target.uri.event;
    // Every node may report its own metrics.
    if (from.identity !== null && !from.mayPublish(event) && event !== STATS_EVENT) {
      throw new NodesetError('PERMISSION_DENIED', `identity ${from.identity.name} may not publish to ${uri}`);
    }
    if (!target.local) {
      this.#forward(from, sender, target.uri.host as string, uri, flags, r, ct, payload, seq);
      return;
    }
    const isRequest = (flags & PubFlag.REQUEST) !== 0;
    const tail = isRequest ? undefined : setSeq(from.tails.get(uri, sender, ct, flags & PubFlag.DIRECT), seq);
    const skip = (flags & PubFlag.LOCAL_DONE) !== 0 ? from : null;
    this.#publisher = from;
    const delivered = this.routeLocal(target, sender, uri, flags, ct, payload, from.id, r, skip, tail);
    this.#publisher = null;
    if (event.charCodeAt(0) === 36 /* $ */ && event === STATS_EVENT) from.latestMetrics = payload.toString('utf8');
    if (isRequest) {
      if (delivered === 0) from.error(new NodesetError('NO_RESPONDERS', `no subscriber for request ${uri}`), r);
    } else if ((flags & PubFlag.ACK) !== 0) {
      from.ok({ r, n: delivered });
    }
    if (target.uri.host === ALL_HOSTS && this.federation !== null) {
      this.federation.broadcast({
        uri,
        from: sender,
        host: this.hostName,
        ct,
        flags: flags & PubFlag.DIRECT,
        payload,
        seq,
      });
    }
  }

  /**
   * Delivers a publish to this host's subscribers; returns how many got it.
   * A request is routed to one subscriber and its reply awaited from it for
   * (replyConn, replyId). `tail` is a cached MSG header tail, when there is one.
   */
  routeLocal(
    target: Target,
    sender: string,
    uri: string,
    flags: number,
    ct: number,
    payload: Buffer,
    replyConn: number,
    replyId: number,
    skip: Session | null,
    tail?: Buffer,
    seq = 0,
  ): number {
    const event = target.uri.event;
    this.stats.publishes++;
    const route = this.#routeOf(target);
    const isRequest = (flags & PubFlag.REQUEST) !== 0;
    const single = (flags & (PubFlag.DIRECT | PubFlag.REQUEST)) !== 0;
    const msgTail =
      tail ?? packMsgTail(uri, sender, ct, isRequest ? replyConn : 0, isRequest ? replyId : 0, single, seq);
    let delivered = 0;
    const node = target.uri.node;
    if (single) {
      const sub = node === null ? route.pickOne() : pickNamed(route, node);
      if (sub !== undefined) {
        if (this.#deliver(sub, event, msgTail, payload)) delivered = 1;
        else
          delivered = this.#deliverToAnother(
            node === null ? route.all : route.all.filter((s) => servesNode(s, node)),
            sub,
            event,
            msgTail,
            payload,
          );
      }
    } else if (node === null) {
      delivered = this.#fanOut(route, event, msgTail, payload, skip);
    } else {
      for (const sub of route.all) {
        if (servesNode(sub, node) && this.#deliver(sub, event, msgTail, payload)) delivered++;
      }
    }
    if (isRequest && delivered > 0) this.#awaitReply(this.#lastDelivered as Session, replyConn, replyId);
    return delivered;
  }

  /** A publish for another host: through the federation, or NO_ROUTE. Its ack or reply comes back from there. */
  #forward(
    from: Session,
    sender: string,
    host: string,
    uri: string,
    flags: number,
    r: number,
    ct: number,
    payload: Buffer,
    seq: number,
  ): void {
    const federation = this.federation;
    if (federation === null) throw new NodesetError('NO_ROUTE', `host ${host} is not reachable from ${this.hostName}`);
    if (!federation.connected) {
      this.stats.federationRejected++;
      throw new NodesetError('NO_ROUTE', `host ${host} is not reachable: the federation link is down`);
    }
    const answered = (flags & (PubFlag.ACK | PubFlag.REQUEST)) !== 0;
    federation.forward(host, {
      uri,
      from: sender,
      host: this.hostName,
      ct,
      flags,
      payload,
      seq,
      ...(answered ? { conn: from.id, r } : {}),
    });
  }

  /**
   * Forwards a responder's REPLY to the requesting connection: only for a
   * request this dispatcher routed to that responder, so no connection can
   * forge answers to another's requests.
   */
  reply(from: Session, toSession: number, r: number, ct: number, err: unknown, payload: Buffer): void {
    if (from.awaitingReply?.delete(`${toSession}:${r}`) !== true) {
      throw new NodesetError('BAD_FRAME', `REPLY to a request this connection did not receive (${toSession}:${r})`);
    }
    if (toSession === FEDERATION_CONN) {
      this.federationGlue?.reply(r, ct, wireErrorOf(err), payload);
      return;
    }
    const requester = this.sessions.get(toSession);
    if (requester === undefined || !requester.open) {
      this.stats.repliesDropped++;
      return;
    }
    const header: ReplyHeader = { r, ct };
    if (typeof err === 'object' && err !== null) {
      const e = err as Record<string, unknown>;
      header.err = {
        code: isErrorCode(e.code) ? e.code : 'HANDLER_ERROR',
        message: typeof e.message === 'string' ? e.message : 'handler failed',
      };
    }
    requester.fs.send(FrameKind.REPLY, packHeader(header), payload);
  }

  query(from: Session, what: unknown, uri: unknown): unknown {
    switch (what) {
      case 'stats':
        return this.snapshot();
      case 'nodes':
        return this.nodes();
      case 'subscribers': {
        // Looking up who receives a URI (stream peers) needs the right to publish to it.
        const target = this.resolve(uri);
        if (from.identity !== null && !from.mayPublish(target.uri.event)) {
          throw new NodesetError('PERMISSION_DENIED', `identity ${from.identity.name} may not look up ${String(uri)}`);
        }
        const host = target.uri.host;
        if (!target.local && host !== null) {
          if (this.federation === null)
            throw new NodesetError('NO_ROUTE', `host ${host} is not reachable from ${this.hostName}`);
          return this.federation.subscribers(host, uri as string);
        }
        return this.subscribers(uri);
      }
      default:
        throw new NodesetError(
          'BAD_FRAME',
          `unknown query ${JSON.stringify(what)}: expected stats, nodes or subscribers`,
        );
    }
  }

  snapshot(): StatsSnapshot {
    const snap = this.stats.snapshot(this.hostName, this.sessions.size, this.table.size);
    snap.federation = this.federation === null ? null : { connected: this.federation.connected };
    return snap;
  }

  nodes(): NodeInfo[] {
    const out: NodeInfo[] = [];
    for (const s of this.sessions.values()) {
      if (!s.open) continue;
      out.push({
        ...presenceOf(s),
        msgsIn: s.msgsIn,
        msgsOut: s.msgsOut,
        bytesIn: s.fs.bytesIn,
        bytesOut: s.fs.bytesOut,
        heartbeatRttMs: s.lastRttMs,
        metrics: parseMetrics(s.latestMetrics),
      });
    }
    return out;
  }

  /** Who would receive a publish to `uri` (in `all` mode, ignoring groups). */
  subscribers(uri: unknown): SubscriberInfo[] {
    const target = this.resolve(uri);
    if (!target.local) return [];
    const node = target.uri.node;
    return this.table
      .match(target.uri.event)
      .all.filter((sub) => node === null || servesNode(sub, node))
      .map((sub) => ({
        node: sub.session.name,
        nodes: sub.nodes ?? [sub.session.name],
        host: sub.session.host,
        uri: sub.uri,
        group: sub.group,
        stream: sub.stream,
      }));
  }

  // ---- internals -----------------------------------------------------------

  /** `all` mode: every ungrouped subscription (but those of `skip`), and one member of each queue group. */
  #fanOut(route: Route<Subscription>, event: string, tail: Buffer, payload: Buffer, skip: Session | null): number {
    let delivered = 0;
    for (const sub of route.ungrouped) {
      if (sub.session !== skip && this.#deliver(sub, event, tail, payload)) delivered++;
    }
    for (const group of route.groups) {
      const member = Route.pickMember(group);
      if (this.#deliver(member, event, tail, payload)) delivered++;
      else delivered += this.#deliverToAnother(group.members, member, event, tail, payload);
    }
    return delivered;
  }

  /**
   * The one chosen for a single delivery (`direct`, a request, a queue group)
   * refused it (a deny rule, a closing or slow connection): the first of the
   * others that takes it gets it. Off the hot path: only after a refusal.
   */
  #deliverToAnother(
    candidates: readonly Subscription[],
    refused: Subscription,
    event: string,
    tail: Buffer,
    payload: Buffer,
  ): number {
    for (const sub of candidates) {
      if (sub !== refused && this.#deliver(sub, event, tail, payload)) return 1;
    }
    return 0;
  }

  /**
   * Publishes an event of the dispatcher's own (presence, last wills): JSON,
   * `all` mode, from the sender name `dispatcher`, or as `sender`.
   */
  publishInternal(uri: string, message: unknown, sender = INTERNAL_SENDER, ct = 0, bytes?: Buffer): number {
    const target = this.resolve(uri);
    if (!target.local) return 0;
    const payload = bytes ?? Buffer.from(JSON.stringify(message));
    this.stats.publishes++;
    const route = this.#routeOf(target);
    return this.#fanOut(route, target.uri.event, packMsgTail(uri, sender, ct, 0, 0, false), payload, null);
  }

  /** The route of a target's event, counting the publish. */
  #routeOf(target: Target): Route<Subscription> {
    let count = target.count;
    if (count === null) {
      count = this.stats.eventCount(target.uri.event);
      target.count = count;
    }
    count.n++;
    let route = target.route;
    if (route === null || route.stale) {
      route = this.table.match(target.uri.event);
      target.route = route;
    }
    return route;
  }

  /** Disconnects the nodes with this connection id or name (presence reason `kicked`). Returns how many. */
  kick(idOrName: number | string): number {
    let n = 0;
    for (const session of this.sessions.values()) {
      if (!session.open || (session.id !== idOrName && session.name !== idOrName)) continue;
      session.fs.send(FrameKind.GOODBYE, packHeader({ reason: 'kicked' }));
      session.leaveReason = 'kicked';
      session.close();
      n++;
    }
    return n;
  }

  #awaitReply(responder: Session, requester: number, r: number): void {
    responder.awaitingReply ??= new Set();
    const pending = responder.awaitingReply;
    if (pending.size >= MAX_AWAITED_REPLIES) {
      // The oldest request never got its answer; the requester's own timeout reports it.
      const oldest = pending.values().next().value;
      if (oldest !== undefined) pending.delete(oldest);
    }
    pending.add(`${requester}:${r}`);
  }

  #deliver(sub: Subscription, event: string, tail: Buffer, payload: Buffer): boolean {
    const session = sub.session;
    if (!session.open) return false;
    if (sub.deny !== null && deniedBy(sub.deny, event)) return false;
    const pending = session.fs.pendingBytes;
    if (pending > this.options.maxPendingBytes) {
      this.#slowConsumer(session);
      return false;
    }
    session.fs.sendMsg(sub.sid, tail, payload);
    this.#lastDelivered = session;
    session.msgsOut++;
    this.stats.deliveries++;
    if (pending > this.#behindBytes) this.#fallingBehind(session, pending);
    return true;
  }

  /**
   * Past the lower of the two marks: a pushback connection past its high-water
   * mark holds its publisher; a cut one past half its limit is warned (once until it drains).
   */
  #fallingBehind(session: Session, pending: number): void {
    if (session.pushback) {
      if (this.#publisher !== null && pending > this.options.pushbackHighBytes) this.#hold(session, this.#publisher);
    } else if (!session.slowWarned && pending > this.options.maxPendingBytes / 2) {
      session.warnSlow(pending, this.options.maxPendingBytes);
      this.stats.slowWarnings++;
    }
  }

  /** `pushback`: stop reading from `publisher` until `subscriber`'s outbound queue has drained. */
  #hold(subscriber: Session, publisher: Session): void {
    if (subscriber.holding === null) {
      subscriber.holding = new Set();
      subscriber.holdingSince = Date.now();
    } else if (subscriber.holding.has(publisher)) {
      return;
    }
    subscriber.holding.add(publisher);
    if (publisher.heldBy++ === 0) {
      publisher.fs.socket.pause();
      this.stats.pushbacks++;
    }
  }

  /** A pushback subscriber drained (or went away): the publishers it held read again, unless another holds them. */
  releaseHeld(subscriber: Session): void {
    const held = subscriber.holding;
    if (held === null) return;
    subscriber.holding = null;
    for (const publisher of held) {
      if (--publisher.heldBy === 0 && !publisher.fs.closed) publisher.fs.socket.resume();
    }
  }

  #slowConsumer(session: Session): void {
    this.stats.slowConsumers++;
    this.stats.dropped++;
    this.logger.warn(
      { node: session.name, id: session.id, pending: session.fs.pendingBytes },
      'slow consumer disconnected',
    );
    // Its queue is over the limit: an ERROR frame would queue behind it, so cut it off.
    session.terminate('slow-consumer');
  }

  /** The target of a URI (cached); throws BAD_URI for a malformed one. */
  resolve(uri: unknown): Target {
    if (typeof uri === 'string') {
      const cached = this.#targets.get(uri);
      if (cached !== undefined) {
        if (cached instanceof NodesetError) throw cached;
        return cached;
      }
    }
    let result: Target | NodesetError;
    try {
      const parsed = parseEventUri(uri, false);
      result = { uri: parsed, local: parsed.host === null || this.isLocalHost(parsed.host), route: null, count: null };
    } catch (err) {
      if (!(err instanceof NodesetError)) throw err;
      result = err;
    }
    if (typeof uri === 'string') {
      if (this.#targets.size >= TARGET_CACHE_LIMIT) this.#targets.clear();
      this.#targets.set(uri, result);
    }
    if (result instanceof NodesetError) throw result;
    return result;
  }

  #accept(socket: Socket): void {
    if (this.#stopping !== null || this.sessions.size >= this.options.maxConnections) {
      this.stats.connectionsRefused++;
      socket.destroy();
      return;
    }
    const session = new Session(this, this.#nextSessionId++, socket);
    this.sessions.set(session.id, session);
  }

  /** Pings every node and drops those silent past the heartbeat timeout. */
  #sweep(): void {
    const now = Date.now();
    const deadline = now - this.options.heartbeatTimeoutMs;
    for (const session of this.sessions.values()) {
      if (!session.open) continue;
      // A connection working through its backlog is busy, not dead; one whose
      // reading is held back cannot show it is alive, and is not judged.
      if (session.readingBacklog() || session.heldBy > 0) session.lastSeen = now;
      if (session.holding !== null && now - session.holdingSince > this.options.maxPushbackMs) {
        this.logger.warn(
          { node: session.name, id: session.id, heldMs: now - session.holdingSince },
          'pushback subscriber held its publishers too long; cutting it off',
        );
        this.#slowConsumer(session);
        continue;
      }
      if (session.lastSeen < deadline) {
        this.stats.heartbeatFailures++;
        this.logger.warn(
          { node: session.name, id: session.id, silentMs: now - session.lastSeen },
          'node missed its heartbeats; dropping it and its routes',
        );
        session.terminate('heartbeat-timeout');
      } else {
        session.pingSentAt = now;
        session.fs.sendConstant(PING_FRAME);
      }
    }
  }
}

function pickNamed(route: Route<Subscription>, node: string): Subscription | undefined {
  return route.all.find((sub) => servesNode(sub, node));
}

function wireErrorOf(err: unknown): { code: string; message: string } | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as Record<string, unknown>;
  return {
    code: isErrorCode(e.code) ? e.code : 'HANDLER_ERROR',
    message: typeof e.message === 'string' ? e.message : 'handler failed',
  };
}

function parseMetrics(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function deniedBy(patterns: string[], event: string): boolean {
  for (const p of patterns) if (matchesPattern(p, event)) return true;
  return false;
}

export type { LeaveReason, SubscriberInfo };
