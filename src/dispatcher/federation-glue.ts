/**
 * The dispatcher's side of federation: routes what arrives from other hosts,
 * keeps the requests from other hosts that await a local reply, and counts
 * local interest per pattern. It serves the router (RemoteHosts) and the
 * federation link (FederationHost).
 */
import { NodesetError } from '../protocol/errors.js';
import { PubFlag, type SubscriberInfo } from '../protocol/frames.js';
import { checkHeaders } from '../protocol/headers.js';
import type {
  Answer,
  Arrival,
  Envelope,
  Federation,
  FederationHost,
  HOST_JOINED,
  HOST_LEFT,
  HostPresence,
} from './federation.js';
import type { RemoteHosts, Router } from './router.js';
import type { DispatcherStats } from './stats.js';

const MAX_REMOTE_REQUESTS = 10_000;
/** Answers awaited from other hosts; past this the oldest are forgotten (their answers are then dropped). */
const MAX_AWAITED_ANSWERS = 100_000;

export class FederationGlue implements RemoteHosts, FederationHost {
  readonly hostName: string;
  readonly #router: Router;
  readonly #stats: DispatcherStats;
  readonly #federation: Federation;
  /** Hands an answer from another host to the local connection it is for. */
  readonly #answerLocal: (answer: Answer) => void;
  readonly #remoteRequests = new Map<number, { host: string; conn: number; r: number }>();
  /** Acked publishes and requests sent to other hosts, by `conn r`: the host whose answer is awaited. */
  readonly #awaiting = new Map<string, string>();
  readonly #interest = new Map<string, number>();
  /** Subscriptions per [pattern, group] (key `pattern group`). */
  readonly #groups = new Map<string, number>();
  /** Responder subscriptions (`respond()`) per pattern. */
  readonly #responders = new Map<string, number>();
  /** Interests declared and not yet in effect. */
  readonly #declaring = new Map<string, Promise<void>>();
  #nextId = 1;

  constructor(
    hostName: string,
    router: Router,
    stats: DispatcherStats,
    federation: Federation,
    answerLocal: (answer: Answer) => void,
  ) {
    this.hostName = hostName;
    this.#router = router;
    this.#stats = stats;
    this.#federation = federation;
    this.#answerLocal = answerLocal;
  }

  // ---- RemoteHosts (the router's view) ----------------------------------------

  get connected(): boolean {
    return this.#federation.connected;
  }

  get maxPayload(): number {
    return this.#federation.maxPayload;
  }

  knows(host: string): boolean {
    return this.#federation.knows(host);
  }

  pickHost(event: string, responder: boolean): string | null {
    return this.#federation.pickHost(event, responder);
  }

  forward(host: string, envelope: Envelope): void {
    this.#federation.forward(host, envelope);
    if (envelope.conn !== undefined && envelope.r !== undefined) {
      // Handed over (not refused): its answer is taken from this host only.
      if (this.#awaiting.size >= MAX_AWAITED_ANSWERS) {
        this.#awaiting.delete(this.#awaiting.keys().next().value as string);
      }
      this.#awaiting.set(`${envelope.conn} ${envelope.r}`, host);
    }
  }

  broadcast(envelope: Envelope): void {
    this.#federation.broadcast(envelope);
  }

  /** A local responder's reply to a request from another host. */
  reply(replyId: number, ct: number, err: { code: string; message: string } | undefined, payload: Buffer): void {
    const origin = this.#remoteRequests.get(replyId);
    if (origin === undefined) return;
    this.#remoteRequests.delete(replyId);
    this.#federation.answer(
      origin.host,
      err === undefined
        ? { conn: origin.conn, r: origin.r, kind: 'reply', ct, payload }
        : { conn: origin.conn, r: origin.r, kind: 'error', code: err.code, message: err.message },
    );
  }

  /**
   * Counts local subscriptions per pattern (and responders per pattern); tells
   * the federation when one appears or goes. For a new subscription it
   * returns, while the pattern's interest (or its first responder) is still
   * on its way to the other hosts, a promise that resolves once it is in effect.
   */
  interestChanged(
    pattern: string,
    delta: 1 | -1,
    group: string | null = null,
    responds = false,
  ): Promise<void> | undefined {
    if (group !== null) this.#groupChanged(`${pattern} ${group}`, delta);
    const responders = responds ? this.#responderChanged(pattern, delta) : 0;
    const before = this.#interest.get(pattern) ?? 0;
    const after = before + delta;
    if (after <= 0) this.#interest.delete(pattern);
    else this.#interest.set(pattern, after);
    if (before > 0 && after <= 0) {
      this.#declaring.delete(pattern);
      this.#federation.interest(pattern, false);
      return undefined;
    }
    if (before === 0 && after > 0) {
      const declared = this.#federation.interest(pattern, true);
      if (declared === undefined) return undefined;
      const pending = declared.then(() => {
        if (this.#declaring.get(pattern) === pending) this.#declaring.delete(pattern);
      });
      this.#declaring.set(pattern, pending);
      return pending;
    }
    // The pattern was already declared: only its first responder (or its last) is news.
    if (responders === -1) this.#federation.respondersChanged(false);
    const declaring = delta === 1 ? this.#declaring.get(pattern) : undefined;
    if (responders !== 1) return declaring;
    const known = this.#federation.respondersChanged(true);
    if (known === undefined || declaring === undefined) return known ?? declaring;
    return Promise.all([known, declaring]).then(() => undefined);
  }

  /** Counts a pattern's responders: 1 when the first appeared, -1 when the last went, else 0. */
  #responderChanged(pattern: string, delta: 1 | -1): 1 | -1 | 0 {
    const before = this.#responders.get(pattern) ?? 0;
    const after = before + delta;
    if (after <= 0) this.#responders.delete(pattern);
    else this.#responders.set(pattern, after);
    if (before === 0 && after > 0) return 1;
    if (before > 0 && after <= 0) return -1;
    return 0;
  }

  groupHosts(event: string): Map<string, string[]> | null {
    return this.#federation.groupHosts(event);
  }

  #groupChanged(key: string, delta: 1 | -1): void {
    const before = this.#groups.get(key) ?? 0;
    const after = before + delta;
    if (after <= 0) this.#groups.delete(key);
    else this.#groups.set(key, after);
    if ((before === 0) !== after <= 0) this.#federation.groupsChanged();
  }

  // ---- FederationHost (the link's view) -----------------------------------------

  arrived(meta: Arrival, seq: number, payload: Buffer): void {
    this.#stats.federationIn++;
    try {
      if (!this.#router.resolve(meta.uri).local) {
        // Not for this host (a misrouted or forged message): counted, never delivered.
        this.#stats.federationUnreadable++;
        return;
      }
      const headers = meta.hd === undefined ? null : checkHeaders(meta.hd, 'BAD_FRAME');
      const isRequest = (meta.flags & PubFlag.REQUEST) !== 0;
      let replyId = 0;
      if (isRequest) {
        replyId = this.#nextId;
        this.#nextId = replyId >= 0xfffffff0 ? 1 : replyId + 1;
        if (this.#remoteRequests.size >= MAX_REMOTE_REQUESTS) {
          const oldest = this.#remoteRequests.keys().next().value;
          if (oldest !== undefined) this.#remoteRequests.delete(oldest);
        }
        this.#remoteRequests.set(replyId, { host: meta.host, conn: meta.conn ?? 0, r: meta.r ?? 0 });
      }
      const n = this.#router.routeArrived(meta, seq, payload, replyId, headers);
      if (isRequest && n === 0) {
        this.#remoteRequests.delete(replyId);
        this.#answer(meta, {
          kind: 'error',
          code: 'NO_RESPONDERS',
          message: `no responder for request ${meta.uri} on ${this.hostName}`,
        });
      } else if ((meta.flags & PubFlag.ACK) !== 0) {
        this.#answer(meta, { kind: 'ack', n });
      }
    } catch (err) {
      if (meta.conn === undefined || meta.r === undefined) {
        // A plain publish gets no answer: refused here (bad headers, a bad URI), it is counted.
        this.#stats.federationUnreadable++;
        return;
      }
      const e = err instanceof NodesetError ? err : new NodesetError('INTERNAL', 'federated publish failed');
      this.#answer(meta, { kind: 'error', code: e.code, message: e.message });
    }
  }

  /** Answers an acked publish or a request from another host (a plain publish gets no answer). */
  #answer(meta: Arrival, a: Omit<Answer, 'conn' | 'r'>): void {
    if (meta.conn !== undefined && meta.r !== undefined) {
      this.#federation.answer(meta.host, { conn: meta.conn, r: meta.r, ...a });
    }
  }

  answered(answer: Answer, from: string): void {
    const key = `${answer.conn} ${answer.r}`;
    if (this.#awaiting.get(key) !== from) {
      // Nothing of this host's went there under that id: a forged or late answer.
      this.#stats.federationUnreadable++;
      return;
    }
    this.#awaiting.delete(key);
    this.#answerLocal(answer);
  }

  subscribers(uri: string): SubscriberInfo[] {
    return this.#router.subscribers(uri);
  }

  patterns(): string[] {
    return [...this.#interest.keys()];
  }

  groups(): [string, string][] {
    return [...this.#groups.keys()].map((k) => {
      const i = k.indexOf(' ');
      return [k.slice(0, i), k.slice(i + 1)];
    });
  }

  responders(): string[] {
    return [...this.#responders.keys()];
  }

  sent(): void {
    this.#stats.federationOut++;
  }

  refused(): void {
    this.#stats.federationRejected++;
  }

  lost(count: number): void {
    this.#stats.federationLost += count;
  }

  unreadable(): void {
    this.#stats.federationUnreadable++;
  }

  hostChanged(uri: typeof HOST_JOINED | typeof HOST_LEFT, presence: HostPresence): void {
    this.#router.publishInternal(uri, Buffer.from(JSON.stringify(presence)));
  }
}
