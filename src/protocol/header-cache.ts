/** Packs a header for a URI, a sender (null: the connection's name), a content type and a mode. */
export type HeaderPacker = (uri: string, sender: string | null, ct: number, mode: number) => Buffer;

interface Entry {
  readonly sender: string | null;
  readonly ct: number;
  readonly mode: number;
  readonly packed: Buffer;
  /** Another variant of the same URI. */
  next: Entry | undefined;
}

/** Variants kept per URI (senders × content types × modes in use); past it the oldest goes. */
const VARIANTS_PER_URI = 16;

/**
 * Packed headers reused for every message of the same kind: PUB headers at
 * a publishing node, MSG header tails at the dispatcher. Looked up by the URI
 * string alone (its hash is cached on the string), then by sender, content
 * type and mode, so the hot path builds no key. Bounded: past `limit` URIs
 * the cache starts over. Callers patch the sequence number in (setSeq).
 */
export class HeaderCache {
  readonly #pack: HeaderPacker;
  readonly #limit: number;
  #byUri = new Map<string, Entry>();
  #last: Entry | undefined;
  #lastUri = '';

  constructor(pack: HeaderPacker, limit = 256) {
    this.#pack = pack;
    this.#limit = limit;
  }

  get(uri: string, sender: string | null, ct: number, mode: number): Buffer {
    // The last one asked for first: a connection mostly repeats itself.
    const last = this.#last;
    if (last !== undefined && this.#lastUri === uri && last.sender === sender && last.ct === ct && last.mode === mode) {
      return last.packed;
    }
    const entry = this.#entry(uri, sender, ct, mode);
    this.#last = entry;
    this.#lastUri = uri;
    return entry.packed;
  }

  #entry(uri: string, sender: string | null, ct: number, mode: number): Entry {
    const head = this.#byUri.get(uri);
    let variants = 0;
    for (let e = head; e !== undefined; e = e.next) {
      if (e.sender === sender && e.ct === ct && e.mode === mode) return e;
      variants++;
    }
    const entry = {
      sender,
      ct,
      mode,
      packed: this.#pack(uri, sender, ct, mode),
      next: variants < VARIANTS_PER_URI ? head : undefined,
    };
    if (head === undefined && this.#byUri.size >= this.#limit) this.#byUri.clear();
    this.#byUri.set(uri, entry);
    return entry;
  }

  /** URIs held. */
  get size(): number {
    return this.#byUri.size;
  }
}
