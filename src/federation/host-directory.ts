/**
 * The live directory of hosts: every dispatcher announces itself (name,
 * instance, start time, version, the all-hosts patterns its nodes want) and
 * repeats it as a heartbeat; a host silent past its timeout has left. No
 * sockets and no timers here: the link feeds announcements and the clock.
 */
import { matchesPattern } from '../protocol/event-uri.js';

/** What a dispatcher says about itself on the directory subject. */
export interface Announcement {
  host: string;
  /** One id per dispatcher process: tells a restart, or a duplicate, from the same dispatcher. */
  id: string;
  startedAt: number;
  version: string;
  patterns: string[];
  /** Queue groups of its subscriptions: [pattern, group] pairs. */
  groups?: [string, string][];
  /**
   * The patterns that have a responder (`respond()`): requests of `*\/…` go only to these.
   * Absent from dispatchers older than this field: their patterns count.
   */
  responders?: string[];
  /** Set on the first announcement after (re)connecting: the others answer with theirs at once. */
  hello?: boolean;
  /** Set when the dispatcher stops. */
  bye?: boolean;
  /** The wire format of its cross-host publishes (nats-wire.ts WIRE_VERSION); absent: 1, MessagePack envelopes. */
  wire?: number;
}

export interface HostEntry {
  announcement: Announcement;
  lastSeen: number;
}

/** What happened to the directory on an announcement. `incompatible`: another wire format, left out. */
export type DirectoryChange = 'joined' | 'left' | 'updated' | 'duplicate' | 'incompatible' | 'none';

export class HostDirectory {
  readonly #self: string;
  readonly #selfId: string;
  readonly #hosts = new Map<string, HostEntry>();
  #next = 0;

  readonly #wire: number;

  /** `wire`: the wire format this dispatcher speaks; hosts announcing another one are left out. */
  constructor(self: string, selfId: string, wire = 1) {
    this.#self = self;
    this.#selfId = selfId;
    this.#wire = wire;
  }

  /** Whether a dispatcher of that name is alive (this host always is). */
  knows(host: string): boolean {
    return host === this.#self || this.#hosts.has(host);
  }

  get hosts(): ReadonlyMap<string, HostEntry> {
    return this.#hosts;
  }

  /**
   * Records an announcement. `duplicate`: another dispatcher announces this
   * host's own name (two dispatchers, one name).
   */
  announced(a: Announcement, now: number): DirectoryChange {
    if (a.host === this.#self) return a.id === this.#selfId || a.bye === true ? 'none' : 'duplicate';
    if (a.bye === true) return this.#hosts.delete(a.host) ? 'left' : 'none';
    if ((a.wire ?? 1) !== this.#wire) {
      // It could read nothing this host sends, nor this host what it sends: not a destination.
      this.#hosts.delete(a.host);
      return 'incompatible';
    }
    const entry = this.#hosts.get(a.host);
    this.#hosts.set(a.host, { announcement: a, lastSeen: now });
    if (entry === undefined) return 'joined';
    return entry.announcement.id === a.id ? 'updated' : 'joined';
  }

  /** Removes a host known to be gone; returns its entry (undefined: it was not in the directory). */
  remove(host: string): HostEntry | undefined {
    const entry = this.#hosts.get(host);
    this.#hosts.delete(host);
    return entry;
  }

  /** Hosts silent for longer than `timeoutMs`: removed and returned. */
  expire(now: number, timeoutMs: number): [string, HostEntry][] {
    const gone: [string, HostEntry][] = [];
    for (const [host, entry] of this.#hosts) {
      if (now - entry.lastSeen > timeoutMs) {
        this.#hosts.delete(host);
        gone.push([host, entry]);
      }
    }
    return gone;
  }

  /**
   * Other hosts' queue groups that `event` reaches: group name → the hosts
   * that have it; null when none has one (the common case, kept cheap).
   */
  groupHosts(event: string): Map<string, string[]> | null {
    let found: Map<string, string[]> | null = null;
    for (const [host, entry] of this.#hosts) {
      const groups = entry.announcement.groups;
      if (groups === undefined) continue;
      for (const [pattern, group] of groups) {
        if (!matchesPattern(pattern, event)) continue;
        found ??= new Map();
        const hosts = found.get(group);
        if (hosts === undefined) found.set(group, [host]);
        else if (!hosts.includes(host)) hosts.push(host);
      }
    }
    return found;
  }

  /**
   * One other host whose nodes want `event` (round robin among them), or
   * null: where a single delivery (`direct`, a request) of `*\/event` goes
   * when this host has no receiver. `responder`: only hosts with a responder
   * for it (a request), never one with passive subscribers only.
   */
  pickHost(event: string, responder = false): string | null {
    const candidates: string[] = [];
    for (const [host, entry] of this.#hosts) {
      const a = entry.announcement;
      const patterns = responder ? (a.responders ?? a.patterns) : a.patterns;
      if (patterns.some((p) => matchesPattern(p, event))) candidates.push(host);
    }
    if (candidates.length === 0) return null;
    this.#next = (this.#next + 1) % 0x7fffffff;
    return candidates[this.#next % candidates.length] as string;
  }
}
