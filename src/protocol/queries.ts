/**
 * The shapes of the dispatcher's QUERY answers (docs/protocol.md, QUERY), as
 * the dispatcher builds them and a node receives them: one definition for both.
 */

/** What `$nodeset.node.joined` and `.left` say about a node. */
export interface NodePresence {
  id: number;
  name: string;
  host: string;
  address: string;
  connectedAt: string;
  subscriptions: string[];
}

/** A node connected to the dispatcher (QUERY `nodes`, `/nodes`). */
export interface NodeInfo extends NodePresence {
  msgsIn: number;
  msgsOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Outbound bytes queued for the node and not yet taken by the kernel. */
  pendingBytes: number;
  /** Round trip of the last heartbeat, in ms (null before the first). */
  heartbeatRttMs: number | null;
  /** The latest metrics the node published on $nodeset.stats. */
  metrics: unknown;
}

/** The dispatcher's counters (QUERY `stats`, `/stats`). */
export interface StatsSnapshot {
  host: string;
  uptimeMs: number;
  connections: number;
  subscriptions: number;
  connectionsOpened: number;
  connectionsClosed: number;
  connectionsRefused: number;
  publishes: number;
  deliveries: number;
  /**
   * Messages not delivered: copies refused because their subscriber's
   * connection was over its limit or closing, and messages queued for a
   * connection when it was cut off (what its socket still held is counted only
   * if it was not read within the close grace; a write taken in part counts whole).
   */
  dropped: number;
  /** Bytes of the same: queued for connections cut off (slow consumers, heartbeat timeouts, kicks) and never written, and refused payloads. */
  droppedBytes: number;
  slowConsumers: number;
  /** Times a publisher's reading was paused by a pushback subscriber. */
  pushbacks: number;
  /** SLOW_CONSUMER warnings sent to connections past half their limit. */
  slowWarnings: number;
  /** Publishers' announces of their last sequence numbers routed (not counted in publishes or deliveries). */
  announces: number;
  heartbeatFailures: number;
  errorsSent: number;
  repliesDropped: number;
  authFailures: number;
  /** Handshakes refused unchecked because their address was in its back-off after failed authentications. */
  authThrottled: number;
  permissionDenials: number;
  tlsFailures: number;
  willsPublished: number;
  federationOut: number;
  federationIn: number;
  federationRejected: number;
  /** Plain publishes handed to NATS for a host whose dispatcher was gone (the NATS server's no-responders status). */
  federationLost: number;
  /** Cross-host messages that could not be read (malformed: not from a nodeset dispatcher); dropped. */
  federationUnreadable: number;
  /** Federation link state (null when not federated). */
  federation?: { connected: boolean; hosts: string[] } | null;
  /** Publishes per event name, busiest first (bounded). */
  events: Record<string, number>;
}
