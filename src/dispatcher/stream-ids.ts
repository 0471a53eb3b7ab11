/**
 * Stream ids: the number a subscriber keys a publisher's sequence numbers on,
 * one per publishing connection, so two nodes that share a name never share a
 * stream. A connection's stream id is its connection id, unless it resumes
 * one: the WELCOME gives it a random token, and a node that reconnects to
 * the same dispatcher process presents that token in HELLO (`resume`) to keep
 * its previous stream id (its numbers go on under the same key). Ids and
 * tokens live in this process only: after a dispatcher restart every
 * connection starts a new stream.
 */
import { randomBytes } from 'node:crypto';

/** Tokens of closed connections kept for a resume; past it the oldest is forgotten. */
const RESUMABLE_LIMIT = 10_000;
/** How long a closed connection's stream may be resumed, in ms. */
const RESUME_WINDOW_MS = 10 * 60_000;

interface Resumable {
  readonly stream: number;
  readonly name: string;
  readonly identity: string | null;
  readonly closedAt: number;
}

/** What a connection was given at its handshake. */
export interface StreamGrant {
  readonly stream: number;
  readonly token: string;
  /** True when it continues a previous connection's stream. */
  readonly resumed: boolean;
}

export class StreamIds {
  /** Closed connections' streams by resume token, oldest first. A live connection's token is not here. */
  readonly #closed = new Map<string, Resumable>();

  /**
   * The stream of a connection opening now: the one its `resume` token names
   * when that belonged to a closed connection of the same node name and
   * identity, else a new one (`connId`).
   */
  open(connId: number, resume: unknown, name: string, identity: string | null): StreamGrant {
    if (typeof resume === 'string') {
      const prior = this.#closed.get(resume);
      if (
        prior !== undefined &&
        prior.name === name &&
        prior.identity === identity &&
        Date.now() - prior.closedAt <= RESUME_WINDOW_MS
      ) {
        this.#closed.delete(resume);
        return { stream: prior.stream, token: resume, resumed: true };
      }
    }
    return { stream: connId, token: randomBytes(16).toString('base64url'), resumed: false };
  }

  /** A connection closed: its stream may be resumed with its token. */
  closed(grant: StreamGrant, name: string, identity: string | null): void {
    if (this.#closed.size >= RESUMABLE_LIMIT) {
      const oldest = this.#closed.keys().next().value;
      if (oldest !== undefined) this.#closed.delete(oldest);
    }
    this.#closed.set(grant.token, { stream: grant.stream, name, identity, closedAt: Date.now() });
  }

  /** Closed connections whose stream may still be resumed. */
  get resumable(): number {
    return this.#closed.size;
  }
}
