/**
 * Failed attempts per address, with an exponential back-off: after its n-th
 * failure in a row an address may not try again for
 * min(baseMs * 2^(n-1), maxMs). An address is forgotten after a success, or
 * once `forgetMs` have passed since its last failure. Pure: time comes from
 * `now`, so it is tested without waiting.
 */
export interface FailureBackoffOptions {
  /** Wait after the first failure, in ms. */
  baseMs: number;
  /** Longest wait, in ms. */
  maxMs: number;
  /** An address with no failure for this long starts again from baseMs, in ms. */
  forgetMs: number;
  /** Addresses remembered at once; the least recently failed are forgotten first. */
  maxAddresses: number;
  now?: () => number;
}

interface Entry {
  failures: number;
  /** When the address may try again (ms since the epoch). */
  until: number;
  last: number;
}

export class FailureBackoff {
  readonly #o: Required<FailureBackoffOptions>;
  readonly #entries = new Map<string, Entry>();

  constructor(options: FailureBackoffOptions) {
    this.#o = { now: Date.now, ...options };
  }

  /** How long `address` must still wait before an attempt of its is checked, in ms (0: it may try now). */
  waitMs(address: string): number {
    const e = this.#entries.get(address);
    if (e === undefined) return 0;
    const now = this.#o.now();
    if (now - e.last >= this.#o.forgetMs) {
      this.#entries.delete(address);
      return 0;
    }
    return Math.max(0, e.until - now);
  }

  /**
   * Takes the next turn of `address` for an attempt to be checked; returns
   * how long the attempt waits for it, in ms. While the address is backing
   * off, its turns are one interval apart, so attempts made in parallel are
   * checked one after another rather than all at once.
   */
  takeTurn(address: string): number {
    const wait = this.waitMs(address);
    const e = this.#entries.get(address);
    if (e === undefined) return 0;
    const now = this.#o.now();
    e.until = Math.max(now, e.until) + this.#interval(e.failures);
    return wait;
  }

  #interval(failures: number): number {
    return Math.min(this.#o.maxMs, this.#o.baseMs * 2 ** Math.min(failures - 1, 30));
  }

  /** Records a failed attempt; returns the wait it imposes on `address`, in ms. */
  fail(address: string): number {
    const now = this.#o.now();
    const before = this.#entries.get(address);
    const failures = before === undefined || now - before.last >= this.#o.forgetMs ? 1 : before.failures + 1;
    const wait = this.#interval(failures);
    // Re-inserted, so the map's order is least recently failed first. Turns already taken stay taken.
    this.#entries.delete(address);
    const until = Math.max(now + wait, failures > 1 && before !== undefined ? before.until : 0);
    this.#entries.set(address, { failures, until, last: now });
    while (this.#entries.size > this.#o.maxAddresses) {
      this.#entries.delete(this.#entries.keys().next().value as string);
    }
    return wait;
  }

  /** A successful attempt clears the address. */
  succeed(address: string): void {
    this.#entries.delete(address);
  }

  /** Addresses remembered now. */
  get size(): number {
    return this.#entries.size;
  }
}
