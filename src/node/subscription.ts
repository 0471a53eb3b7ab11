/**
 * The object subscribe() and respond() resolve with: unsubscribe, drain,
 * per-subscription counters, `await using`, and (for a subscription made
 * without a handler) an async iterator over its messages that takes the
 * subscription's queue bound as its back-pressure.
 */
import { NodesetError } from '../protocol/errors.js';
import type { LocalSubscription } from './channel.js';
import type { EventInfo } from './handlers.js';
import { SUBSCRIPTION_ENDED } from './internal.js';

/** One message as the iterator of a subscription yields it. */
export interface Delivered<M = unknown> {
  readonly message: M;
  readonly info: EventInfo;
}

/** A subscription's counters since it was made. */
export interface SubscriptionStats {
  /** Messages the dispatcher delivered to it. */
  readonly received: number;
  /** Messages its handler (or iterator's consumer) is done with, whether it returned, threw or failed validation. */
  readonly handled: number;
  /** Messages dropped by its overflow policy, or waiting in its queue when it was removed. */
  readonly dropped: number;
  /** Messages waiting in its queue now. */
  readonly queued: number;
}

/** What a Subscription needs of its node. */
export interface SubscriptionOwner {
  /** Removes it now: what waits in its queue is dropped, and counted. */
  unsubscribe(sub: LocalSubscription): Promise<void>;
  /** Stops new messages at the dispatcher, waits until what it has received is handled, then removes it. */
  drain(sub: LocalSubscription, signal: AbortSignal | undefined): Promise<void>;
}

/**
 * A live subscription, as subscribe() and respond() resolve with it.
 *
 * ```ts
 * const sub = await node.subscribe('orders.created');
 * for await (const { message, info } of sub) { ... } // break: unsubscribes
 * ```
 */
export class Subscription<M = unknown> implements AsyncIterable<Delivered<M>>, AsyncDisposable {
  readonly #sub: LocalSubscription;
  readonly #owner: SubscriptionOwner;
  #ended = false;
  #iterating = false;
  /** Messages handed to the iterator that no next() has taken yet, with the callbacks that free their handler slot. */
  #ready: [Delivered<M>, () => void][] = [];
  /** Slots of messages the consumer holds: freed when it asks for the next one (or stops). */
  #inHand: (() => void)[] = [];
  #waiters: ((result: IteratorResult<Delivered<M>>) => void)[] = [];

  /** @internal Made by Node. */
  constructor(sub: LocalSubscription, owner: SubscriptionOwner) {
    this.#sub = sub;
    this.#owner = owner;
  }

  /** The subscribed URI (wildcards allowed). */
  get uri(): string {
    return this.#sub.uri;
  }

  /** The queue group, or null. */
  get group(): string | null {
    return this.#sub.group;
  }

  /** True for a responder (respond(), `reply: true`). */
  get responds(): boolean {
    return this.#sub.responds;
  }

  /** True once it is removed (unsubscribe, drain, abort, node.unsubscribe) or its node stopped. */
  get closed(): boolean {
    return this.#ended;
  }

  /** Its counters now. */
  get stats(): SubscriptionStats {
    const s = this.#sub;
    return { received: s.received, handled: s.handled, dropped: s.dropped, queued: s.queue.length };
  }

  /**
   * Removes the subscription now: its handler is never called again, and
   * what waits in its queue is dropped (counted in `stats.dropped`).
   * Idempotent.
   */
  unsubscribe(): Promise<void> {
    return this.#owner.unsubscribe(this.#sub);
  }

  /**
   * Unsubscribes gracefully: the dispatcher stops sending to it, then drain
   * waits until every message it has received (being handled, or waiting in
   * its queue) is handled, and removes it. With an iterator, "handled" means
   * the consumer asked for the next message. Aborting the signal removes it
   * at once (as unsubscribe() does) and rejects with ABORTED.
   */
  drain(options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.#owner.drain(this.#sub, options.signal);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.unsubscribe();
  }

  /**
   * Iterates over the messages of a subscription made without a handler.
   * One message at a time is in the consumer's hands (`maxInFlight` of
   * them); the others wait in the subscription's bounded queue, and past
   * `queueLimit` its `overflow` policy applies exactly as for a slow handler.
   * Messages that arrive before iteration starts go to the node's onEvent.
   * Ending the loop (break, return, a throw) unsubscribes.
   */
  [Symbol.asyncIterator](): AsyncIterator<Delivered<M>> {
    if (this.#sub.handler !== null && !this.#iterating) {
      throw new NodesetError('BAD_OPTION', `the subscription to ${this.uri} has a handler: it cannot be iterated`);
    }
    if (this.#iterating) throw new NodesetError('BAD_OPTION', `the subscription to ${this.uri} is already iterated`);
    this.#iterating = true;
    this.#sub.handler = this.#push;
    return {
      next: () => this.#next(),
      return: async () => {
        this.#freeHeld();
        await this.unsubscribe();
        return { done: true, value: undefined };
      },
    };
  }

  /** The node removed it, or stopped. @internal */
  [SUBSCRIPTION_ENDED](): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#freeHeld();
    for (const [, free] of this.#ready.splice(0)) free();
    for (const wake of this.#waiters.splice(0)) wake({ done: true, value: undefined });
  }

  /** The iterator's handler: the message waits for a next(); its slot is freed when the consumer is done with it. */
  #push = (message: unknown, info: EventInfo): Promise<void> =>
    new Promise<void>((free) => {
      const item: Delivered<M> = { message: message as M, info };
      const waiter = this.#waiters.shift();
      if (waiter === undefined) {
        this.#ready.push([item, free]);
        return;
      }
      this.#inHand.push(free);
      waiter({ done: false, value: item });
    });

  #next(): Promise<IteratorResult<Delivered<M>>> {
    // Asking for the next one: the consumer is done with the ones it holds.
    this.#freeHeld();
    const ready = this.#ready.shift();
    if (ready !== undefined) {
      this.#inHand.push(ready[1]);
      return Promise.resolve({ done: false, value: ready[0] });
    }
    if (this.#ended) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #freeHeld(): void {
    if (this.#inHand.length === 0) return;
    for (const free of this.#inHand.splice(0)) free();
  }
}
