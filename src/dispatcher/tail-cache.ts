import { packMsgTail, setSeq } from '../protocol/frames.js';

/** One packed MSG header tail and what it was packed for. */
interface TailEntry {
  readonly sender: string;
  readonly ct: number;
  readonly single: boolean;
  readonly tail: Buffer;
  /** Another variant of the same URI (other sender, content type or mode). */
  next: TailEntry | undefined;
}

/** URIs whose tails a connection keeps; past it the cache starts over. */
export const TAIL_CACHE_LIMIT = 256;
/** Variants kept per URI (node collection members publishing the same URI); past it the oldest goes. */
const VARIANTS_PER_URI = 16;

/**
 * The packed MSG header tails of one connection's plain publishes, by URI,
 * then sender, content type and mode. Looked up by the URI string alone (its
 * hash is cached on the string), so the hot path builds no key.
 */
export class TailCache {
  #byUri = new Map<string, TailEntry>();

  /** The tail for a publish, with its sequence number patched in. */
  tail(uri: string, sender: string, ct: number, single: boolean, seq: number): Buffer {
    const head = this.#byUri.get(uri);
    let variants = 0;
    for (let e = head; e !== undefined; e = e.next) {
      if (e.sender === sender && e.ct === ct && e.single === single) return setSeq(e.tail, seq);
      variants++;
    }
    const tail = packMsgTail(uri, sender, ct, 0, 0, single, seq);
    if (head === undefined && this.#byUri.size >= TAIL_CACHE_LIMIT) this.#byUri.clear();
    this.#byUri.set(uri, { sender, ct, single, tail, next: variants < VARIANTS_PER_URI ? head : undefined });
    return tail;
  }

  get size(): number {
    return this.#byUri.size;
  }
}
