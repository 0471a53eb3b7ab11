/**
 * Which all-hosts patterns need a NATS subscription of their own: a pattern
 * covered by another wanted pattern (`x.y` under `x.>`) does not, since NATS
 * delivers a message once per matching subscription and the covering one
 * already brings it. Pure: no connection, no timers (see docs/federation.md,
 * "Subjects").
 */
import { covers } from '../security/permissions.js';

/** What adding a pattern changes on NATS. */
export interface CoverAdded {
  /** The subscribed pattern that covers it (it needs no subscription), or null. */
  readonly coveredBy: string | null;
  /** Subscribed patterns it covers: their subscriptions are no longer needed. */
  readonly superseded: readonly string[];
}

/** What removing a pattern changes on NATS. */
export interface CoverRemoved {
  /** True when it had a subscription of its own, which is no longer needed. */
  readonly dropped: boolean;
  /** Wanted patterns it covered that nothing else covers: they need their own subscription again. */
  readonly restored: readonly string[];
}

/**
 * The wanted all-hosts patterns and, among them, the ones that need a NATS
 * subscription: those no other wanted pattern covers. A change costs one
 * pass over the patterns (a removal, one more per pattern it covered).
 */
export class PatternCover {
  readonly #wanted = new Set<string>();
  readonly #subscribed = new Set<string>();

  /** The patterns local nodes subscribe to (what this host announces). */
  get wanted(): ReadonlySet<string> {
    return this.#wanted;
  }

  /** The wanted patterns that need a NATS subscription. */
  get subscribed(): ReadonlySet<string> {
    return this.#subscribed;
  }

  /** Adds a wanted pattern; null when it was already wanted. */
  add(pattern: string): CoverAdded | null {
    if (this.#wanted.has(pattern)) return null;
    this.#wanted.add(pattern);
    // Covering is transitive, so a covered pattern is covered by one of the subscribed.
    for (const s of this.#subscribed) {
      if (covers(s, pattern)) return { coveredBy: s, superseded: [] };
    }
    const superseded: string[] = [];
    for (const s of this.#subscribed) {
      if (covers(pattern, s)) superseded.push(s);
    }
    for (const s of superseded) this.#subscribed.delete(s);
    this.#subscribed.add(pattern);
    return { coveredBy: null, superseded };
  }

  /** Removes a wanted pattern; null when it was not wanted. */
  remove(pattern: string): CoverRemoved | null {
    if (!this.#wanted.delete(pattern)) return null;
    if (!this.#subscribed.delete(pattern)) return { dropped: false, restored: [] };
    const restored: string[] = [];
    for (const w of this.#wanted) {
      if (covers(pattern, w) && !this.#coveredByOther(w)) restored.push(w);
    }
    for (const w of restored) this.#subscribed.add(w);
    return { dropped: true, restored };
  }

  #coveredByOther(pattern: string): boolean {
    for (const w of this.#wanted) {
      if (w !== pattern && covers(w, pattern)) return true;
    }
    return false;
  }
}
