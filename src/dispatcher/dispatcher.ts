/**
 * The per-host dispatcher, as the composition root: it listens and accepts
 * connections (sessions), runs the heartbeat sweep, publishes presence and
 * last wills, answers queries, and stops. Routing is the router's
 * (router.ts); the protocol of one connection is its session's (session.ts).
 */
import type { Server, Socket } from 'node:net';
import pino, { type Logger } from 'pino';
import { fromWireError, NodesetError } from '../protocol/errors.js';
import { ALL_HOSTS } from '../protocol/event-uri.js';
import type { SubscriberInfo } from '../protocol/frames.js';
import type { NodeInfo } from '../protocol/queries.js';
import { formatDispatcherUrl } from '../protocol/url.js';
import type { Identity } from '../security/auth-config.js';
import { FailureBackoff } from '../security/failure-backoff.js';
import { isLoopback, listenTcp } from '../transport/tcp.js';
import type { Answer, Federation } from './federation.js';
import { FederationGlue } from './federation-glue.js';
import { type DispatcherOptions, type ResolvedDispatcherOptions, resolveDispatcherOptions } from './options.js';
import type { LeaveReason } from './peer.js';
import { PRESENCE_JOINED, PRESENCE_LEFT, presenceOf } from './presence.js';
import { Router } from './router.js';
import { Session, type SessionHost } from './session.js';
import { DispatcherStats, type StatsSnapshot } from './stats.js';
import { StreamIds } from './stream-ids.js';

export type { NodeInfo } from '../protocol/queries.js';

/**
 * The per-host dispatcher: accepts node connections, keeps the routing table
 * they build by subscribing, and routes every publish to its subscribers.
 * It keeps no state on disk: after a restart, nodes re-subscribe.
 */
export class Dispatcher {
  readonly options: ResolvedDispatcherOptions;
  readonly logger: Logger;
  /** Counters since start (see StatsSnapshot for their meaning). */
  readonly stats = new DispatcherStats();
  readonly #router: Router;
  readonly #sessions = new Map<number, Session>();
  /**
   * Failed authentications from one address space out its next attempts: one
   * is checked per interval, 100 ms after the first failure, doubling to 10 s;
   * a success clears it.
   */
  readonly #authBackoff = new FailureBackoff({
    baseMs: 100,
    maxMs: 10_000,
    forgetMs: 10 * 60_000,
    maxAddresses: 10_000,
  });
  /** Open connections per identity name (authentication only). */
  readonly #identityConnections = new Map<string, number>();
  readonly #federation: Federation | null;
  readonly #glue: FederationGlue | null = null;
  readonly #host: SessionHost;
  #server: Server | null = null;
  #address: { host: string; port: number } | null = null;
  #nextSessionId = 1;
  #heartbeat: NodeJS.Timeout | null = null;
  /** When the last heartbeat sweep ran. */
  #lastSweep = 0;
  #stopping: Promise<void> | null = null;

  constructor(options: DispatcherOptions = {}, federation: Federation | null = null) {
    this.options = resolveDispatcherOptions(options);
    const o = this.options;
    this.logger = o.logger ?? pino({ level: 'silent' });
    this.#router = new Router(
      {
        hostName: o.hostName,
        maxPendingBytes: o.maxPendingBytes,
        pushbackHighBytes: o.pushbackHighBytes,
        logger: this.logger,
      },
      this.stats,
      (id) => this.#sessions.get(id),
    );
    this.#federation = federation;
    if (federation !== null) {
      this.#glue = new FederationGlue(o.hostName, this.#router, this.stats, federation, (a) => this.#answered(a));
      this.#router.setRemote(this.#glue);
    }
    this.#host = {
      options: o,
      stats: this.stats,
      logger: this.logger,
      router: this.#router,
      admit: (identity) => this.#admit(identity),
      authWaitMs: (ip, deadline) =>
        Date.now() + this.#authBackoff.waitMs(ip) > deadline ? -1 : this.#authBackoff.takeTurn(ip),
      authenticated: (ip, ok) => {
        if (ok) this.#authBackoff.succeed(ip);
        else this.#authBackoff.fail(ip);
      },
      opened: (session) => this.#opened(session),
      streams: new StreamIds(),
      closed: (session, wasOpen) => this.#closed(session, wasOpen),
      query: (session, what, uri) => this.#query(session, what, uri),
    };
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

  /** Connections open now (handshakes in progress included). */
  get connectionCount(): number {
    return this.#sessions.size;
  }

  /** Subscriptions in the routing table. */
  get subscriptionCount(): number {
    return this.#router.subscriptionCount;
  }

  /** Whether the link to the other hosts is up; null without federation. */
  get federationConnected(): boolean | null {
    return this.#federation === null ? null : this.#federation.connected;
  }

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
      {
        maxConnections: o.maxConnections,
        tlsHandshakeTimeoutMs: o.handshakeTimeoutMs,
        onRefused: () => void this.stats.connectionsRefused++,
        sharedReads: true,
      },
    );
    this.#server = server;
    this.#address = { host, port };
    this.#lastSweep = Date.now();
    // After I/O: what arrived while this process was busy is read before anyone is judged silent.
    this.#heartbeat = setInterval(() => setImmediate(this.#sweep), o.heartbeatIntervalMs);
    if (this.#federation !== null && this.#glue !== null) await this.#federation.start(this.#glue);
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

  /** Disconnects the nodes with this connection id or name (presence reason `kicked`). Returns how many. */
  kick(idOrName: number | string): number {
    let n = 0;
    for (const session of this.#sessions.values()) {
      if (!session.open || (session.id !== idOrName && session.name !== idOrName)) continue;
      session.kick();
      n++;
    }
    return n;
  }

  snapshot(): StatsSnapshot {
    const snap = this.stats.snapshot(this.hostName, this.#sessions.size, this.#router.subscriptionCount);
    snap.federation =
      this.#federation === null
        ? null
        : { connected: this.#federation.connected, hosts: this.#federation.knownHosts() };
    return snap;
  }

  /** Bytes in and out over the dispatcher's life: closed connections plus open ones. */
  bytesTransferred(): { bytesIn: number; bytesOut: number } {
    let bytesIn = this.stats.bytesInClosed;
    let bytesOut = this.stats.bytesOutClosed;
    for (const s of this.#sessions.values()) {
      bytesIn += s.fs.bytesIn;
      bytesOut += s.fs.bytesOut;
    }
    return { bytesIn, bytesOut };
  }

  nodes(): NodeInfo[] {
    const out: NodeInfo[] = [];
    for (const s of this.#sessions.values()) {
      if (!s.open) continue;
      out.push({
        ...presenceOf(s),
        msgsIn: s.msgsIn,
        msgsOut: s.msgsOut,
        bytesIn: s.fs.bytesIn,
        bytesOut: s.fs.bytesOut,
        pendingBytes: s.pendingBytes,
        heartbeatRttMs: s.lastRttMs,
        metrics: parseMetrics(s.latestMetrics),
      });
    }
    return out;
  }

  /** Who would receive a publish to `uri` on this host (in `all` mode, ignoring groups). */
  subscribers(uri: unknown): SubscriberInfo[] {
    return this.#router.subscribers(uri);
  }

  /**
   * Calls `visit` for each queue-group subscription of the open connections:
   * its group, its URI as subscribed, and the names of the nodes behind it
   * (the connection's name, or a collection's members). For the monitor.
   */
  forEachGroupSubscription(visit: (group: string, uri: string, nodes: readonly string[]) => void): void {
    for (const s of this.#sessions.values()) {
      if (!s.open) continue;
      for (const sub of s.subs.values()) {
        if (sub.group !== null) visit(sub.group, sub.uri, sub.nodes ?? [s.name]);
      }
    }
  }

  // ---- internals -----------------------------------------------------------

  async #stop(): Promise<void> {
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    const server = this.#server;
    if (server === null) return;
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    const closing: Promise<void>[] = [];
    for (const session of this.#sessions.values()) {
      closing.push(new Promise((resolve) => session.fs.socket.once('close', () => resolve())));
      session.shutdown();
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.options.closeTimeoutMs);
    });
    await Promise.race([Promise.all(closing), timeout]);
    clearTimeout(timer);
    for (const session of this.#sessions.values()) session.terminate('shutdown');
    await serverClosed;
    await this.#federation?.stop();
    this.logger.info('dispatcher stopped');
  }

  #accept(socket: Socket): void {
    if (this.#stopping !== null || this.#sessions.size >= this.options.maxConnections) {
      this.stats.connectionsRefused++;
      socket.destroy();
      return;
    }
    const session = new Session(this.#host, this.#nextSessionId++, socket);
    this.#sessions.set(session.id, session);
  }

  /**
   * Pings every node and drops those silent past the heartbeat timeout. When
   * this process itself was stalled (the sweep is late by more than an
   * interval), silence is not the nodes' fault: nobody is judged this round.
   */
  readonly #sweep = (): void => {
    if (this.#heartbeat === null) return;
    const now = Date.now();
    const stalled = now - this.#lastSweep > 2 * this.options.heartbeatIntervalMs;
    this.#lastSweep = now;
    for (const session of this.#sessions.values()) session.sweep(now, stalled);
  };

  #admit(identity: Identity): void {
    const limit = identity.maxConnections ?? this.options.maxConnectionsPerIdentity;
    const open = this.#identityConnections.get(identity.name) ?? 0;
    if (open >= limit) {
      throw new NodesetError('LIMIT_EXCEEDED', `identity ${identity.name} already has ${open} connections`);
    }
    this.#identityConnections.set(identity.name, open + 1);
  }

  #opened(session: Session): void {
    this.stats.connectionsOpened++;
    // On the next turn, so the subscriptions sent with the handshake are in the payload.
    setImmediate(() => {
      if (session.open) this.#publishInternal(PRESENCE_JOINED, presenceOf(session));
    });
    this.logger.info(
      { node: session.name, host: session.host, address: session.address, id: session.id },
      'node connected',
    );
  }

  #closed(session: Session, wasOpen: boolean): void {
    if (!this.#sessions.delete(session.id)) return;
    this.stats.bytesInClosed += session.fs.bytesIn;
    this.stats.bytesOutClosed += session.fs.bytesOut;
    if (session.identity !== null) {
      const n = (this.#identityConnections.get(session.identity.name) ?? 1) - 1;
      if (n <= 0) this.#identityConnections.delete(session.identity.name);
      else this.#identityConnections.set(session.identity.name, n);
    }
    if (!wasOpen) return;
    const grant = session.streamGrant;
    if (grant !== null) this.#host.streams.closed(grant, session.name, session.identity?.name ?? null);
    if (session.leaveReason !== 'shutdown') {
      this.#publishInternal(PRESENCE_LEFT, { ...presenceOf(session), reason: session.leaveReason });
      const will = session.will;
      if (will !== null && session.leaveReason !== 'graceful') {
        this.stats.willsPublished++;
        this.#router.publishInternal(will.uri, will.payload, session.name, will.ct);
      }
    }
    this.stats.connectionsClosed++;
    this.logger.info({ node: session.name, id: session.id, reason: session.leaveReason }, 'node disconnected');
  }

  /** Publishes an event of the dispatcher's own, as JSON. */
  #publishInternal(uri: string, message: unknown): void {
    this.#router.publishInternal(uri, Buffer.from(JSON.stringify(message)));
  }

  #query(session: Session, what: unknown, uri: unknown): unknown {
    switch (what) {
      case 'stats':
      case 'nodes':
        // The map of every node and its traffic: only for identities allowed to query.
        if (session.identity !== null && !session.identity.query) {
          throw new NodesetError(
            'PERMISSION_DENIED',
            `identity ${session.identity.name} may not query ${what} (give it query: true in the auth file)`,
          );
        }
        return what === 'stats' ? this.snapshot() : this.nodes();
      case 'subscribers': {
        // Looking up who receives a URI (stream peers) needs the right to publish to it.
        const target = this.#router.resolve(uri);
        if (!session.mayPublish(target.uri.event)) {
          throw new NodesetError(
            'PERMISSION_DENIED',
            `identity ${session.identityName} may not look up ${String(uri)}`,
          );
        }
        const host = target.uri.host;
        if (!target.local && host !== null) {
          if (this.#federation === null)
            throw new NodesetError('NO_ROUTE', `host ${host} is not reachable from ${this.hostName}`);
          return this.#federation.subscribers(host, uri as string);
        }
        if (host === ALL_HOSTS && this.#federation?.connected === true) {
          // `*/name`: this host's subscribers and every other live host's.
          const local = this.#router.subscribers(uri);
          return this.#federation.subscribers(host, uri as string).then((remote) => [...local, ...remote]);
        }
        return this.#router.subscribers(uri);
      }
      default:
        throw new NodesetError(
          'BAD_FRAME',
          `unknown query ${JSON.stringify(what)}: expected stats, nodes or subscribers`,
        );
    }
  }

  /** An answer from another host for one of this host's connections. */
  #answered(a: Answer): void {
    const session = this.#sessions.get(a.conn);
    if (session === undefined || !session.open) return;
    if (a.kind === 'ack') {
      session.ok({ r: a.r, n: a.n ?? 0 });
    } else if (a.kind === 'reply') {
      const payload =
        a.payload === undefined ? null : Buffer.from(a.payload.buffer, a.payload.byteOffset, a.payload.byteLength);
      session.sendReply(a.r, a.ct ?? 0, undefined, payload);
    } else {
      session.error(fromWireError(a, 'INTERNAL', 'error on the remote host'), a.r);
    }
  }
}

function parseMetrics(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export type { LeaveReason, SubscriberInfo };
