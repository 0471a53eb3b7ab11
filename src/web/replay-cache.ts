/**
 * The signatures seen within their time window, so that none is accepted
 * twice. Entries are grouped in one-second buckets by the time they expire;
 * each call first drops the buckets that have expired (every entry is
 * dropped once, so the work per call is constant when averaged), never an
 * entry whose time has not come. When full it refuses new entries rather
 * than forget unexpired ones, which would reopen them to replay.
 */
export type RememberResult = 'fresh' | 'replay' | 'full';

const BUCKET_MS = 1000;

export class ReplayCache {
  readonly capacity: number;
  readonly #seen = new Set<string>();
  /** Ring of buckets: slot `n % length` holds the keys expiring in second `n`. */
  readonly #buckets: string[][];
  /** Buckets below this number have been emptied. */
  #swept = -1;

  /**
   * @param lifetimeMs longest time an entry may have to live (a signature's
   *   whole acceptance span: twice the window, as timestamps may be early or late)
   * @param capacity entries held at most
   */
  constructor(lifetimeMs: number, capacity: number) {
    this.capacity = capacity;
    this.#buckets = Array.from({ length: Math.ceil(lifetimeMs / BUCKET_MS) + 2 }, () => []);
  }

  get size(): number {
    return this.#seen.size;
  }

  /**
   * Remembers `key` until `expiresAt` (ms since the epoch, at most the
   * lifetime after `now`): 'fresh' when it was not there, 'replay' when it
   * was, 'full' when it was not and there is no room.
   */
  remember(key: string, expiresAt: number, now: number): RememberResult {
    this.#sweep(now);
    if (this.#seen.has(key)) return 'replay';
    if (this.#seen.size >= this.capacity) return 'full';
    // An entry is dropped with the bucket after the one it expires in; never before.
    const bucket = Math.max(Math.floor(expiresAt / BUCKET_MS), this.#swept);
    this.#seen.add(key);
    this.#slot(bucket).push(key);
    return 'fresh';
  }

  #slot(bucket: number): string[] {
    return this.#buckets[bucket % this.#buckets.length] as string[];
  }

  /** Empties every bucket whose second is over. */
  #sweep(now: number): void {
    const current = Math.floor(now / BUCKET_MS);
    if (this.#swept < 0) this.#swept = current;
    if (current <= this.#swept) return; // also when the clock went back: entries then live longer
    if (current - this.#swept >= this.#buckets.length) {
      // Everything held expired before now.
      for (const slot of this.#buckets) slot.length = 0;
      this.#seen.clear();
    } else {
      for (; this.#swept < current; this.#swept++) {
        const slot = this.#slot(this.#swept);
        for (const key of slot) this.#seen.delete(key);
        slot.length = 0;
      }
    }
    this.#swept = current;
  }
}
