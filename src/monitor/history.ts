/** One second of the dashboard's charts. */
export interface HistoryPoint {
  /** Seconds since the epoch. */
  t: number;
  publishesPerSec: number;
  deliveriesPerSec: number;
  bytesInPerSec: number;
  bytesOutPerSec: number;
  /** Messages dropped (slow consumers cut, overflows) per second. */
  droppedPerSec: number;
}

/** 15 minutes at one sample a second. */
export const HISTORY_SAMPLES = 900;

const COLUMNS = [
  't',
  'publishesPerSec',
  'deliveriesPerSec',
  'bytesInPerSec',
  'bytesOutPerSec',
  'droppedPerSec',
] as const;

/**
 * The recent samples the dashboard draws, kept by the server so that a page
 * opened (or reloaded) starts with the last minutes instead of empty charts.
 * A fixed ring: pushing never allocates past the capacity.
 */
export class HistoryRing {
  readonly #points: (HistoryPoint | undefined)[];
  #next = 0;
  #size = 0;

  constructor(readonly capacity = HISTORY_SAMPLES) {
    this.#points = new Array(capacity);
  }

  get size(): number {
    return this.#size;
  }

  push(point: HistoryPoint): void {
    this.#points[this.#next] = point;
    this.#next = (this.#next + 1) % this.capacity;
    this.#size = Math.min(this.#size + 1, this.capacity);
  }

  /** Oldest first, as columns (uPlot's data layout). */
  columns(): Record<(typeof COLUMNS)[number], number[]> {
    const out = Object.fromEntries(COLUMNS.map((c) => [c, [] as number[]])) as Record<
      (typeof COLUMNS)[number],
      number[]
    >;
    const start = (this.#next - this.#size + this.capacity) % this.capacity;
    for (let i = 0; i < this.#size; i++) {
      const p = this.#points[(start + i) % this.capacity] as HistoryPoint;
      for (const c of COLUMNS) out[c].push(p[c]);
    }
    return out;
  }
}
