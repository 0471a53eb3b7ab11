/**
 * Interest and the host directory on NATS: the all-hosts patterns this host
 * subscribes to (one NATS subscription per pattern no other one covers,
 * confirmed across the cluster before subscribe() resolves), and this
 * host's announcements on nodeset.dir (on connect, on every interest
 * change, as a heartbeat), with the directory of the other hosts they feed.
 */
import type { Msg, NatsConnection, Subscription } from 'nats';
import type { Logger } from 'pino';
import { type FederationHost, HOST_JOINED, HOST_LEFT, type HostPresence } from '../dispatcher/federation.js';
import { type Announcement, HostDirectory } from './host-directory.js';
import { DEFAULT_FEDERATION_OPTIONS, type NatsLink } from './nats-link.js';
import { encodeAnnouncement, subjects } from './nats-subjects.js';
import { WIRE_VERSION } from './nats-wire.js';
import { PatternCover } from './pattern-cover.js';

/** Longest a new subscription waits for its all-hosts interest to reach the other hosts' NATS servers. */
const INTEREST_WAIT_MS = 1000;

export class Interest {
  readonly directory: HostDirectory;
  readonly #link: NatsLink;
  readonly #host: FederationHost;
  readonly #logger: Logger;
  readonly #id: string;
  readonly #startedAt = Date.now();
  /** Delivers what arrives on an all-hosts subject. */
  readonly #arrived: (msg: Msg) => void;
  /** The wanted all-hosts patterns, and which of them need a NATS subscription. */
  readonly #cover = new PatternCover();
  /** The NATS subscriptions held: the needed ones, and superseded ones not yet retired. */
  readonly #subs = new Map<string, Subscription>();
  /** Confirmation of a subscription still on its way to the other hosts, by pattern. */
  readonly #pending = new Map<string, Promise<void>>();
  /** NATS subscriptions made so far: a retiring flush sent before the last one does not confirm it. */
  #subscriptionsMade = 0;
  #retiring = false;
  #heartbeat: NodeJS.Timeout | null = null;
  /** Dispatcher instances already logged as speaking another wire format. */
  readonly #incompatibleSeen = new Set<string>();
  #announcePending = false;
  /** The last announcement did not fit in a NATS message (logged once until one fits again). */
  #tooLarge = false;

  constructor(link: NatsLink, host: FederationHost, id: string, arrived: (msg: Msg) => void) {
    this.#link = link;
    this.#host = host;
    this.#logger = link.logger;
    this.#id = id;
    this.#arrived = arrived;
    this.directory = new HostDirectory(host.hostName, id, WIRE_VERSION);
  }

  /** The all-hosts patterns local nodes subscribe to (announced). */
  get patterns(): string[] {
    return [...this.#cover.wanted];
  }

  /** Starts the heartbeat: an announcement every heartbeatIntervalMs, and silent hosts expire. */
  startHeartbeat(): void {
    const every = this.#link.options.heartbeatIntervalMs ?? DEFAULT_FEDERATION_OPTIONS.heartbeatIntervalMs;
    this.#heartbeat = setInterval(() => this.#beat(), every);
    this.#heartbeat.unref();
  }

  stopHeartbeat(): void {
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
  }

  announcement(hello = false, bye = false): Announcement {
    return {
      host: this.#host.hostName,
      id: this.#id,
      startedAt: this.#startedAt,
      version: this.#link.options.version ?? '',
      patterns: [...this.#cover.wanted],
      groups: this.#host.groups(),
      responders: this.#host.responders(),
      wire: WIRE_VERSION,
      ...(hello ? { hello } : {}),
      ...(bye ? { bye } : {}),
    };
  }

  /**
   * Publishes the announcement, unless it is larger than the NATS server takes
   * (max_payload): then it is not sent, and an error is logged once until one
   * fits again (the NATS client would throw, from a timer or a microtask).
   */
  announce(hello = false, bye = false): void {
    const nc = this.#link.nc;
    if (nc === null) return;
    const data = encodeAnnouncement(this.announcement(hello, bye));
    const max = this.#link.maxPayload;
    if (max > 0 && data.length > max) {
      if (!this.#tooLarge) {
        this.#tooLarge = true;
        this.#logger.error(
          { bytes: data.length, maxPayload: max, patterns: this.#cover.wanted.size },
          'announcement larger than NATS max_payload, not sent: the other hosts see this host leave (silent) ' +
            'until its nodes want fewer all-hosts patterns or queue groups',
        );
      }
      return;
    }
    if (this.#tooLarge) {
      this.#tooLarge = false;
      this.#logger.info({ bytes: data.length, maxPayload: max }, 'announcement fits in a NATS message again');
    }
    nc.publish(subjects.dir, data);
  }

  /** The answer to "is a dispatcher of this name alive?": who this one is, without its interest (always small). */
  identity(): Announcement {
    return {
      host: this.#host.hostName,
      id: this.#id,
      startedAt: this.#startedAt,
      version: this.#link.options.version ?? '',
      patterns: [],
      groups: [],
      responders: [],
    };
  }

  /** Interest changed: announced once per tick, however many patterns changed. */
  announceSoon(): void {
    if (this.#announcePending) return;
    this.#announcePending = true;
    queueMicrotask(() => {
      this.#announcePending = false;
      if (this.#link.connected) this.announce();
    });
  }

  #beat(): void {
    if (this.#link.connected) this.announce();
    const timeout = this.#link.options.hostTimeoutMs ?? DEFAULT_FEDERATION_OPTIONS.hostTimeoutMs;
    for (const [host, entry] of this.directory.expire(Date.now(), timeout)) {
      this.#logger.warn({ host, reason: 'silent' }, 'host left the federation');
      this.#presence(HOST_LEFT, entry.announcement, 'silent');
    }
  }

  /**
   * The NATS servers answered a message for `host` with no-responders: its
   * dispatcher is gone. It leaves the directory at once (its next
   * announcement, should it be alive after all, brings it back).
   */
  unreachable(host: string): void {
    const entry = this.directory.remove(host);
    if (entry === undefined) return;
    this.#logger.warn({ host, reason: 'unreachable' }, 'host left the federation');
    this.#presence(HOST_LEFT, entry.announcement, 'unreachable');
  }

  #presence(uri: typeof HOST_JOINED | typeof HOST_LEFT, a: Announcement, reason?: HostPresence['reason']): void {
    this.#host.hostChanged(uri, {
      host: a.host,
      version: a.version,
      startedAt: new Date(a.startedAt).toISOString(),
      ...(reason === undefined ? {} : { reason }),
    });
  }

  /** Another dispatcher's announcement (or this one's, which NATS does not echo). */
  announced(a: Announcement): void {
    const change = this.directory.announced(a, Date.now());
    if (change === 'duplicate') {
      this.#logger.error(
        { host: a.host, other: a.id, startedAt: a.startedAt },
        'another dispatcher announces this host name: both receive its publishes; stop one',
      );
    } else if (change === 'incompatible') {
      this.#incompatible(a);
    } else if (change === 'joined') {
      this.#logger.info({ host: a.host, version: a.version }, 'host joined the federation');
      this.#presence(HOST_JOINED, a);
    } else if (change === 'left') {
      this.#logger.info({ host: a.host, reason: 'stopped' }, 'host left the federation');
      this.#presence(HOST_LEFT, a, 'stopped');
    }
    if (a.hello === true && a.host !== this.#host.hostName) this.announce();
  }

  /** Logs, once per dispatcher instance, a host that speaks another wire format (it stays out of the directory). */
  #incompatible(a: Announcement): void {
    if (this.#incompatibleSeen.has(a.id)) return;
    if (this.#incompatibleSeen.size >= 1024) this.#incompatibleSeen.clear();
    this.#incompatibleSeen.add(a.id);
    this.#logger.error(
      { host: a.host, version: a.version, wire: a.wire ?? 1, ours: WIRE_VERSION },
      'a host speaks another federation wire format: it is left out of the directory (publishes to it get NO_ROUTE); run one nodeset version on every host',
    );
  }

  /**
   * A responder pattern appeared (announced now; resolves once every known
   * host has the announcement, bounded) or went (announced soon).
   */
  respondersChanged(appeared: boolean): Promise<void> | undefined {
    const nc = this.#link.nc;
    if (!appeared || nc === null || !this.#link.connected) {
      this.announceSoon();
      return undefined;
    }
    this.announce();
    return this.#bounded(nc);
  }

  /** Confirms, for at most INTEREST_WAIT_MS, that what was sent so far reached every known host. */
  #bounded(nc: NatsConnection): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, INTEREST_WAIT_MS);
      timer.unref();
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      void this.#confirm(nc).then(done, done);
    });
  }

  /**
   * Local subscribers appeared for (or left) a pattern: subscribes to (or
   * leaves) its all-hosts subject, unless another wanted pattern covers it
   * (NATS would deliver each message once per matching subscription). A new
   * one returns a promise that resolves once other hosts' publishes reach it
   * (bounded; it never rejects).
   */
  declare(pattern: string, present: boolean): Promise<void> | undefined {
    const nc = this.#link.nc;
    if (nc === null) return undefined; // declared at start
    if (present) {
      const added = this.#cover.add(pattern);
      if (added === null) return undefined;
      if (added.coveredBy !== null) {
        // Other hosts can already pick this host for it: the covering pattern is announced.
        this.announceSoon();
        return this.#pending.get(added.coveredBy);
      }
      this.#subscribe(nc, pattern);
      // The subscriptions it covers go once this one is in effect (#retire).
      if (added.superseded.length > 0) this.#retire(nc);
      // Announced before the confirmation round trips below, which follow it on the same routes:
      // once they are answered, every known host also knows this host wants the pattern
      // (single deliveries of `*\/…` can pick it).
      if (this.#link.connected) this.announce();
      // In effect once the NATS server has processed the subscription (a round trip). Waited for
      // a bounded time only: a link that is down or fails meanwhile declares it again when it
      // comes back, and local subscribers must not wait on it.
      if (!this.#link.connected) return undefined;
      const pending: Promise<void> = this.#bounded(nc).then(() => {
        if (this.#pending.get(pattern) === pending) this.#pending.delete(pattern);
      });
      this.#pending.set(pattern, pending);
      return pending;
    }
    const removed = this.#cover.remove(pattern);
    if (removed === null) return undefined;
    this.#pending.delete(pattern);
    // The patterns it covered get their own subscriptions first; its own goes after them (#retire).
    for (const w of removed.restored) this.#subscribe(nc, w);
    if (removed.dropped) this.#retire(nc);
    this.announceSoon();
    return undefined;
  }

  /** A NATS subscription for the pattern, unless one is still held (waiting to be retired). */
  #subscribe(nc: NatsConnection, pattern: string): void {
    if (this.#subs.has(pattern)) return;
    const sub = nc.subscribe(subjects.allIn(pattern), {
      callback: (err, msg) => {
        if (err === null) this.#arrived(msg);
      },
    });
    this.#subs.set(pattern, sub);
    this.#subscriptionsMade++;
  }

  /**
   * Unsubscribes the NATS subscriptions no longer needed, once the ones that
   * replace them are in effect: after a flush (PING/PONG) sent after the last
   * new subscription. The server has then processed it, and every message it
   * sent for the old subscription alone has arrived (the NATS client drops
   * what arrives for a subscription it has left). A newer subscription made
   * meanwhile takes another flush. Messages that arrive twice meanwhile are
   * delivered once (the all-hosts message id).
   */
  #retire(nc: NatsConnection): void {
    if (this.#retiring) return;
    this.#retiring = true;
    const made = this.#subscriptionsMade;
    nc.flush().then(
      () => {
        this.#retiring = false;
        if (made !== this.#subscriptionsMade) {
          this.#retire(nc);
          return;
        }
        const needed = this.#cover.subscribed;
        for (const [pattern, sub] of this.#subs) {
          if (needed.has(pattern)) continue;
          sub.unsubscribe();
          this.#subs.delete(pattern);
        }
      },
      () => {
        // Disconnected (the client subscribes again, all at once, when it is back): flushed again then.
        this.#retiring = false;
        if (!nc.isClosed()) this.#retire(nc);
      },
    );
  }

  /**
   * Resolves once every known host's NATS server has the new subscription: a
   * round trip to each host's dispatcher (nodeset.id.<host>) travels the same
   * routes as the subscription, after it, so its answer proves the interest
   * arrived there. Without other hosts, a flush to this host's server.
   */
  async #confirm(nc: NatsConnection): Promise<void> {
    const others = [...this.directory.hosts.keys()];
    if (others.length === 0) {
      await nc.flush();
      return;
    }
    await Promise.all(
      others.map((h) => nc.request(subjects.id(h), undefined, { timeout: INTEREST_WAIT_MS }).catch(() => undefined)),
    );
  }
}
