/**
 * The routing table: subscriptions by event pattern (exact names in a map,
 * wildcards in a trie), with cached routes per event that go stale when the
 * table changes.
 */
import { matchesPattern } from './event-uri.js';

/** What the routing table needs to know of a subscription. */
export interface RouteEntry {
  /** Event name pattern; may hold `*` and `>` tokens. */
  readonly pattern: string;
  readonly wildcard: boolean;
  /** Queue group, or null when every message goes to this subscription. */
  readonly group: string | null;
  /** Declared to answer requests; a request goes only to such subscriptions. */
  readonly responds?: boolean;
}

interface GroupRoute<S> {
  readonly name: string;
  readonly members: S[];
  next: number;
}

/** The subscriptions matching one concrete event name, with round-robin state. */
export class Route<S extends RouteEntry> {
  /** Every matching subscription, in subscription order. */
  readonly all: S[];
  /** Matching subscriptions outside any queue group. */
  readonly ungrouped: S[] = [];
  readonly groups: GroupRoute<S>[] = [];
  /** Matching subscriptions that answer requests. */
  readonly responders: S[] = [];
  /** Set when the subscriptions behind this route changed: look it up again (RoutingTable.match). */
  stale = false;
  #next = 0;
  #nextResponder = 0;

  constructor(all: S[]) {
    this.all = all;
    const byName = new Map<string, GroupRoute<S>>();
    for (const sub of all) {
      if (sub.responds === true) this.responders.push(sub);
      if (sub.group === null) {
        this.ungrouped.push(sub);
        continue;
      }
      let group = byName.get(sub.group);
      if (group === undefined) {
        group = { name: sub.group, members: [], next: 0 };
        byName.set(sub.group, group);
        this.groups.push(group);
      }
      group.members.push(sub);
    }
  }

  /** `direct` mode: exactly one of all matching subscriptions, round-robin. */
  pickOne(): S | undefined {
    const n = this.all.length;
    if (n === 0) return undefined;
    const sub = this.all[this.#next % n];
    this.#next = (this.#next + 1) % n;
    return sub;
  }

  /** A request: exactly one of the matching responders, round-robin. */
  pickResponder(): S | undefined {
    const n = this.responders.length;
    if (n === 0) return undefined;
    const sub = this.responders[this.#nextResponder % n];
    this.#nextResponder = (this.#nextResponder + 1) % n;
    return sub;
  }

  /** The next member of a queue group, round-robin. */
  static pickMember<S>(group: GroupRoute<S>): S {
    const sub = group.members[group.next % group.members.length] as S;
    group.next = (group.next + 1) % group.members.length;
    return sub;
  }
}

interface TrieNode<S> {
  readonly children: Map<string, TrieNode<S>>;
  /** Subscriptions whose pattern ends at this node. */
  readonly here: S[];
  /** Subscriptions whose pattern continues with a final `>` from this node. */
  readonly rest: S[];
}

function trieNode<S>(): TrieNode<S> {
  return { children: new Map(), here: [], rest: [] };
}

function removeFrom<S>(list: S[], sub: S): boolean {
  const i = list.indexOf(sub);
  if (i === -1) return false;
  list.splice(i, 1);
  return true;
}

/** Upper bound on cached routes; the cache is cleared when it is reached. */
export const ROUTE_CACHE_LIMIT = 10_000;

/**
 * Subscription index: exact event names in a hash map, wildcard patterns in a
 * token trie, and a cache of resolved routes per concrete event name. An exact
 * lookup costs one map access however many wildcard patterns exist; a
 * wildcard lookup walks only the trie branches its tokens can match.
 */
export class RoutingTable<S extends RouteEntry> {
  /** Exact patterns: the one subscription of a name, or a list when there are several (saves an array per name). */
  #exact = new Map<string, S | S[]>();
  #trie: TrieNode<S> = trieNode();
  #wildcards = 0;
  #size = 0;
  #cache = new Map<string, Route<S>>();

  get size(): number {
    return this.#size;
  }

  get wildcardCount(): number {
    return this.#wildcards;
  }

  add(sub: S): void {
    if (sub.wildcard) {
      let node = this.#trie;
      const tokens = sub.pattern.split('.');
      for (const token of tokens) {
        if (token === '>') break;
        let child = node.children.get(token);
        if (child === undefined) {
          child = trieNode();
          node.children.set(token, child);
        }
        node = child;
      }
      (tokens[tokens.length - 1] === '>' ? node.rest : node.here).push(sub);
      this.#wildcards++;
      this.#invalidateMatching(sub.pattern);
    } else {
      const entry = this.#exact.get(sub.pattern);
      if (entry === undefined) this.#exact.set(sub.pattern, sub);
      else if (Array.isArray(entry)) entry.push(sub);
      else this.#exact.set(sub.pattern, [entry, sub]);
      this.#uncache(sub.pattern);
    }
    this.#size++;
  }

  remove(sub: S): boolean {
    let removed: boolean;
    if (sub.wildcard) {
      removed = this.#removeWildcard(sub);
      if (removed) {
        this.#wildcards--;
        this.#invalidateMatching(sub.pattern);
      }
    } else {
      const entry = this.#exact.get(sub.pattern);
      if (entry === sub) {
        this.#exact.delete(sub.pattern);
        removed = true;
      } else if (Array.isArray(entry)) {
        removed = removeFrom(entry, sub);
        if (entry.length === 1) this.#exact.set(sub.pattern, entry[0] as S);
      } else {
        removed = false;
      }
      this.#uncache(sub.pattern);
    }
    if (removed) this.#size--;
    return removed;
  }

  /** The route for a concrete (wildcard-free) event name. */
  match(event: string): Route<S> {
    let route = this.#cache.get(event);
    if (route !== undefined) return route;
    route = new Route(this.lookup(event));
    if (this.#cache.size >= ROUTE_CACHE_LIMIT) {
      for (const old of this.#cache.values()) old.stale = true;
      this.#cache.clear();
    }
    this.#cache.set(event, route);
    return route;
  }

  /** The subscriptions matching an event name, from the index itself (no cache). */
  lookup(event: string): S[] {
    const exact = this.#exact.get(event);
    const all = exact === undefined ? [] : Array.isArray(exact) ? exact.slice() : [exact];
    if (this.#wildcards > 0 && this.#mayMatchWildcard(event)) this.#collect(this.#trie, event.split('.'), 0, all);
    return all;
  }

  /** False when no wildcard subscription can match: none starts with this event's first token, `*` or `>`. */
  #mayMatchWildcard(event: string): boolean {
    const root = this.#trie;
    if (root.rest.length > 0 || root.children.has('*')) return true;
    const dot = event.indexOf('.');
    return root.children.has(dot === -1 ? event : event.slice(0, dot));
  }

  #collect(node: TrieNode<S>, tokens: string[], i: number, out: S[]): void {
    if (i === tokens.length) {
      for (const sub of node.here) out.push(sub);
      return;
    }
    for (const sub of node.rest) out.push(sub);
    const child = node.children.get(tokens[i] as string);
    if (child !== undefined) this.#collect(child, tokens, i + 1, out);
    const star = node.children.get('*');
    if (star !== undefined) this.#collect(star, tokens, i + 1, out);
  }

  #removeWildcard(sub: S): boolean {
    const tokens = sub.pattern.split('.');
    const path: TrieNode<S>[] = [this.#trie];
    let node = this.#trie;
    for (const token of tokens) {
      if (token === '>') break;
      const child = node.children.get(token);
      if (child === undefined) return false;
      node = child;
      path.push(node);
    }
    if (!removeFrom(tokens[tokens.length - 1] === '>' ? node.rest : node.here, sub)) return false;
    // Prune branches left empty.
    for (let i = path.length - 1; i > 0; i--) {
      const n = path[i] as TrieNode<S>;
      if (n.here.length > 0 || n.rest.length > 0 || n.children.size > 0) break;
      (path[i - 1] as TrieNode<S>).children.delete(tokens[i - 1] as string);
    }
    return true;
  }

  #invalidateMatching(pattern: string): void {
    for (const event of this.#cache.keys()) {
      if (matchesPattern(pattern, event)) this.#uncache(event);
    }
  }

  #uncache(event: string): void {
    const route = this.#cache.get(event);
    if (route === undefined) return;
    route.stale = true;
    this.#cache.delete(event);
  }
}
