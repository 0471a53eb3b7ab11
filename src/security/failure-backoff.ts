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

  /** Records a failed attempt; returns the wait it imposes on `address`, in ms. */
  fail(address: string): number {
    const now = this.#o.now();
    const before = this.#entries.get(address);
    const failures = before === undefined || now - before.last >= this.#o.forgetMs ? 1 : before.failures + 1;
    const wait = Math.min(this.#o.maxMs, this.#o.baseMs * 2 ** Math.min(failures - 1, 30));
    // Re-inserted, so the map's order is least recently failed first.
    this.#entries.delete(address);
    this.#entries.set(address, { failures, until: now + wait, last: now });
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
