import { Counter, collectDefaultMetrics, Gauge, type Registry } from 'prom-client';
import type { Dispatcher } from '../dispatcher/dispatcher.js';

/** Per-event counts exported to Prometheus: the busiest this many (bounded cardinality). */
export const METRICS_TOP_EVENTS = 20;

/** What the monitoring endpoint itself counts (its /events clients, refused requests). */
export interface MonitorCounts {
  eventClients: number;
  eventsSkipped: number;
  eventClientsDisconnected: number;
  eventClientsRefused: number;
  authFailures: number;
}

/** A counter whose value is read from a plain integer when scraped. */
export function counterFrom(registry: Registry, name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** A gauge whose value is read when scraped. */
export function gaugeFrom(registry: Registry, name: string, help: string, read: () => number): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

/**
 * The dispatcher's metrics, read from its plain counters when scraped, and the
 * monitoring endpoint's own. Nothing is added to the routing path.
 */
export function registerMetrics(
  registry: Registry,
  d: Dispatcher,
  bytes: () => { bytesIn: number; bytesOut: number },
  monitor: () => MonitorCounts,
): void {
  collectDefaultMetrics({ register: registry, prefix: 'nodeset_dispatcher_' });
  const counter = (name: string, help: string, read: () => number) => counterFrom(registry, name, help, read);
  const gauge = (name: string, help: string, read: () => number) => gaugeFrom(registry, name, help, read);
  const s = d.stats;
  gauge('nodeset_connections', 'Open node connections', () => d.connectionCount);
  gauge('nodeset_subscriptions', 'Subscriptions in the routing table', () => d.subscriptionCount);
  counter('nodeset_connections_opened_total', 'Connections that completed the handshake', () => s.connectionsOpened);
  counter('nodeset_connections_refused_total', 'Connections refused over the limit', () => s.connectionsRefused);
  counter('nodeset_publishes_total', 'Messages published', () => s.publishes);
  counter('nodeset_deliveries_total', 'Messages written to subscribers', () => s.deliveries);
  counter(
    'nodeset_dropped_total',
    'Messages not delivered (refused to or queued for connections cut off)',
    () => s.dropped,
  );
  counter(
    'nodeset_dropped_bytes_total',
    'Bytes queued for connections that were cut off and never written',
    () => s.droppedBytes,
  );
  counter('nodeset_slow_consumers_total', 'Connections cut off as slow consumers', () => s.slowConsumers);
  counter(
    'nodeset_slow_consumer_warnings_total',
    'SLOW_CONSUMER warnings sent to connections past half their pending limit',
    () => s.slowWarnings,
  );
  counter('nodeset_pushbacks_total', 'Times a publisher was held back by a pushback subscriber', () => s.pushbacks);
  counter('nodeset_heartbeat_failures_total', 'Nodes dropped for missing heartbeats', () => s.heartbeatFailures);
  counter('nodeset_auth_failures_total', 'Failed authentications', () => s.authFailures);
  counter(
    'nodeset_auth_throttled_total',
    'Handshakes refused unchecked while their address was in its authentication back-off',
    () => s.authThrottled,
  );
  counter('nodeset_permission_denials_total', 'Operations refused by permissions', () => s.permissionDenials);
  counter('nodeset_errors_sent_total', 'ERROR frames sent', () => s.errorsSent);
  counter('nodeset_bytes_in_total', 'Bytes received from nodes', () => bytes().bytesIn);
  counter('nodeset_bytes_out_total', 'Bytes written to nodes', () => bytes().bytesOut);
  counter('nodeset_federation_out_total', 'Publishes sent to other hosts', () => s.federationOut);
  counter('nodeset_federation_in_total', 'Publishes received from other hosts', () => s.federationIn);
  counter(
    'nodeset_federation_rejected_total',
    'Cross-host publishes refused while the link was down',
    () => s.federationRejected,
  );
  counter(
    'nodeset_federation_lost_total',
    'Plain cross-host publishes lost: sent to a host whose dispatcher was gone (NATS no-responders), or refused by the NATS client',
    () => s.federationLost,
  );
  counter(
    'nodeset_federation_unreadable_total',
    'Cross-host messages dropped because they could not be read (malformed), or plain publishes this dispatcher refused',
    () => s.federationUnreadable,
  );
  gauge('nodeset_federation_connected', '1 while the federation link is up (0 when down or not federated)', () =>
    d.federationConnected === true ? 1 : 0,
  );
  counter('nodeset_wills_published_total', 'Last wills published for nodes that vanished', () => s.willsPublished);
  new Gauge({
    name: 'nodeset_event_publishes',
    help: `Publishes per event name, the ${METRICS_TOP_EVENTS} busiest`,
    labelNames: ['event'],
    registers: [registry],
    collect() {
      this.reset();
      const busiest = s.busiestEvents(METRICS_TOP_EVENTS);
      for (const [event, n] of busiest) this.set({ event }, n);
    },
  });
  gauge(
    'nodeset_monitor_event_clients',
    'Open /events streams of the monitoring endpoint',
    () => monitor().eventClients,
  );
  counter(
    'nodeset_monitor_events_skipped_total',
    '/events samples not written to a client that was not reading',
    () => monitor().eventsSkipped,
  );
  counter(
    'nodeset_monitor_event_clients_disconnected_total',
    '/events clients disconnected for not reading',
    () => monitor().eventClientsDisconnected,
  );
  counter(
    'nodeset_monitor_event_clients_refused_total',
    '/events clients refused over the limit',
    () => monitor().eventClientsRefused,
  );
  counter(
    'nodeset_monitor_auth_failures_total',
    'Monitoring requests refused for a missing or wrong token',
    () => monitor().authFailures,
  );
}
