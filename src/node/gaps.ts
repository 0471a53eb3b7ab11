/**
 * Sequence numbers and gap detection. A node numbers its `all`-mode
 * publishes per URI (Sequences); a subscription that sees a publisher's
 * numbers jump reports the missed range (GapTracker). See docs/guarantees.md
 * for what this does and does not detect.
 */

/** Counters kept per node (URIs published) and per subscription (publishers × URIs seen). */
const SEQ_TABLE_LIMIT = 100_000;

/** A publisher's sequence numbers, one run per URI. */
export class Sequences {
  readonly #seqs = new Map<string, number>();

  /** The next number for a URI. */
  next(uri: string): number {
    const seq = ((this.#seqs.get(uri) ?? 0) % 0xfffffffe) + 1;
    // Bounded: past the limit the counters restart, which subscribers take as a restart, not a gap.
    if (seq === 1 && this.#seqs.size >= SEQ_TABLE_LIMIT) this.#seqs.clear();
    this.#seqs.set(uri, seq);
    return seq;
  }

  /** Gives a number back (its publish was refused) when it is still the latest for its URI. */
  giveBack(uri: string, seq: number): void {
    if (seq === 0 || this.#seqs.get(uri) !== seq) return;
    if (seq === 1) this.#seqs.delete(uri);
    else this.#seqs.set(uri, seq - 1);
  }
}

/**
 * What one subscription has seen of each publisher's numbers. The stream
 * seen last is kept in fields (the common case: one publisher, one URI), the
 * others in a bounded table.
 */
export class GapTracker {
  #lastFrom: string | null = null;
  #lastUri: string | null = null;
  #lastSeq = 0;
  #seen: Map<string, Map<string, number>> | null = null;

  /** Records a number; returns the missed range when it jumped, else null. */
  check(from: string, uri: string, seq: number): [number, number] | null {
    let last: number | undefined;
    if (this.#lastFrom === from && this.#lastUri === uri) {
      last = this.#lastSeq;
    } else {
      this.#seen ??= new Map();
      if (this.#lastFrom !== null) remember(this.#seen, this.#lastFrom, this.#lastUri as string, this.#lastSeq);
      last = this.#seen.get(from)?.get(uri);
      this.#lastFrom = from;
      this.#lastUri = uri;
    }
    this.#lastSeq = seq;
    // A number at or below the last one means the publisher restarted: a new stream, not a gap.
    if (last === undefined || seq <= last + 1) return null;
    return [last + 1, seq - 1];
  }
}

function remember(seen: Map<string, Map<string, number>>, from: string, uri: string, seq: number): void {
  let byUri = seen.get(from);
  if (byUri === undefined) {
    if (seen.size >= SEQ_TABLE_LIMIT) seen.clear();
    byUri = new Map();
    seen.set(from, byUri);
  }
  if (byUri.size >= SEQ_TABLE_LIMIT && !byUri.has(uri)) byUri.clear();
  byUri.set(uri, seq);
}
