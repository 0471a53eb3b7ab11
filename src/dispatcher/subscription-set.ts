/** Past this many subscriptions a connection's set switches from a list to a map. */
const LIST_LIMIT = 32;

interface HasSid {
  readonly sid: number;
}

/**
 * A connection's subscriptions by sid, in the order they were made. Most
 * connections hold a few, kept in a plain list (a tenth of a Map's memory, which matters with thousands of
 * connections); past LIST_LIMIT they move to a Map so lookups stay constant.
 */
export class SubscriptionSet<S extends HasSid> {
  #list: S[] | null = [];
  #map: Map<number, S> | null = null;

  get size(): number {
    return this.#list !== null ? this.#list.length : (this.#map as Map<number, S>).size;
  }

  get(sid: number): S | undefined {
    if (this.#list === null) return (this.#map as Map<number, S>).get(sid);
    for (const sub of this.#list) if (sub.sid === sid) return sub;
    return undefined;
  }

  /** Adds or replaces the subscription with this sid. */
  set(sub: S): void {
    const list = this.#list;
    if (list === null) {
      (this.#map as Map<number, S>).set(sub.sid, sub);
      return;
    }
    const i = list.findIndex((s) => s.sid === sub.sid);
    if (i !== -1) {
      list[i] = sub;
    } else if (list.length < LIST_LIMIT) {
      list.push(sub);
    } else {
      this.#map = new Map(list.map((s) => [s.sid, s]));
      this.#map.set(sub.sid, sub);
      this.#list = null;
    }
  }

  delete(sid: number): boolean {
    const list = this.#list;
    if (list === null) return (this.#map as Map<number, S>).delete(sid);
    const i = list.findIndex((s) => s.sid === sid);
    if (i === -1) return false;
    list.splice(i, 1);
    return true;
  }

  values(): IterableIterator<S> {
    return this.#list !== null ? this.#list.values() : (this.#map as Map<number, S>).values();
  }

  clear(): void {
    this.#list = [];
    this.#map = null;
  }
}
