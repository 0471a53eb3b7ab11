/**
 * Sequence numbers and gap detection. A node numbers its `all`-mode
 * publishes per URI (Sequences) and, for the URIs it used lately, announces
 * the last number now and then; a subscription that sees a stream's numbers
 * jump, or hears of a number past the last it saw, reports the missed range
 * (GapTracker). A stream is one publisher (`from`) on one connection (the
 * dispatcher's stream id) on one URI. See docs/guarantees.md for what this
 * does and does not detect.
 */

/** Counters kept per node (URIs published) and per subscription (streams seen). */
const SEQ_TABLE_LIMIT = 100_000;
/** URIs whose last number a node announces: the most recently used ones, within ANNOUNCE_WINDOW_MS. */
export const ANNOUNCE_MAX_URIS = 256;
export const ANNOUNCE_WINDOW_MS = 30_000;

interface SeqEntry {
  seq: number;
  /** The announce tick in which the URI was last numbered. */
  tick: number;
}

/** Where announces go: returns false when they cannot be sent now (not connected). */
export type AnnounceSender = (uri: string, seq: number) => boolean;

/** A publisher's sequence numbers, one run per URI, and the announces of the recent ones. */
export class Sequences {
  readonly #seqs = new Map<string, SeqEntry>();
  /** URIs numbered within the window, least recently numbered first; bounded by ANNOUNCE_MAX_URIS. */
  readonly #recent = new Map<string, SeqEntry>();
  readonly #intervalMs: number;
  readonly #windowTicks: number;
  readonly #send: AnnounceSender | null;
  #tick = 1;
  #timer: NodeJS.Timeout | null = null;

  /** `intervalMs` 0 or no `send`: no announces. */
  constructor(intervalMs = 0, send: AnnounceSender | null = null) {
    this.#intervalMs = intervalMs;
    this.#send = intervalMs > 0 ? send : null;
    this.#windowTicks = intervalMs > 0 ? Math.max(1, Math.ceil(ANNOUNCE_WINDOW_MS / intervalMs)) : 0;
  }

  /** The next number for a URI. */
  next(uri: string): number {
    let entry = this.#seqs.get(uri);
    if (entry === undefined) {
      // Bounded: past the limit the counters restart, which subscribers take as a restart, not a gap.
      if (this.#seqs.size >= SEQ_TABLE_LIMIT) {
        this.#seqs.clear();
        this.#recent.clear();
      }
      entry = { seq: 0, tick: 0 };
      this.#seqs.set(uri, entry);
    }
    entry.seq = (entry.seq % 0xfffffffe) + 1;
    // Once per URI and announce interval (one comparison otherwise).
    if (entry.tick !== this.#tick) this.#numbered(uri, entry);
    return entry.seq;
  }

  /** Gives a number back (its publish was refused) when it is still the latest for its URI. */
  giveBack(uri: string, seq: number): void {
    const entry = this.#seqs.get(uri);
    if (seq === 0 || entry === undefined || entry.seq !== seq) return;
    entry.seq = seq - 1;
  }

  /** Announces the last number of every recent URI now (after a reconnect). */
  announce(): void {
    const send = this.#send;
    if (send === null) return;
    for (const [uri, entry] of this.#recent) {
      if (entry.seq !== 0 && !send(uri, entry.seq)) return;
    }
  }

  /** URIs announced now (tests, stats). */
  get recentCount(): number {
    return this.#recent.size;
  }

  /** Stops the announces (node stop); they start again with the next publish. */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#tick++;
  }

  #numbered(uri: string, entry: SeqEntry): void {
    entry.tick = this.#tick;
    // The dispatcher's own events ($nodeset.…, a node's metrics) are not announced.
    if (this.#send === null || uri.charCodeAt(0) === 36 /* $ */) return;
    this.#recent.delete(uri);
    this.#recent.set(uri, entry);
    if (this.#recent.size > ANNOUNCE_MAX_URIS) {
      const oldest = this.#recent.keys().next().value;
      if (oldest !== undefined) this.#recent.delete(oldest);
    }
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.#onTick(), this.#intervalMs);
      this.#timer.unref();
    }
  }

  #onTick(): void {
    const tick = ++this.#tick;
    for (const [uri, entry] of this.#recent) {
      if (tick - entry.tick <= this.#windowTicks) break; // the rest were numbered later
      this.#recent.delete(uri);
    }
    if (this.#recent.size === 0) {
      this.stop();
      return;
    }
    this.announce();
  }
}

/**
 * What one subscription has seen of each stream: (from, stream id, URI) →
 * last number. The stream seen last is kept in fields (the common case: one
 * publisher, one URI), the others in a bounded table.
 */
export class GapTracker {
  #lastFrom: string | null = null;
  #lastStream = 0;
  #lastUri: string | null = null;
  #lastSeq = 0;
  #seen: Map<string, Map<string, Map<number, number>>> | null = null;
  #seenCount = 0;

  /** Records a message's number; returns the missed range when it jumped, else null. */
  check(from: string, stream: number, uri: string, seq: number): [number, number] | null {
    let last: number | undefined;
    if (this.#lastFrom === from && this.#lastStream === stream && this.#lastUri === uri) {
      last = this.#lastSeq;
    } else {
      this.#keepLast();
      last = this.#seen?.get(from)?.get(uri)?.get(stream);
      this.#lastFrom = from;
      this.#lastStream = stream;
      this.#lastUri = uri;
    }
    this.#lastSeq = seq;
    // A number at or below the last one means the publisher restarted: a new stream, not a gap.
    if (last === undefined || seq <= last + 1) return null;
    return [last + 1, seq - 1];
  }

  /**
   * A publisher announced the last number of a stream: returns the tail this
   * subscription missed, once (null when it saw it all, or never saw the stream).
   */
  announced(from: string, stream: number, uri: string, seq: number): [number, number] | null {
    if (this.#lastFrom === from && this.#lastStream === stream && this.#lastUri === uri) {
      const last = this.#lastSeq;
      if (seq <= last) return null;
      this.#lastSeq = seq;
      return [last + 1, seq];
    }
    const byStream = this.#seen?.get(from)?.get(uri);
    const last = byStream?.get(stream);
    if (byStream === undefined || last === undefined || seq <= last) return null;
    byStream.set(stream, seq);
    return [last + 1, seq];
  }

  /** Moves the stream held in the fields into the table. */
  #keepLast(): void {
    const from = this.#lastFrom;
    if (from === null) return;
    const uri = this.#lastUri as string;
    const stream = this.#lastStream;
    // Bounded: past the limit what was seen is forgotten (the next numbers start new streams, no gap).
    if (this.#seen === null || this.#seenCount >= SEQ_TABLE_LIMIT) {
      this.#seen = new Map();
      this.#seenCount = 0;
    }
    let byUri = this.#seen.get(from);
    if (byUri === undefined) {
      byUri = new Map();
      this.#seen.set(from, byUri);
    }
    let byStream = byUri.get(uri);
    if (byStream === undefined) {
      byStream = new Map();
      byUri.set(uri, byStream);
    }
    if (!byStream.has(stream)) this.#seenCount++;
    byStream.set(stream, this.#lastSeq);
  }
}
