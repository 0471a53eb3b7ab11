/**
 * The contract between a dispatcher and the link to the other hosts'
 * dispatchers: what travels between hosts, what the link offers, and what
 * it may call on the dispatcher. `src/federation/` implements it over NATS.
 */
import type { SubscriberInfo } from '../protocol/frames.js';

/** Presence of other hosts' dispatchers, published on each host as the dispatcher's own events. */
export const HOST_JOINED = '$nodeset.host.joined';
export const HOST_LEFT = '$nodeset.host.left';

/** What `$nodeset.host.joined` and `.left` say about a host. */
export interface HostPresence {
  host: string;
  version: string;
  startedAt: string;
  /**
   * For `left`: `stopped` (it said goodbye), `silent` (no heartbeat within the host timeout) or
   * `unreachable` (the NATS servers reported nobody subscribed to its subject: its dispatcher is gone).
   */
  reason?: 'stopped' | 'silent' | 'unreachable';
}

/** What a publish travelling between hosts says besides its sequence number and payload. */
export interface Arrival {
  uri: string;
  /** Publishing node's name. */
  from: string;
  /** Origin host. */
  host: string;
  ct: number;
  flags: number;
  /** The publishing connection's stream id on its host (sequence numbers run per sender, stream and URI). */
  st?: number;
  /**
   * For an all-hosts publish: the one host chosen for each queue group the
   * event reaches (group name → host); a host delivers to a group only when
   * it is the one chosen.
   */
  gh?: Record<string, string>;
  /** For ACK and REQUEST: where the answer goes on the origin host. */
  conn?: number;
  r?: number;
  /** The message's headers, when it has any. */
  hd?: Record<string, string>;
  /**
   * Kept by the receiving router while publishes with the same metadata
   * arrive (the link hands them the same Arrival): the sender as `node@host`,
   * and the packed MSG header tail with where its sequence number goes.
   */
  sender?: string;
  tail?: Buffer;
  tailSeqAt?: number;
}

/** A publish travelling between hosts. */
export interface Envelope extends Arrival {
  /** The publisher's sequence number for this URI (0: none). */
  seq: number;
  payload: Uint8Array;
}

/** An answer travelling back to the origin host: an ack count, a reply, or an error. */
export interface Answer {
  conn: number;
  r: number;
  kind: 'ack' | 'reply' | 'error';
  n?: number;
  ct?: number;
  payload?: Uint8Array;
  code?: string;
  message?: string;
}

/** What a federation link may call on the dispatcher it serves. */
export interface FederationHost {
  readonly hostName: string;
  /** A publish from another host, for this one (or for all hosts). */
  arrived(meta: Arrival, seq: number, payload: Buffer): void;
  /** A cross-host message that could not be read (counted and logged). */
  unreadable(): void;
  /**
   * An answer from host `from` for one of this host's connections: taken
   * only when the publish or request it answers went to that host.
   */
  answered(answer: Answer, from: string): void;
  /** Who subscribes to `uri` on this host. */
  subscribers(uri: string): SubscriberInfo[];
  /** Patterns with local interest (declared again when the link comes back). */
  patterns(): string[];
  /** The queue groups of this host's subscriptions, as [pattern, group] pairs. */
  groups(): [string, string][];
  /** Patterns with a local responder (`respond()`): where requests of `*\/…` may be sent. */
  responders(): string[];
  /** Counts an envelope sent to another host. */
  sent(): void;
  /** Counts an envelope for other hosts that was not sent (the link was down). */
  refused(): void;
  /** Counts plain publishes sent to a host whose dispatcher turned out to be gone (lost). */
  lost(count: number): void;
  /** Another host's dispatcher joined or left the directory. */
  hostChanged(uri: typeof HOST_JOINED | typeof HOST_LEFT, presence: HostPresence): void;
}

/** The link between this host's dispatcher and the others'. The dispatcher only sees this interface. */
export interface Federation {
  readonly connected: boolean;
  /** The largest payload another host can be sent, in bytes (0: not known yet). */
  readonly maxPayload: number;
  /** The other live hosts in the directory. */
  knownHosts(): string[];
  /** Whether a live dispatcher of that host name is known (the host directory). */
  knows(host: string): boolean;
  /**
   * One other live host with interest in `event`, for a single delivery of `*\/event`; null: none.
   * `responder`: one with a responder for it (a request).
   */
  pickHost(event: string, responder: boolean): string | null;
  /** Other live hosts' queue groups that `event` reaches: group name → the hosts that have it. */
  groupHosts(event: string): Map<string, string[]> | null;
  /** This host's queue groups changed (announced to the other hosts). */
  groupsChanged(): void;
  /**
   * This host's responder patterns changed (announced to the other hosts). When one appeared,
   * a promise that resolves once the other hosts know it (it never rejects).
   */
  respondersChanged(appeared: boolean): Promise<void> | undefined;
  start(host: FederationHost): Promise<void>;
  stop(): Promise<void>;
  /** A publish for one other host (`B/event`, `node@B/event`). */
  forward(host: string, envelope: Envelope): void;
  /** An all-hosts publish (`*\/event`) for the other hosts. */
  broadcast(envelope: Envelope): void;
  /** An answer for the origin host of a forwarded publish. */
  answer(host: string, answer: Answer): void;
  /** Who subscribes to `uri` on another host, or (`*`) on every other live host (stream peers across hosts). */
  subscribers(host: string, uri: string): Promise<SubscriberInfo[]>;
  /**
   * Local subscribers appeared for (or left) a pattern: declare interest in
   * all-hosts events. A new interest may return a promise that resolves once
   * other hosts' publishes will reach it (it never rejects).
   */
  interest(pattern: string, present: boolean): Promise<void> | undefined;
}
