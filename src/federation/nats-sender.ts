/**
 * Hands cross-host publishes to NATS, in order: plain publishes made in one
 * turn of the event loop towards the same subject leave as one batch; a
 * publish alone in its turn, an acked publish, a request or a large payload
 * leaves alone with its metadata in NATS headers (nats-wire.ts). Changing
 * subject, or sending one alone, first sends the open batch, so publishes
 * leave in the order they were made.
 */
import type { PublishOptions } from 'nats';
import type { Envelope } from '../dispatcher/federation.js';
import { NodesetError } from '../protocol/errors.js';
import { readBuffer } from '../transport/shared-reads.js';
import type { NatsLink } from './nats-link.js';
import { BATCH_MAX_BYTES, BatchWriter, batchHeaders, SINGLE_MIN_BYTES, singleHeaders } from './nats-wire.js';

/** Room kept in a NATS message for its headers, under the server's max_payload. */
const HEADER_ROOM = 1024;

/** Where an open batch goes. */
export interface Destination {
  subject: string;
  /** The reply subject of a batch of `count` publishes (the NATS server's no-responders status goes there), if any. */
  reply: ((count: number) => string) | null;
  /** An id per batch, so that a host reached by several subscriptions delivers it once (all-hosts subjects). */
  id: (() => string) | null;
}

export class NatsSender {
  readonly #link: NatsLink;
  /** This host's name. */
  readonly #self: () => string;
  readonly #writer = new BatchWriter();
  /** Where the open batch goes (null: none open). */
  #to: Destination | null = null;
  /** The open batch's publish while it is the only one: sent alone, unless another joins it. */
  #first: Envelope | null = null;
  #scheduled = false;
  readonly #flush = () => {
    this.#scheduled = false;
    this.flush();
  };

  /** Publishes handed over earlier that the NATS client refused when their batch left (never thrown: it may be a microtask). */
  readonly #failed: (count: number, err: unknown) => void;

  constructor(link: NatsLink, self: () => string, failed: (count: number, err: unknown) => void) {
    this.#link = link;
    this.#self = self;
    this.#failed = failed;
  }

  /** A plain publish: joins the open batch for `to`, or opens one. */
  batched(to: Destination, env: Envelope): void {
    if (env.payload.length >= SINGLE_MIN_BYTES) {
      this.alone(to.subject, env, to.reply === null ? undefined : { reply: to.reply(1) }, to.id?.() ?? null);
      return;
    }
    if (this.#to !== null && this.#to.subject !== to.subject) this.flush();
    if (this.#to === null) {
      this.#open(to, env);
      return;
    }
    const max = this.#maxBatch();
    const first = this.#first;
    if (first !== null) {
      this.#first = null;
      this.#writer.add(first, max);
    }
    if (!this.#writer.add(env, max)) {
      this.flush();
      this.#open(to, env);
    } else if (this.#writer.bytes >= max) {
      this.flush();
    }
  }

  #open(to: Destination, env: Envelope): void {
    this.#to = to;
    // Kept until the turn ends: a payload still in the shared read buffer is copied.
    this.#first = readBuffer.borrowed ? { ...env, payload: Buffer.from(env.payload) } : env;
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#flush);
    }
  }

  /**
   * A publish sent alone, after the open batch. One the NATS client refuses
   * (larger than its max_payload with its headers) throws TOO_LARGE.
   */
  alone(subject: string, env: Envelope, options: PublishOptions | undefined, id: string | null): void {
    this.flush();
    const headers = singleHeaders(env, id);
    // The NATS client keeps the payload until it writes: one in the shared read buffer is copied.
    const payload = readBuffer.borrowed ? Buffer.from(env.payload) : env.payload;
    try {
      this.#link.publish(subject, payload, options === undefined ? { headers } : { ...options, headers });
    } catch (cause) {
      throw new NodesetError('TOO_LARGE', `the NATS client refused a cross-host publish: ${(cause as Error).message}`, {
        cause,
      });
    }
  }

  /**
   * Sends the open batch, if any. What the NATS client refuses goes to
   * `failed`, never thrown: this may run as a microtask, and its publishes
   * were handed over (and counted as sent) earlier.
   */
  flush(): void {
    const to = this.#to;
    if (to === null) return;
    this.#to = null;
    const first = this.#first;
    let count = 1;
    try {
      if (first !== null) {
        this.#first = null;
        this.alone(to.subject, first, to.reply === null ? undefined : { reply: to.reply(1) }, to.id?.() ?? null);
      } else {
        count = this.#writer.count;
        const data = this.#writer.take();
        const headers = batchHeaders(this.#self(), count, to.id?.() ?? null);
        this.#link.publish(to.subject, data, to.reply === null ? { headers } : { headers, reply: to.reply(count) });
      }
    } catch (err) {
      this.#failed(count, err);
    }
  }

  /** The largest batch: BATCH_MAX_BYTES, or less when the NATS server's max_payload is smaller. */
  #maxBatch(): number {
    const max = this.#link.maxPayload;
    return max > 0 ? Math.min(BATCH_MAX_BYTES, max - HEADER_ROOM) : BATCH_MAX_BYTES;
  }
}
