/** Upper bound on distinct event names counted one by one; the rest are summed under OTHER_EVENTS. */
export const EVENT_COUNT_LIMIT = 1000;
export const OTHER_EVENTS = '(other)';

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
  dropped: number;
  slowConsumers: number;
  heartbeatFailures: number;
  errorsSent: number;
  repliesDropped: number;
  authFailures: number;
  permissionDenials: number;
  tlsFailures: number;
  willsPublished: number;
  federationOut: number;
  federationIn: number;
  federationRejected: number;
  /** Federation link state (null when not federated). */
  federation?: { connected: boolean } | null;
  /** Publishes per event name, busiest first (bounded). */
  events: Record<string, number>;
}

/** Dispatcher counters: plain integers bumped on the hot path. */
export class DispatcherStats {
  readonly startedAt = Date.now();
  connectionsOpened = 0;
  connectionsClosed = 0;
  connectionsRefused = 0;
  publishes = 0;
  deliveries = 0;
  dropped = 0;
  slowConsumers = 0;
  heartbeatFailures = 0;
  errorsSent = 0;
  repliesDropped = 0;
  authFailures = 0;
  permissionDenials = 0;
  tlsFailures = 0;
  willsPublished = 0;
  /** Publishes sent to and received from other hosts, and refused while the federation link was down. */
  federationOut = 0;
  federationIn = 0;
  federationRejected = 0;
  /** Bytes of connections that have closed (open ones are counted on their sockets). */
  bytesInClosed = 0;
  bytesOutClosed = 0;
  readonly events = new Map<string, number>();

  countEvent(event: string): void {
    const n = this.events.get(event);
    if (n !== undefined) this.events.set(event, n + 1);
    else if (this.events.size < EVENT_COUNT_LIMIT) this.events.set(event, 1);
    else this.events.set(OTHER_EVENTS, (this.events.get(OTHER_EVENTS) ?? 0) + 1);
  }

  snapshot(host: string, connections: number, subscriptions: number): StatsSnapshot {
    const busiest = [...this.events.entries()].sort((a, b) => b[1] - a[1]).slice(0, 50);
    return {
      host,
      uptimeMs: Date.now() - this.startedAt,
      connections,
      subscriptions,
      connectionsOpened: this.connectionsOpened,
      connectionsClosed: this.connectionsClosed,
      connectionsRefused: this.connectionsRefused,
      publishes: this.publishes,
      deliveries: this.deliveries,
      dropped: this.dropped,
      slowConsumers: this.slowConsumers,
      heartbeatFailures: this.heartbeatFailures,
      errorsSent: this.errorsSent,
      repliesDropped: this.repliesDropped,
      authFailures: this.authFailures,
      permissionDenials: this.permissionDenials,
      tlsFailures: this.tlsFailures,
      willsPublished: this.willsPublished,
      federationOut: this.federationOut,
      federationIn: this.federationIn,
      federationRejected: this.federationRejected,
      events: Object.fromEntries(busiest),
    };
  }
}
