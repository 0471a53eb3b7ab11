/**
 * Federation over NATS: the link between this host's dispatcher and the
 * others', implementing the Federation contract of dispatcher/federation.ts.
 */
import { connect, type NatsConnection, type Subscription } from 'nats';
import pino, { type Logger } from 'pino';
import type { Answer, Envelope, Federation, FederationHost } from '../dispatcher/federation.js';
import { NodesetError } from '../protocol/errors.js';
import { packr, type SubscriberInfo } from '../protocol/frames.js';

/**
 * NATS subjects (see docs/federation.md):
 *   nodeset.h.<host>           publishes for one host (B/event, node@B/event)
 *   nodeset.all.<event>        all-hosts publishes (*\/event); each dispatcher
 *                              subscribes only to the patterns its nodes want
 *   nodeset.r.<host>           answers (acks, replies, errors) for a host
 *   nodeset.q.<host>           who-subscribes queries (NATS request/reply)
 */
export const SUBJECT_PREFIX = 'nodeset';

export interface NatsFederationOptions {
  /** NATS server URLs (`nats://host:port`). */
  servers: string[];
  logger?: Logger;
  /** Timeout of a who-subscribes query to another host, in ms. Default 2000. */
  queryTimeoutMs?: number;
}

/** Recent all-hosts message ids, to deliver once when several local patterns match one event. */
const SEEN_LIMIT = 4096;
/** Longest a new subscription waits for its all-hosts interest to reach the NATS server. */
const INTEREST_WAIT_MS = 1000;

/**
 * Dispatcher federation over NATS. Interest-based: a dispatcher subscribes to
 * its own host's subjects and to the all-hosts patterns its nodes subscribe
 * to, nothing else. The NATS client re-declares every subscription by itself
 * when the connection comes back; while it is away, cross-host publishes are
 * refused with NO_ROUTE (local traffic is untouched).
 */
export class NatsFederation implements Federation {
  readonly options: NatsFederationOptions;
  readonly logger: Logger;
  #nc: NatsConnection | null = null;
  #connected = false;
  #host: FederationHost | null = null;
  readonly #interest = new Map<string, Subscription>();
  readonly #seen = new Set<string>();
  #seq = 0;
  #id = Math.random().toString(36).slice(2);

  constructor(options: NatsFederationOptions) {
    this.options = options;
    this.logger = options.logger ?? pino({ level: 'silent' });
  }

  get connected(): boolean {
    return this.#connected;
  }

  async start(dispatcher: FederationHost): Promise<void> {
    this.#host = dispatcher;
    const host = dispatcher.hostName;
    const nc = await connect({
      servers: this.options.servers,
      name: `nodeset-dispatcher-${host}`,
      noEcho: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 200,
      reconnectJitter: 100,
      waitOnFirstConnect: true,
    });
    this.#nc = nc;
    this.#connected = true;
    void this.#watch(nc);
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
    this.logger.info({ servers: this.options.servers, host }, 'federation connected');
  }

  async stop(): Promise<void> {
    const nc = this.#nc;
    this.#nc = null;
    this.#connected = false;
    if (nc !== null) await nc.close();
  }

  forward(host: string, envelope: Envelope): void {
    this.#publish(`${SUBJECT_PREFIX}.h.${host}`, envelope);
  }

  broadcast(envelope: Envelope): void {
    const event = envelope.uri.slice(envelope.uri.indexOf('/') + 1);
    this.#publish(`${SUBJECT_PREFIX}.all.${event}`, { ...envelope, id: `${this.#id}:${++this.#seq}` });
  }

  answer(host: string, answer: Answer): void {
    this.#nc?.publish(`${SUBJECT_PREFIX}.r.${host}`, packr.pack(answer));
  }

  async subscribers(host: string, uri: string): Promise<SubscriberInfo[]> {
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
        nc.flush().then(done, done);
      });
    }
    if (!present) {
      this.#interest.get(pattern)?.unsubscribe();
      this.#interest.delete(pattern);
    }
    return undefined;
  }

  #publish(subject: string, envelope: Envelope & { id?: string }): void {
    this.#nc?.publish(subject, packr.pack(envelope));
    this.#host?.sent();
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
      if (status.type === 'disconnect') {
        this.#connected = false;
        this.logger.warn('federation link lost; cross-host publishes are refused until it returns');
      } else if (status.type === 'reconnect') {
        this.#connected = true;
        this.logger.info('federation link back; interest declared again');
      }
    }
  }
}
