/**
 * Federation over NATS: the link between this host's dispatcher and the
 * others', implementing the Federation contract of dispatcher/federation.ts.
 * This file wires the parts: the connection and its bounded outbound
 * (nats-link.ts), the subjects and the codecs of answers and announcements
 * (nats-subjects.ts), the wire format of publishes (nats-wire.ts) and their
 * batching (nats-sender.ts), and interest with the host directory's
 * announcements (interest.ts).
 */
import type { Msg, NatsConnection } from 'nats';
import pino, { type Logger } from 'pino';
import type { Answer, Arrival, Envelope, Federation, FederationHost } from '../dispatcher/federation.js';
import { NodesetError } from '../protocol/errors.js';
import { packr, type SubscriberInfo } from '../protocol/frames.js';
import type { Announcement } from './host-directory.js';
import { Interest } from './interest.js';
import { DEFAULT_FEDERATION_OPTIONS, type NatsFederationOptions, NatsLink } from './nats-link.js';
import { type Destination, NatsSender } from './nats-sender.js';
import {
  allHostsEvent,
  decodeAnnouncement,
  decodeAnswer,
  encodeAnnouncement,
  encodeAnswer,
  noticeSubject,
  originOf,
  parseNotice,
  plainNoticeSubject,
  SUBJECT_PREFIX,
  subjects,
} from './nats-subjects.js';
import { BatchReader, batchHost, H, readSingle } from './nats-wire.js';

export { DEFAULT_FEDERATION_OPTIONS, type NatsFederationOptions, SUBJECT_PREFIX };

/** How long the start-up check for a live dispatcher of the same name waits for an answer, in ms. */
const DUPLICATE_CHECK_MS = 500;
/** Recent all-hosts message ids, to deliver once when several local patterns match one event. */
const SEEN_LIMIT = 4096;
/** Destinations (hosts, all-hosts events) whose subjects are kept. */
const DESTINATIONS_LIMIT = 1024;
/** Unreadable cross-host messages (and refused batches) logged (the rest are only counted), per link. */
const UNREADABLE_LOGGED = 20;

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
  readonly #link: NatsLink;
  #host: FederationHost | null = null;
  #interest: Interest | null = null;
  readonly #seen = new Set<string>();
  /** Where plain publishes go: per destination host, and per all-hosts event. */
  readonly #hostRoutes = new Map<string, Destination>();
  readonly #allRoutes = new Map<string, Destination>();
  readonly #sender: NatsSender;
  /** Reads the batches from other hosts (one reader per subscription kind keeps its record cache warm). */
  readonly #hostReader = new BatchReader();
  readonly #allReader = new BatchReader();
  #unreadable = 0;
  #notSentLogged = 0;
  #seq = 0;
  readonly #nextId = () => `${this.#id}:${++this.#seq}`;
  readonly #id = Math.random().toString(36).slice(2);

  constructor(options: NatsFederationOptions) {
    this.options = options;
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.#link = new NatsLink(options, this.logger);
    this.#sender = new NatsSender(
      this.#link,
      () => this.#host?.hostName ?? '',
      (count, err) => this.#notSent(count, err),
    );
  }

  get connected(): boolean {
    return this.#link.connected;
  }

  get maxPayload(): number {
    return this.#link.maxPayload;
  }

  /** The live hosts this dispatcher knows, itself excluded, with what they announced. */
  get hosts(): Announcement[] {
    return [...(this.#interest?.directory.hosts.values() ?? [])].map((e) => e.announcement);
  }

  knownHosts(): string[] {
    return [...(this.#interest?.directory.hosts.keys() ?? [])].sort();
  }

  knows(host: string): boolean {
    return this.#interest?.directory.knows(host) ?? false;
  }

  pickHost(event: string, responder: boolean): string | null {
    return this.#interest?.directory.pickHost(event, responder) ?? null;
  }

  groupHosts(event: string): Map<string, string[]> | null {
    return this.#interest?.directory.groupHosts(event) ?? null;
  }

  groupsChanged(): void {
    this.#interest?.announceSoon();
  }

  respondersChanged(appeared: boolean): Promise<void> | undefined {
    return this.#interest?.respondersChanged(appeared);
  }

  /**
   * Connects to NATS. Waits up to startWaitMs: if NATS is there, a live
   * dispatcher of the same host name makes start() reject; if not, the link
   * connects in the background (and checks then) while local traffic runs.
   */
  async start(dispatcher: FederationHost): Promise<void> {
    this.#host = dispatcher;
    this.#interest = new Interest(this.#link, dispatcher, this.#id, (msg) => this.#arrived(msg, this.#allReader));
    this.logger.info({ servers: this.options.servers, host: dispatcher.hostName }, 'federation connecting');
    const linked = this.#connect(dispatcher, this.#interest);
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
      this.logger.warn(
        { servers: this.options.servers, reason: this.#link.failure },
        'federation link not up yet; it keeps connecting in the background',
      );
      linked.catch((err: unknown) => {
        this.logger.error({ err }, 'federation not started');
      });
    }
  }

  async #connect(dispatcher: FederationHost, interest: Interest): Promise<void> {
    const host = dispatcher.hostName;
    const nc = await this.#link.firstConnect(host);
    if (nc === null) return; // stopped before NATS was reached
    try {
      await this.#refuseDuplicate(nc, host);
    } catch (err) {
      await this.#link.close();
      throw err;
    }
    void this.#link.watch(nc, {
      down: () => undefined,
      back: () => interest.announce(true),
    });
    this.#subscribeOwn(nc, dispatcher, interest);
    for (const pattern of dispatcher.patterns()) interest.declare(pattern, true);
    interest.announce(true);
    await nc.flush();
    this.#link.up();
    interest.startHeartbeat();
    this.logger.info({ servers: this.options.servers, host, maxPayload: this.maxPayload }, 'federation connected');
  }

  /** This host's own subjects: identity, directory, publishes for it, answers, no-responders notices, queries. */
  #subscribeOwn(nc: NatsConnection, dispatcher: FederationHost, interest: Interest): void {
    const host = dispatcher.hostName;
    nc.subscribe(subjects.id(host), {
      callback: (err, msg) => {
        if (err === null) msg.respond(encodeAnnouncement(interest.identity()));
      },
    });
    nc.subscribe(subjects.dir, {
      callback: (err, msg) => {
        if (err === null) interest.announced(decodeAnnouncement(msg.data));
      },
    });
    nc.subscribe(subjects.hostIn(host), {
      callback: (err, msg) => {
        if (err === null) this.#arrived(msg, this.#hostReader);
      },
    });
    nc.subscribe(subjects.answersIn(host), {
      callback: (err, msg) => {
        if (err !== null) return;
        let answer: Answer;
        try {
          answer = decodeAnswer(msg.data);
        } catch {
          dispatcher.unreadable();
          return;
        }
        // An answer counts only from the host the publish or request went to (the glue checks).
        dispatcher.answered(answer, originOf(msg.subject) ?? '');
      },
    });
    const notices = subjects.notices(host);
    nc.subscribe(`${notices}>`, {
      callback: (err, msg) => {
        if (err !== null || msg.headers?.code !== 503) return;
        const { answer, lost, to } = parseNotice(notices, msg.subject);
        if (answer === null) {
          dispatcher.lost(lost);
        } else {
          dispatcher.answered(
            {
              ...answer,
              kind: 'error',
              code: 'NO_ROUTE',
              message: `host ${to} is not reachable: no live dispatcher of that name subscribes`,
            },
            to,
          );
        }
        interest.unreachable(to);
      },
    });
    nc.subscribe(subjects.query(host), {
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
  }

  /** Asks NATS whether a dispatcher of this host name answers; one that does makes this one refuse to start. */
  async #refuseDuplicate(nc: NatsConnection, host: string): Promise<void> {
    let other: Announcement;
    try {
      const msg = await nc.request(subjects.id(host), undefined, { timeout: DUPLICATE_CHECK_MS });
      other = decodeAnnouncement(msg.data);
    } catch {
      return; // no responder (or none in time): no live dispatcher of this name
    }
    throw new NodesetError(
      'BAD_OPTION',
      `host name ${host} is already taken by a live dispatcher (started ${new Date(other.startedAt).toISOString()}); ` +
        'give this dispatcher another --host-name',
    );
  }

  async stop(): Promise<void> {
    // What was batched in this turn leaves before the goodbye.
    this.#sender.flush();
    this.#link.stop();
    this.#interest?.stopHeartbeat();
    const nc = this.#link.nc;
    if (nc !== null && this.#link.connected) {
      this.#interest?.announce(false, true);
      await nc.flush().catch(() => undefined);
    }
    await this.#link.close();
  }

  forward(host: string, envelope: Envelope): void {
    if (this.#link.full) {
      this.#host?.refused();
      this.#link.checkRoom();
    }
    if (envelope.conn === undefined || envelope.r === undefined) {
      // A plain publish carries a reply subject too (naming how many publishes its batch holds):
      // should the host's dispatcher be gone, the NATS server's no-responders status there
      // counts them as lost.
      this.#sender.batched(this.#hostRoute(host), envelope);
    } else {
      // Acked publishes and requests carry a reply subject: should no dispatcher of that host
      // subscribe any more (it crashed, not yet silent long enough to leave the directory),
      // the NATS server answers it with a no-responders status at once.
      const self = this.#host?.hostName ?? '';
      const reply = noticeSubject(self, envelope.conn, envelope.r, host);
      this.#sender.alone(subjects.host(host, self), envelope, { reply }, null);
    }
    this.#host?.sent();
  }

  /** Where plain publishes to `host` go, made once per host. */
  #hostRoute(host: string): Destination {
    let route = this.#hostRoutes.get(host);
    if (route === undefined) {
      if (this.#hostRoutes.size >= DESTINATIONS_LIMIT) this.#hostRoutes.clear();
      const self = this.#host?.hostName ?? '';
      route = {
        subject: subjects.host(host, self),
        reply: (count) => plainNoticeSubject(self, count, host),
        id: null,
      };
      this.#hostRoutes.set(host, route);
    }
    return route;
  }

  broadcast(envelope: Envelope): void {
    if (!this.#link.connected || this.#link.full) {
      // Not handed to NATS (it would drop it on reconnect): counted as refused, never as sent.
      this.#host?.refused();
      return;
    }
    const event = allHostsEvent(envelope.uri);
    let route = this.#allRoutes.get(event);
    if (route === undefined) {
      if (this.#allRoutes.size >= DESTINATIONS_LIMIT) this.#allRoutes.clear();
      route = { subject: subjects.all(this.#host?.hostName ?? '', event), reply: null, id: this.#nextId };
      this.#allRoutes.set(event, route);
    }
    this.#sender.batched(route, envelope);
    this.#host?.sent();
  }

  answer(host: string, answer: Answer): void {
    // After the open batch: a responder's publishes made before its reply reach their host before it.
    this.#sender.flush();
    this.#link.nc?.publish(subjects.answers(host, this.#host?.hostName ?? ''), encodeAnswer(answer));
  }

  async subscribers(host: string, uri: string): Promise<SubscriberInfo[]> {
    if (host === '*') {
      // Every live host is asked; one that does not answer in time contributes nobody.
      const others = [...(this.#interest?.directory.hosts.keys() ?? [])];
      const found = await Promise.all(others.map((h) => this.subscribers(h, uri).catch(() => [])));
      return found.flat();
    }
    const nc = this.#link.nc;
    if (nc === null || !this.#link.connected) {
      throw new NodesetError('NO_ROUTE', `host ${host} is not reachable: the federation link is down`);
    }
    let reply: unknown;
    try {
      const msg = await nc.request(subjects.query(host), packr.pack({ uri }), {
        timeout: this.options.queryTimeoutMs ?? DEFAULT_FEDERATION_OPTIONS.queryTimeoutMs,
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
    return this.#interest?.declare(pattern, present);
  }

  /** A message from another host: a batch of publishes or one publish alone (nats-wire.ts). */
  #arrived(msg: Msg, reader: BatchReader): void {
    const host = this.#host;
    if (host === null) return;
    try {
      const h = msg.headers;
      if (h === undefined) throw new NodesetError('BAD_FRAME', 'cross-host message without headers');
      // The subject names the origin (NATS permissions can hold each host to its own); the
      // message must claim the same one.
      const origin = originOf(msg.subject);
      const claimed = h.get(H.host);
      if (origin === null || claimed !== origin) {
        throw new NodesetError('BAD_FRAME', `a message claiming host ${claimed} was published as ${origin}`);
      }
      if (h.has(H.id)) {
        // One delivery per all-hosts message, however many local subscriptions match it; keyed
        // on the origin too, so that no host can suppress another's messages with their ids.
        const id = `${origin} ${h.get(H.id)}`;
        if (this.#seen.has(id)) return;
        this.#seen.add(id);
        if (this.#seen.size > SEEN_LIMIT) this.#seen.delete(this.#seen.values().next().value as string);
      }
      if (h.has(H.batch)) {
        // Its Nodeset-Host header is the subject's origin (checked above), and must be a valid host name.
        reader.read(msg.data, batchHost(h), this.#deliver);
      } else {
        const { meta, seq } = readSingle(h);
        this.#deliver(meta, seq, Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength));
      }
    } catch (err) {
      host.unreadable();
      if (++this.#unreadable <= UNREADABLE_LOGGED) {
        this.logger.warn(
          { err, subject: msg.subject, logged: `${this.#unreadable} of at most ${UNREADABLE_LOGGED}` },
          'unreadable cross-host message dropped',
        );
      }
    }
  }

  /** Publishes counted as sent that the NATS client refused when their batch left: counted as lost, logged. */
  #notSent(count: number, err: unknown): void {
    this.#host?.lost(count);
    if (++this.#notSentLogged <= UNREADABLE_LOGGED) {
      this.logger.warn(
        { err, count, logged: `${this.#notSentLogged} of at most ${UNREADABLE_LOGGED}` },
        'the NATS client refused cross-host publishes: counted as lost',
      );
    }
  }

  readonly #deliver = (meta: Arrival, seq: number, payload: Buffer): void => {
    this.#host?.arrived(meta, seq, payload);
  };
}
