/**
 * What the router knows of a connection (Peer) and what it keeps for one
 * (PeerRouting), and the subscriptions it routes to. Sessions implement
 * Peer; the router alone reads and writes PeerRouting.
 */
import type { EventUri } from '../protocol/event-uri.js';
import { packMsgTail } from '../protocol/frames.js';
import { HeaderCache } from '../protocol/header-cache.js';
import type { Route, RouteEntry } from '../protocol/routing-table.js';
import type { EventCount } from './stats.js';

/** Why a session ended: reported in logs and presence events. */
export type LeaveReason =
  | 'graceful'
  | 'closed'
  | 'heartbeat-timeout'
  | 'slow-consumer'
  | 'kicked'
  | 'protocol-error'
  | 'shutdown';

/** A connection as the router sees it. */
export interface Peer {
  readonly id: number;
  readonly name: string;
  readonly host: string;
  readonly open: boolean;
  /** Outbound bytes queued and not yet handed to the kernel. */
  readonly pendingBytes: number;
  /** Slow-consumer policy: true is `pushback`, false is `cut`. */
  readonly pushback: boolean;
  /** The authenticated identity's name; null without authentication. */
  readonly identityName: string | null;
  /** Whether this connection may publish to an event name. */
  mayPublish(event: string): boolean;
  /** The router's state for this connection. */
  readonly routing: PeerRouting;
  sendMsg(sid: number, tail: Uint8Array, payload: Uint8Array): void;
  sendReply(r: number, ct: number, err: { code: string; message: string } | undefined, payload: Buffer | null): void;
  /** A non-fatal SLOW_CONSUMER warning. */
  warnSlow(pendingBytes: number, limitBytes: number): void;
  /** Stops (true) or resumes (false) reading from the connection (pushback). */
  holdReading(held: boolean): void;
  /** Cuts the connection off at once. */
  terminate(reason: LeaveReason): void;
}

/** URIs whose MSG tails a connection keeps. */
const TAIL_CACHE_LIMIT = 256;

function packPlainTail(uri: string, sender: string | null, ct: number, mode: number): Buffer {
  return packMsgTail(uri, sender ?? '', ct, 0, 0, mode === 1);
}

/** A publish target resolved from its URI, cached by URI text with what routing it needs. */
export interface Target {
  readonly uri: EventUri;
  /** False when the URI names another host. */
  readonly local: boolean;
  /** The route of its event, until the subscriptions behind it change (Route.stale). */
  route: Route<Subscription> | null;
  /** Publish counter of its event, for the stats (null until first routed). */
  count: EventCount | null;
}

/** Per-connection routing state, run by the router. */
export class PeerRouting {
  /** Messages delivered to this connection. */
  msgsOut = 0;
  /** The URI this connection published to last, and its target (most publishes repeat it). */
  lastUri = '';
  lastTarget: Target | null = null;
  /** Requests routed to this connection and not answered yet (`conn:r`), in order; bounded. */
  awaitingReply: Set<string> | null = null;
  /** Publishers this (pushback) connection holds back, and since when; null when none. */
  holding: Set<Peer> | null = null;
  holdingSince = 0;
  /** How many pushback subscribers hold this connection's reading; it reads again at 0. */
  heldBy = 0;
  /** Told it is falling behind since its queue last drained (re-armed on drain). */
  slowWarned = false;
  #tails: HeaderCache | null = null;

  /** Packed MSG header tails for this connection's plain publishes (made on the first); mode 1: single delivery. */
  get tails(): HeaderCache {
    this.#tails ??= new HeaderCache(packPlainTail, TAIL_CACHE_LIMIT);
    return this.#tails;
  }
}

/** What few subscriptions carry: kept apart so the common one stays small. */
interface SubscriptionExtras {
  /** The URI as the node sent it, when it differs from the pattern (`host/event`). */
  uri: string | null;
  nodes: string[] | null;
  stream: string | null;
  deny: string[] | null;
}

/** One subscription of a connection. */
export class Subscription implements RouteEntry {
  readonly peer: Peer;
  readonly sid: number;
  readonly pattern: string;
  readonly wildcard: boolean;
  readonly group: string | null;
  readonly responds: boolean;
  /** Asked for `pushback`: deliveries to it hold their publisher when its connection falls behind. */
  readonly pushback: boolean;
  #extras: SubscriptionExtras | null = null;

  constructor(
    peer: Peer,
    sid: number,
    uri: string,
    target: EventUri,
    group: string | null,
    nodes: string[] | null,
    stream: string | null,
    deny: string[] | null,
    responds = false,
    pushback = false,
  ) {
    this.peer = peer;
    this.sid = sid;
    this.pattern = target.event;
    this.wildcard = target.wildcard;
    this.group = group;
    this.responds = responds;
    this.pushback = pushback;
    const ownUri = uri === target.event ? null : uri;
    if (ownUri !== null || nodes !== null || stream !== null || deny !== null) {
      this.#extras = { uri: ownUri, nodes, stream, deny };
    }
  }

  /** The URI as the node sent it. */
  get uri(): string {
    return this.#extras?.uri ?? this.pattern;
  }

  /** Names of the nodes behind this subscription (a collection's members); null: the connection's name. */
  get nodes(): string[] | null {
    return this.#extras?.nodes ?? null;
  }

  /** Direct-stream address of the subscriber (StreamNode), or null. */
  get stream(): string | null {
    return this.#extras?.stream ?? null;
  }

  /** Deny patterns of the identity that overlap this subscription; matching events are not delivered. */
  get deny(): string[] | null {
    return this.#extras?.deny ?? null;
  }

  /** A repeated SUB for the same sid and URI: new member list and stream address. */
  update(nodes: string[] | null, stream: string | null): void {
    if (this.#extras === null && nodes === null && stream === null) return;
    this.#extras ??= { uri: null, nodes: null, stream: null, deny: null };
    this.#extras.nodes = nodes;
    this.#extras.stream = stream;
  }

  /** True when a `node@host/…` target names a node behind this subscription. */
  serves(node: string): boolean {
    const nodes = this.nodes;
    return nodes === null ? this.peer.name === node : nodes.includes(node);
  }
}
