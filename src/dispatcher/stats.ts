import type { StatsSnapshot } from '../protocol/queries.js';

/** Upper bound on distinct event names counted one by one; the rest are summed under OTHER_EVENTS. */
export const EVENT_COUNT_LIMIT = 1000;
export const OTHER_EVENTS = '(other)';

export type { StatsSnapshot } from '../protocol/queries.js';

/** A publish counter of one event name. */
export interface EventCount {
  n: number;
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
  droppedBytes = 0;
  slowConsumers = 0;
  pushbacks = 0;
  slowWarnings = 0;
  announces = 0;
  heartbeatFailures = 0;
  errorsSent = 0;
  repliesDropped = 0;
  authFailures = 0;
  authThrottled = 0;
  permissionDenials = 0;
  tlsFailures = 0;
  willsPublished = 0;
  /** Publishes sent to and received from other hosts, and refused while the federation link was down. */
  federationOut = 0;
  federationIn = 0;
  federationRejected = 0;
  /** Plain publishes sent to a host whose dispatcher turned out to be gone: lost, and counted here. */
  federationLost = 0;
  /** Cross-host messages that could not be read (malformed; not from a nodeset dispatcher). */
  federationUnreadable = 0;
  /** Bytes of connections that have closed (open ones are counted on their sockets). */
  bytesInClosed = 0;
  bytesOutClosed = 0;
  /** Publishes per event name (bounded; the rest are summed under OTHER_EVENTS). */
  readonly events = new Map<string, EventCount>();

  /** The publish counter of an event name (callers may keep it and bump `n`). */
  eventCount(event: string): EventCount {
    let count = this.events.get(event);
    if (count === undefined) {
      const key = this.events.size < EVENT_COUNT_LIMIT ? event : OTHER_EVENTS;
      count = this.events.get(key);
      if (count === undefined) {
        count = { n: 0 };
        this.events.set(key, count);
      }
    }
    return count;
  }

  /** Event names with their publish counts, busiest first. */
  busiestEvents(limit: number): [string, number][] {
    return [...this.events.entries()]
      .map(([event, count]): [string, number] => [event, count.n])
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit);
  }

  snapshot(host: string, connections: number, subscriptions: number): StatsSnapshot {
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
      droppedBytes: this.droppedBytes,
      slowConsumers: this.slowConsumers,
      pushbacks: this.pushbacks,
      slowWarnings: this.slowWarnings,
      announces: this.announces,
      heartbeatFailures: this.heartbeatFailures,
      errorsSent: this.errorsSent,
      repliesDropped: this.repliesDropped,
      authFailures: this.authFailures,
      authThrottled: this.authThrottled,
      permissionDenials: this.permissionDenials,
      tlsFailures: this.tlsFailures,
      willsPublished: this.willsPublished,
      federationOut: this.federationOut,
      federationIn: this.federationIn,
      federationRejected: this.federationRejected,
      federationLost: this.federationLost,
      federationUnreadable: this.federationUnreadable,
      events: Object.fromEntries(this.busiestEvents(50)),
    };
  }
}
