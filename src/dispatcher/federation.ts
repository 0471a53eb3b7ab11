import { isErrorCode, NodesetError } from '../protocol/errors.js';
import { FrameKind, PubFlag, packHeader, type SubscriberInfo } from '../protocol/frames.js';
import type { Dispatcher } from './dispatcher.js';

/** A publish travelling between hosts. */
export interface Envelope {
  uri: string;
  /** Publishing node's name. */
  from: string;
  /** Origin host. */
  host: string;
  ct: number;
  flags: number;
  payload: Uint8Array;
  /** The publisher's sequence number for this URI (0: none). */
  seq?: number;
  /** For ACK and REQUEST: where the answer goes on the origin host. */
  conn?: number;
  r?: number;
}

/** An answer travelling back to the origin host: an ack count, a reply, or an error. */
export interface Answer {
  conn: number;
  r: number;
  kind: 'ack' | 'reply' | 'error';
  n?: number;
  ct?: number;
  payload?: Uint8Array;
  code?: string;
  message?: string;
}

/**
 * The link between this host's dispatcher and the others'. The dispatcher
 * only sees this interface; `src/federation/` implements it over NATS.
 */
export interface Federation {
  readonly connected: boolean;
  start(dispatcher: Dispatcher): Promise<void>;
  stop(): Promise<void>;
  /** A publish for one other host (`B/event`, `node@B/event`). */
  forward(host: string, envelope: Envelope): void;
  /** An all-hosts publish (`*\/event`) for the other hosts. */
  broadcast(envelope: Envelope): void;
  /** An answer for the origin host of a forwarded publish. */
  answer(host: string, answer: Answer): void;
  /** Who subscribes to `uri` on another host (stream peers across hosts). */
  subscribers(host: string, uri: string): Promise<SubscriberInfo[]>;
  /**
   * Local subscribers appeared for (or left) a pattern: declare interest in
   * all-hosts events. A new interest may return a promise that resolves once
   * other hosts' publishes will reach it (it never rejects).
   */
  interest(pattern: string, present: boolean): Promise<void> | undefined;
}

/** Connection id that stands for "the requester is on another host". */
export const FEDERATION_CONN = 0xffffffff;
const MAX_REMOTE_REQUESTS = 10_000;

/**
 * The dispatcher's side of federation: routes what arrives from other hosts,
 * keeps the table of requests from other hosts awaiting a local reply, and
 * counts local interest per pattern.
 */
export class FederationGlue {
  readonly #dispatcher: Dispatcher;
  readonly #federation: Federation;
  readonly #remoteRequests = new Map<number, { host: string; conn: number; r: number }>();
  readonly #interest = new Map<string, number>();
  /** Interests declared and not yet in effect. */
  readonly #declaring = new Map<string, Promise<void>>();
  #nextId = 1;

  constructor(dispatcher: Dispatcher, federation: Federation) {
    this.#dispatcher = dispatcher;
    this.#federation = federation;
  }

  /** A publish from another host, for this one (or for all hosts). */
  arrived(env: Envelope): void {
    const d = this.#dispatcher;
    d.stats.federationIn++;
    const answer = (a: Omit<Answer, 'conn' | 'r'>) => {
      if (env.conn !== undefined && env.r !== undefined) {
        this.#federation.answer(env.host, { conn: env.conn, r: env.r, ...a });
      }
    };
    try {
      const target = d.resolve(env.uri);
      if (!target.local) return; // not for this host
      const payload = Buffer.from(env.payload.buffer, env.payload.byteOffset, env.payload.byteLength);
      const isRequest = (env.flags & PubFlag.REQUEST) !== 0;
      let replyId = 0;
      if (isRequest) {
        replyId = this.#nextId;
        this.#nextId = replyId >= 0xfffffff0 ? 1 : replyId + 1;
        if (this.#remoteRequests.size >= MAX_REMOTE_REQUESTS) {
          const oldest = this.#remoteRequests.keys().next().value;
          if (oldest !== undefined) this.#remoteRequests.delete(oldest);
        }
        this.#remoteRequests.set(replyId, { host: env.host, conn: env.conn ?? 0, r: env.r ?? 0 });
      }
      const flags = env.flags & ~PubFlag.LOCAL_DONE;
      const n = d.routeLocal(
        target,
        env.from,
        env.uri,
        flags,
        env.ct,
        payload,
        FEDERATION_CONN,
        replyId,
        null,
        undefined,
        env.seq ?? 0,
      );
      if (isRequest && n === 0) {
        this.#remoteRequests.delete(replyId);
        answer({
          kind: 'error',
          code: 'NO_RESPONDERS',
          message: `no subscriber for request ${env.uri} on ${d.hostName}`,
        });
      } else if ((env.flags & PubFlag.ACK) !== 0) {
        answer({ kind: 'ack', n });
      }
    } catch (err) {
      const e = err instanceof NodesetError ? err : new NodesetError('INTERNAL', 'federated publish failed');
      answer({ kind: 'error', code: e.code, message: e.message });
    }
  }

  /** A local responder's reply to a request from another host. */
  reply(replyId: number, ct: number, err: { code: string; message: string } | undefined, payload: Buffer): boolean {
    const origin = this.#remoteRequests.get(replyId);
    if (origin === undefined) return false;
    this.#remoteRequests.delete(replyId);
    this.#federation.answer(
      origin.host,
      err === undefined
        ? { conn: origin.conn, r: origin.r, kind: 'reply', ct, payload }
        : { conn: origin.conn, r: origin.r, kind: 'error', code: err.code, message: err.message },
    );
    return true;
  }

  /** An answer from another host for one of this host's connections. */
  answered(a: Answer): void {
    const session = this.#dispatcher.sessions.get(a.conn);
    if (session === undefined || !session.open) return;
    if (a.kind === 'ack') {
      session.ok({ r: a.r, n: a.n ?? 0 });
    } else if (a.kind === 'reply') {
      const payload =
        a.payload === undefined ? null : Buffer.from(a.payload.buffer, a.payload.byteOffset, a.payload.byteLength);
      session.fs.send(FrameKind.REPLY, packHeader({ r: a.r, ct: a.ct ?? 0 }), payload);
    } else {
      const code = isErrorCode(a.code) ? a.code : 'INTERNAL';
      session.error(new NodesetError(code, a.message ?? 'error on the remote host'), a.r);
    }
  }

  /**
   * Counts local subscriptions per pattern; tells the federation when one
   * appears or goes. For a new subscription it returns, while the pattern's
   * interest is still on its way, a promise that resolves once it is in effect.
   */
  interestChanged(pattern: string, delta: 1 | -1): Promise<void> | undefined {
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
    return delta === 1 ? this.#declaring.get(pattern) : undefined;
  }

  /** Patterns with local interest (declared again when the link comes back). */
  patterns(): string[] {
    return [...this.#interest.keys()];
  }
}
