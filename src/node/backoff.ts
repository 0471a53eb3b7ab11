/**
 * Reconnect back-off: exponential delays with jitter, capped, reset on
 * success.
 */
export interface BackoffOptions {
  /** First delay, in ms. Default 100. */
  initialMs?: number;
  /** Upper bound on any delay, in ms. Default 30,000. */
  maxMs?: number;
  /** Growth per attempt. Default 1.5. */
  factor?: number;
}

/**
 * Exponential back-off with jitter: attempt n waits between half and all of
 * min(maxMs, initialMs * factor^n), so nodes that lost the same dispatcher do
 * not all come back in the same millisecond.
 */
export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly factor: number;
  #attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 100;
    this.maxMs = options.maxMs ?? 30_000;
    this.factor = options.factor ?? 1.5;
  }

  get attempt(): number {
    return this.#attempt;
  }

  next(random: () => number = Math.random): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * this.factor ** this.#attempt);
    this.#attempt++;
    return Math.round(ceiling / 2 + (random() * ceiling) / 2);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
