/**
 * Federation over NATS: the link between this host's dispatcher and the
 * others', implementing the Federation contract of dispatcher/federation.ts.
 */
import { readFileSync } from 'node:fs';
import { type ConnectionOptions, connect, credsAuthenticator, type NatsConnection, type Subscription } from 'nats';
import pino, { type Logger } from 'pino';
import {
  type Answer,
  type Envelope,
  type Federation,
  type FederationHost,
  HOST_JOINED,
  HOST_LEFT,
} from '../dispatcher/federation.js';
import { NodesetError } from '../protocol/errors.js';
import { packr, type SubscriberInfo } from '../protocol/frames.js';
import { type Announcement, HostDirectory } from './host-directory.js';

/**
 * NATS subjects (see docs/federation.md):
 *   nodeset.h.<host>           publishes for one host (B/event, node@B/event)
 *   nodeset.all.<event>        all-hosts publishes (*\/event); each dispatcher
 *                              subscribes only to the patterns its nodes want
 *   nodeset.r.<host>           answers (acks, replies, errors) for a host
 *   nodeset.q.<host>           who-subscribes queries (NATS request/reply)
 *   nodeset.id.<host>          "is a dispatcher of this name alive?" (request/reply)
 *   nodeset.dir                announcements and heartbeats of every dispatcher
 */
export const SUBJECT_PREFIX = 'nodeset';

export interface NatsFederationOptions {
  /** NATS server URLs (`nats://host:port`). */
  servers: string[];
  logger?: Logger;
  /** Timeout of a who-subscribes query to another host, in ms. Default 2000. */
  queryTimeoutMs?: number;
  /** Interval of this dispatcher's announcement on the directory, in ms. Default 1000. */
  heartbeatIntervalMs?: number;
  /** A host silent for this long has left the directory, in ms. Default 3500. */
  hostTimeoutMs?: number;
  /** NATS client pings, in ms: a server that answers none of `maxPingOut` is stale. Default 2000. */
  pingIntervalMs?: number;
  /** Unanswered NATS pings before the link counts as lost. Default 2. */
  maxPingOut?: number;
  /** Bytes sent towards NATS and not yet confirmed by the server past which cross-host publishes get BUFFER_FULL. Default 32 MiB. */
  maxPendingBytes?: number;
  /** How long start() waits for NATS before connecting in the background, in ms. Default 1500. */
  startWaitMs?: number;
  /** NATS credentials: user and password, a token, or a creds file (JWT and NKey seed). */
  user?: string;
  pass?: string;
  token?: string;
  credsFile?: string;
  /** TLS for the NATS link: a CA to verify the server, and a client certificate and key. */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Version announced to the other hosts. */
  version?: string;
}

/** Option defaults, in ms. */
export const DEFAULT_FEDERATION_OPTIONS = {
  queryTimeoutMs: 2000,
  heartbeatIntervalMs: 1000,
  hostTimeoutMs: 3500,
  pingIntervalMs: 2000,
  maxPingOut: 2,
  startWaitMs: 1500,
  maxPendingBytes: 32 * 1024 * 1024,
} as const;

/** Pause between attempts to reach NATS for the first time, in ms. */
const FIRST_CONNECT_RETRY_MS = 250;
/** How long the start-up check for a live dispatcher of the same name waits for an answer, in ms. */
const DUPLICATE_CHECK_MS = 500;

/** Recent all-hosts message ids, to deliver once when several local patterns match one event. */
const SEEN_LIMIT = 4096;
/** Longest a new subscription waits for its all-hosts interest to reach the other hosts' NATS servers. */
const INTEREST_WAIT_MS = 1000;

/**
 * Dispatcher federation over NATS. Interest-based: a dispatcher subscribes to
 * its own host's subjects and to the all-hosts patterns its nodes subscribe
 * to, nothing else. The NATS client re-declares every subscription by itself
 * when the connection comes back; while it is away, cross-host publishes are
 * refused with NO_ROUTE (local traffic is untouched). Every dispatcher keeps
 * a directory of the live hosts (nodeset.dir): a publish for a host not in
 * it is refused at once.
 */
export class NatsFederation implements Federation {
  readonly options: NatsFederationOptions;
  readonly logger: Logger;
  #nc: NatsConnection | null = null;
  #connected = false;
  #stopped = false;
  #host: FederationHost | null = null;
  readonly #interest = new Map<string, Subscription>();
  readonly #seen = new Set<string>();
  #seq = 0;
  readonly #id = Math.random().toString(36).slice(2);
  readonly #startedAt = Date.now();
  #directory: HostDirectory | null = null;
  #heartbeat: NodeJS.Timeout | null = null;
  #announcePending = false;
  /** Bytes handed to NATS that the server has not confirmed (by answering a flush) yet. */
  #unconfirmedBytes = 0;
  #confirming = false;
  readonly #maxUnconfirmed: number;

  constructor(options: NatsFederationOptions) {
    this.options = options;
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.#maxUnconfirmed = options.maxPendingBytes ?? DEFAULT_FEDERATION_OPTIONS.maxPendingBytes;
  }

  get connected(): boolean {
    return this.#connected;
  }

  get maxPayload(): number {
    return this.#nc?.info?.max_payload ?? 0;
  }

  /** The live hosts this dispatcher knows, itself excluded, with what they announced. */
  get hosts(): Announcement[] {
    return [...(this.#directory?.hosts.values() ?? [])].map((e) => e.announcement);
  }

  knownHosts(): string[] {
    return [...(this.#directory?.hosts.keys() ?? [])].sort();
  }

  knows(host: string): boolean {
    return this.#directory?.knows(host) ?? false;
  }

  pickHost(event: string): string | null {
    return this.#directory?.pickHost(event) ?? null;
  }

  groupHosts(event: string): Map<string, string[]> | null {
    return this.#directory?.groupHosts(event) ?? null;
  }

  groupsChanged(): void {
    this.#announceSoon();
  }

  /**
   * Connects to NATS. Waits up to startWaitMs: if NATS is there, a live
   * dispatcher of the same host name makes start() reject; if not, the link
   * connects in the background (and checks then) while local traffic runs.
   */
  async start(dispatcher: FederationHost): Promise<void> {
    this.#host = dispatcher;
    this.#directory = new HostDirectory(dispatcher.hostName, this.#id);
    this.logger.info({ servers: this.options.servers, host: dispatcher.hostName }, 'federation connecting');
    const linked = this.#link(dispatcher);
    const wait = this.options.startWaitMs ?? DEFAULT_FEDERATION_OPTIONS.startWaitMs;
    let timer: NodeJS.Timeout | undefined;
    const waited = await Promise.race([
      linked.then(() => 'linked' as const),
      new Promise<'waiting'>((resolve) => {
        timer = setTimeout(() => resolve('waiting'), wait);
      }),
    ]);
    clearTimeout(timer);
    if (waited === 'waiting') {
      this.logger.warn({ servers: this.options.servers }, 'NATS not reachable yet; federation keeps connecting');
      linked.catch((err: unknown) => {
        this.logger.error({ err }, 'federation not started');
      });
    }
  }

  async #link(dispatcher: FederationHost): Promise<void> {
    const host = dispatcher.hostName;
    const nc = await this.#firstConnect(host);
    if (nc === null) return; // stopped before NATS was reached
    if (this.#stopped) {
      await nc.close();
      return;
    }
    this.#nc = nc;
    try {
      await this.#refuseDuplicate(nc, host);
    } catch (err) {
      this.#nc = null;
      await nc.close();
      throw err;
    }
    void this.#watch(nc);
    nc.subscribe(`${SUBJECT_PREFIX}.id.${host}`, {
      callback: (err, msg) => {
        if (err === null) msg.respond(packr.pack(this.#announcement()));
      },
    });
    nc.subscribe(`${SUBJECT_PREFIX}.dir`, {
      callback: (err, msg) => {
        if (err === null) this.#announced(packr.unpack(msg.data) as Announcement);
      },
    });
    nc.subscribe(`${SUBJECT_PREFIX}.h.${host}`, {
      callback: (err, msg) => {
        if (err === null) this.#arrived(msg.data);
      },
    });
    nc.subscribe(`${SUBJECT_PREFIX}.r.${host}`, {
      callback: (err, msg) => {
        if (err === null) dispatcher.answered(packr.unpack(msg.data) as Answer);
      },
    });
    const notices = `${SUBJECT_PREFIX}.n.${host}.`;
    nc.subscribe(`${notices}>`, {
      callback: (err, msg) => {
        if (err !== null || msg.headers?.code !== 503) return;
        const [conn, r, ...rest] = msg.subject.slice(notices.length).split('.');
        const to = rest.join('.');
        dispatcher.answered({
          conn: Number(conn),
          r: Number(r),
          kind: 'error',
          code: 'NO_ROUTE',
          message: `host ${to} is not reachable: no live dispatcher of that name subscribes`,
        });
      },
    });
    nc.subscribe(`${SUBJECT_PREFIX}.q.${host}`, {
      callback: (err, msg) => {
        if (err !== null) return;
        let answer: SubscriberInfo[] | { error: string };
        try {
          answer = dispatcher.subscribers((packr.unpack(msg.data) as { uri: string }).uri);
        } catch (e) {
          answer = { error: (e as Error).message };
        }
        msg.respond(packr.pack(answer));
      },
    });
    for (const pattern of dispatcher.patterns()) this.interest(pattern, true);
    this.#announce(true);
    await nc.flush();
    this.#connected = true;
    const every = this.options.heartbeatIntervalMs ?? DEFAULT_FEDERATION_OPTIONS.heartbeatIntervalMs;
    this.#heartbeat = setInterval(() => this.#beat(), every);
    this.#heartbeat.unref();
    this.logger.info({ servers: this.options.servers, host, maxPayload: this.maxPayload }, 'federation connected');
  }

  /**
   * Tries the servers until one answers, or until stop(). The retries are
   * ours rather than the client's (waitOnFirstConnect), so that stopping a
   * dispatcher that never reached NATS leaves no timer behind.
   */
  async #firstConnect(host: string): Promise<NatsConnection | null> {
    let logged = false;
    while (!this.#stopped) {
      try {
        return await connect(this.#connectOptions(host));
      } catch (err) {
        if (!logged) this.logger.debug({ err }, 'NATS not reachable; retrying');
        logged = true;
        await new Promise<void>((resolve) => setTimeout(resolve, FIRST_CONNECT_RETRY_MS).unref());
      }
    }
    return null;
  }

  #connectOptions(host: string): ConnectionOptions {
    const o = this.options;
    const opts: ConnectionOptions = {
      servers: o.servers,
      name: `nodeset-dispatcher-${host}`,
      noEcho: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 200,
      reconnectJitter: 100,
      waitOnFirstConnect: false,
      pingInterval: o.pingIntervalMs ?? DEFAULT_FEDERATION_OPTIONS.pingIntervalMs,
      maxPingOut: o.maxPingOut ?? DEFAULT_FEDERATION_OPTIONS.maxPingOut,
    };
    if (o.user !== undefined) opts.user = o.user;
    if (o.pass !== undefined) opts.pass = o.pass;
    if (o.token !== undefined) opts.token = o.token;
    if (o.credsFile !== undefined) opts.authenticator = credsAuthenticator(readFileSync(o.credsFile));
    if (o.tls !== undefined) opts.tls = { ...o.tls };
    return opts;
  }

  /** Asks NATS whether a dispatcher of this host name answers; one that does makes this one refuse to start. */
  async #refuseDuplicate(nc: NatsConnection, host: string): Promise<void> {
    let other: Announcement;
    try {
      const msg = await nc.request(`${SUBJECT_PREFIX}.id.${host}`, undefined, { timeout: DUPLICATE_CHECK_MS });
      other = packr.unpack(msg.data) as Announcement;
    } catch {
      return; // no responder (or none in time): no live dispatcher of this name
    }
    throw new NodesetError(
      'BAD_OPTION',
      `host name ${host} is already taken by a live dispatcher (started ${new Date(other.startedAt).toISOString()}); ` +
        'give this dispatcher another --host-name',
    );
  }

  #announcement(hello = false, bye = false): Announcement {
    return {
      host: this.#host?.hostName ?? '',
      id: this.#id,
      startedAt: this.#startedAt,
      version: this.options.version ?? '',
      patterns: [...this.#interest.keys()],
      groups: this.#host?.groups() ?? [],
      ...(hello ? { hello } : {}),
      ...(bye ? { bye } : {}),
    };
  }

  #announce(hello = false, bye = false): void {
    this.#nc?.publish(`${SUBJECT_PREFIX}.dir`, packr.pack(this.#announcement(hello, bye)));
  }

  /** Interest changed: announced once per tick, however many patterns changed. */
  #announceSoon(): void {
    if (this.#announcePending) return;
    this.#announcePending = true;
    queueMicrotask(() => {
      this.#announcePending = false;
      if (this.#connected) this.#announce();
    });
  }

  #beat(): void {
    if (this.#connected) this.#announce();
    const timeout = this.options.hostTimeoutMs ?? DEFAULT_FEDERATION_OPTIONS.hostTimeoutMs;
    for (const [host, entry] of this.#directory?.expire(Date.now(), timeout) ?? []) {
      this.logger.warn({ host, reason: 'silent' }, 'host left the federation');
      this.#presence(HOST_LEFT, entry.announcement, 'silent');
    }
  }

  #presence(uri: typeof HOST_JOINED | typeof HOST_LEFT, a: Announcement, reason?: 'stopped' | 'silent'): void {
    this.#host?.hostChanged(uri, {
      host: a.host,
      version: a.version,
      startedAt: new Date(a.startedAt).toISOString(),
      ...(reason === undefined ? {} : { reason }),
    });
  }

  #announced(a: Announcement): void {
    const directory = this.#directory;
    if (directory === null) return;
    const change = directory.announced(a, Date.now());
    if (change === 'duplicate') {
      this.logger.error(
        { host: a.host, other: a.id, startedAt: a.startedAt },
        'another dispatcher announces this host name: both receive its publishes; stop one',
      );
    } else if (change === 'joined') {
      this.logger.info({ host: a.host, version: a.version }, 'host joined the federation');
      this.#presence(HOST_JOINED, a);
    } else if (change === 'left') {
      this.logger.info({ host: a.host, reason: 'stopped' }, 'host left the federation');
      this.#presence(HOST_LEFT, a, 'stopped');
    }
    if (a.hello === true && a.host !== this.#host?.hostName) this.#announce();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    const nc = this.#nc;
    if (nc !== null && this.#connected) {
      this.#announce(false, true);
      await nc.flush().catch(() => undefined);
    }
    this.#nc = null;
    this.#connected = false;
    if (nc !== null) await nc.close();
  }

  forward(host: string, envelope: Envelope): void {
    if (this.#unconfirmedBytes > this.#maxUnconfirmed) {
      this.#host?.refused();
      throw new NodesetError(
        'BUFFER_FULL',
        `the federation link has ${this.#unconfirmedBytes} bytes the NATS server has not confirmed yet`,
      );
    }
    if (envelope.conn === undefined || envelope.r === undefined) {
      this.#publish(`${SUBJECT_PREFIX}.h.${host}`, envelope);
      return;
    }
    // Acked publishes and requests carry a reply subject: should no dispatcher of that host
    // subscribe any more (it crashed, not yet silent long enough to leave the directory),
    // the NATS server answers it with a no-responders status at once.
    const self = this.#host?.hostName ?? '';
    const reply = `${SUBJECT_PREFIX}.n.${self}.${envelope.conn}.${envelope.r}.${host}`;
    const data = packr.pack(envelope);
    this.#nc?.publish(`${SUBJECT_PREFIX}.h.${host}`, data, { reply });
    this.#sentBytes(data.length);
  }

  broadcast(envelope: Envelope): void {
    if (!this.#connected || this.#unconfirmedBytes > this.#maxUnconfirmed) {
      // Not handed to NATS (it would drop it on reconnect): counted as refused, never as sent.
      this.#host?.refused();
      return;
    }
    const event = envelope.uri.slice(envelope.uri.indexOf('/') + 1);
    this.#publish(`${SUBJECT_PREFIX}.all.${event}`, { ...envelope, id: `${this.#id}:${++this.#seq}` });
  }

  answer(host: string, answer: Answer): void {
    this.#nc?.publish(`${SUBJECT_PREFIX}.r.${host}`, packr.pack(answer));
  }

  async subscribers(host: string, uri: string): Promise<SubscriberInfo[]> {
    if (host === '*') {
      // Every live host is asked; one that does not answer in time contributes nobody.
      const others = [...(this.#directory?.hosts.keys() ?? [])];
      const found = await Promise.all(others.map((h) => this.subscribers(h, uri).catch(() => [])));
      return found.flat();
    }
    const nc = this.#nc;
    if (nc === null || !this.#connected) {
      throw new NodesetError('NO_ROUTE', `host ${host} is not reachable: the federation link is down`);
    }
    let reply: unknown;
    try {
      const msg = await nc.request(`${SUBJECT_PREFIX}.q.${host}`, packr.pack({ uri }), {
        timeout: this.options.queryTimeoutMs ?? 2000,
      });
      reply = packr.unpack(msg.data);
    } catch (cause) {
      throw new NodesetError('NO_ROUTE', `host ${host} did not answer: ${(cause as Error).message}`, { cause });
    }
    if (!Array.isArray(reply))
      throw new NodesetError('NO_ROUTE', `host ${host}: ${(reply as { error?: string }).error}`);
    return reply as SubscriberInfo[];
  }

  interest(pattern: string, present: boolean): Promise<void> | undefined {
    const nc = this.#nc;
    if (nc === null) return undefined; // declared at start
    if (present && !this.#interest.has(pattern)) {
      const sub = nc.subscribe(`${SUBJECT_PREFIX}.all.${pattern}`, {
        callback: (err, msg) => {
          if (err === null) this.#arrived(msg.data);
        },
      });
      this.#interest.set(pattern, sub);
      // Announced before the confirmation round trips below, which follow it on the same routes:
      // once they are answered, every known host also knows this host wants the pattern
      // (single deliveries of `*\/…` can pick it).
      if (this.#connected) this.#announce();
      // In effect once the NATS server has processed the subscription (a round trip). Waited for
      // a bounded time only: a link that is down or fails meanwhile declares it again when it
      // comes back, and local subscribers must not wait on it.
      if (!this.connected) return undefined;
      return new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, INTEREST_WAIT_MS);
        timer.unref();
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        void this.#confirmInterest(nc).then(done, done);
      });
    }
    if (!present) {
      this.#interest.get(pattern)?.unsubscribe();
      this.#interest.delete(pattern);
      this.#announceSoon();
    }
    return undefined;
  }

  /**
   * Resolves once every known host's NATS server has the new subscription: a
   * round trip to each host's dispatcher (nodeset.id.<host>) travels the same
   * routes as the subscription, after it, so its answer proves the interest
   * arrived there. Without other hosts, a flush to this host's server.
   */
  async #confirmInterest(nc: NatsConnection): Promise<void> {
    const others = [...(this.#directory?.hosts.keys() ?? [])];
    if (others.length === 0) {
      await nc.flush();
      return;
    }
    await Promise.all(
      others.map((h) =>
        nc.request(`${SUBJECT_PREFIX}.id.${h}`, undefined, { timeout: INTEREST_WAIT_MS }).catch(() => undefined),
      ),
    );
  }

  #publish(subject: string, envelope: Envelope & { id?: string }): void {
    const data = packr.pack(envelope);
    this.#nc?.publish(subject, data);
    this.#sentBytes(data.length);
  }

  /**
   * Counts bytes handed to NATS and not yet confirmed by the server: past a
   * quarter of the bound, a flush (a PING the server answers after reading
   * everything before it) confirms what was sent up to then. A stalled
   * server confirms nothing, so the count reaches the bound and publishes are
   * refused with BUFFER_FULL instead of piling up in memory.
   */
  #sentBytes(n: number): void {
    this.#host?.sent();
    this.#unconfirmedBytes += n;
    const nc = this.#nc;
    if (this.#confirming || nc === null || this.#unconfirmedBytes < this.#maxUnconfirmed / 4) return;
    this.#confirming = true;
    const upTo = this.#unconfirmedBytes;
    nc.flush().then(
      () => {
        this.#confirming = false;
        this.#unconfirmedBytes = Math.max(0, this.#unconfirmedBytes - upTo);
      },
      () => {
        this.#confirming = false;
      },
    );
  }

  #arrived(data: Uint8Array): void {
    const env = packr.unpack(data) as Envelope & { id?: string };
    if (env.id !== undefined) {
      // One delivery per all-hosts message, however many local patterns match it.
      if (this.#seen.has(env.id)) return;
      this.#seen.add(env.id);
      if (this.#seen.size > SEEN_LIMIT) this.#seen.delete(this.#seen.values().next().value as string);
    }
    this.#host?.arrived(env);
  }

  async #watch(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect' || status.type === 'staleConnection') {
        this.#connected = false;
        // What was not confirmed is in the client's buffer, which it does not resend after reconnecting.
        this.#unconfirmedBytes = 0;
        this.logger.warn(
          { status: status.type },
          'federation link lost; cross-host publishes are refused until it returns',
        );
      } else if (status.type === 'reconnect') {
        this.#connected = true;
        this.#announce(true);
        this.logger.info('federation link back; interest declared again');
      }
    }
  }
}
