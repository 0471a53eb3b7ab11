import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { Dispatcher, NodeInfo } from '../dispatcher/dispatcher.js';
import type { StatsSnapshot } from '../dispatcher/stats.js';
import { DASHBOARD_HTML } from './dashboard.js';

/** Per-event counts exported to Prometheus: the busiest this many (bounded cardinality). */
export const METRICS_TOP_EVENTS = 20;
/** How often rates are computed and the dashboard is updated, in ms. */
export const SAMPLE_INTERVAL_MS = 1000;

export interface StatsWithRates extends StatsSnapshot {
  at: string;
  rates: { publishesPerSec: number; deliveriesPerSec: number; bytesInPerSec: number; bytesOutPerSec: number };
  bytesIn: number;
  bytesOut: number;
  memory: { rssBytes: number; heapUsedBytes: number };
}

const requireFromHere = createRequire(import.meta.url);

function asset(path: string): Buffer {
  return readFileSync(requireFromHere.resolve(path));
}

/**
 * The dispatcher's monitoring endpoint: Prometheus `/metrics`, JSON `/stats`
 * and `/nodes`, `/healthz`, and a live dashboard at `/` fed by `/events`
 * (Server-Sent Events). Reads the dispatcher's plain counters; nothing is
 * added to the routing path.
 */
export class MonitorServer {
  readonly registry = new Registry();
  readonly #dispatcher: Dispatcher;
  #server: Server | null = null;
  #timer: NodeJS.Timeout | null = null;
  #last: { at: number; publishes: number; deliveries: number; bytesIn: number; bytesOut: number } | null = null;
  #latest: StatsWithRates;
  readonly #clients = new Set<ServerResponse>();
  readonly #assets: Record<string, { type: string; body: Buffer }>;

  constructor(dispatcher: Dispatcher) {
    this.#dispatcher = dispatcher;
    this.#latest = this.#sample();
    this.#assets = {
      '/assets/uplot.js': { type: 'text/javascript', body: asset('uplot/dist/uPlot.iife.min.js') },
      '/assets/uplot.css': { type: 'text/css', body: asset('uplot/dist/uPlot.min.css') },
    };
    this.#registerMetrics();
  }

  get address(): { host: string; port: number } {
    const a = this.#server?.address();
    if (a === null || a === undefined || typeof a === 'string') throw new Error('monitor server is not listening');
    return { host: a.address, port: a.port };
  }

  get url(): string {
    const { host, port } = this.address;
    return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  async start(host: string, port: number): Promise<this> {
    const server = createServer((req, res) => this.#handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    this.#timer = setInterval(() => this.#tick(), SAMPLE_INTERVAL_MS);
    return this;
  }

  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    for (const c of this.#clients) c.end();
    this.#clients.clear();
    const server = this.#server;
    this.#server = null;
    if (server !== null) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }

  /** The latest stats with rates (as served on /stats). */
  stats(): StatsWithRates {
    return this.#latest;
  }

  nodes(): NodeInfo[] {
    return this.#dispatcher.nodes();
  }

  #tick(): void {
    this.#latest = this.#sample();
    if (this.#clients.size === 0) return;
    const data = `data: ${JSON.stringify({ stats: this.#latest, nodes: this.nodes() })}\n\n`;
    for (const c of this.#clients) c.write(data);
  }

  #bytes(): { bytesIn: number; bytesOut: number } {
    return this.#dispatcher.bytesTransferred();
  }

  #sample(): StatsWithRates {
    const snap = this.#dispatcher.snapshot();
    const { bytesIn, bytesOut } = this.#bytes();
    const now = Date.now();
    const last = this.#last;
    const secs = last === null ? 0 : (now - last.at) / 1000;
    const rate = (v: number, before: number | undefined) =>
      secs > 0 && before !== undefined ? Math.max(0, (v - before) / secs) : 0;
    this.#last = { at: now, publishes: snap.publishes, deliveries: snap.deliveries, bytesIn, bytesOut };
    const mem = process.memoryUsage();
    return {
      ...snap,
      at: new Date(now).toISOString(),
      bytesIn,
      bytesOut,
      rates: {
        publishesPerSec: rate(snap.publishes, last?.publishes),
        deliveriesPerSec: rate(snap.deliveries, last?.deliveries),
        bytesInPerSec: rate(bytesIn, last?.bytesIn),
        bytesOutPerSec: rate(bytesOut, last?.bytesOut),
      },
      memory: { rssBytes: mem.rss, heapUsedBytes: mem.heapUsed },
    };
  }

  #registerMetrics(): void {
    const d = this.#dispatcher;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'nodeset_dispatcher_' });
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    const s = d.stats;
    gauge('nodeset_connections', 'Open node connections', () => d.connectionCount);
    gauge('nodeset_subscriptions', 'Subscriptions in the routing table', () => d.subscriptionCount);
    counter('nodeset_connections_opened_total', 'Connections that completed the handshake', () => s.connectionsOpened);
    counter('nodeset_connections_refused_total', 'Connections refused over the limit', () => s.connectionsRefused);
    counter('nodeset_publishes_total', 'Messages published', () => s.publishes);
    counter('nodeset_deliveries_total', 'Messages written to subscribers', () => s.deliveries);
    counter('nodeset_dropped_total', 'Messages not delivered (slow consumers)', () => s.dropped);
    counter('nodeset_slow_consumers_total', 'Connections cut off as slow consumers', () => s.slowConsumers);
    counter(
      'nodeset_slow_consumer_warnings_total',
      'SLOW_CONSUMER warnings sent to connections past half their pending limit',
      () => s.slowWarnings,
    );
    counter('nodeset_pushbacks_total', 'Times a publisher was held back by a pushback subscriber', () => s.pushbacks);
    counter('nodeset_heartbeat_failures_total', 'Nodes dropped for missing heartbeats', () => s.heartbeatFailures);
    counter('nodeset_auth_failures_total', 'Failed authentications', () => s.authFailures);
    counter('nodeset_permission_denials_total', 'Operations refused by permissions', () => s.permissionDenials);
    counter('nodeset_errors_sent_total', 'ERROR frames sent', () => s.errorsSent);
    counter('nodeset_bytes_in_total', 'Bytes received from nodes', () => this.#bytes().bytesIn);
    counter('nodeset_bytes_out_total', 'Bytes written to nodes', () => this.#bytes().bytesOut);
    counter('nodeset_federation_out_total', 'Publishes sent to other hosts', () => s.federationOut);
    counter('nodeset_federation_in_total', 'Publishes received from other hosts', () => s.federationIn);
    counter(
      'nodeset_federation_rejected_total',
      'Cross-host publishes refused while the link was down',
      () => s.federationRejected,
    );
    gauge('nodeset_federation_connected', '1 while the federation link is up (0 when down or not federated)', () =>
      d.federationConnected === true ? 1 : 0,
    );
    counter('nodeset_wills_published_total', 'Last wills published for nodes that vanished', () => s.willsPublished);
    new Gauge({
      name: 'nodeset_event_publishes',
      help: `Publishes per event name, the ${METRICS_TOP_EVENTS} busiest`,
      labelNames: ['event'],
      registers,
      collect() {
        this.reset();
        const busiest = s.busiestEvents(METRICS_TOP_EVENTS);
        for (const [event, n] of busiest) this.set({ event }, n);
      },
    });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] as string;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      this.#json(res, 405, { code: 'BAD_OPTION', message: 'only GET' });
      return;
    }
    switch (path) {
      case '/metrics':
        this.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': this.registry.contentType });
            res.end(text);
          },
          (err: Error) => this.#json(res, 500, { code: 'INTERNAL', message: err.message }),
        );
        return;
      case '/stats':
        this.#json(res, 200, this.#latest);
        return;
      case '/nodes':
        this.#json(res, 200, this.nodes());
        return;
      case '/subscribers': {
        const uri = new URL(req.url ?? '/', 'http://x').searchParams.get('uri');
        try {
          this.#json(res, 200, this.#dispatcher.subscribers(uri ?? ''));
        } catch (err) {
          const e = err as { code?: string; message: string };
          this.#json(res, 400, { code: e.code ?? 'BAD_URI', message: e.message });
        }
        return;
      }
      case '/healthz':
        this.#json(res, 200, {
          status: 'ok',
          host: this.#dispatcher.hostName,
          connections: this.#dispatcher.connectionCount,
        });
        return;
      case '/events':
        res.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-store',
          connection: 'keep-alive',
        });
        res.write(`data: ${JSON.stringify({ stats: this.#latest, nodes: this.nodes() })}\n\n`);
        this.#clients.add(res);
        req.on('close', () => this.#clients.delete(res));
        return;
      case '/':
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(DASHBOARD_HTML);
        return;
      default: {
        const a = this.#assets[path];
        if (a === undefined) {
          this.#json(res, 404, { code: 'NOT_FOUND', message: `no ${path}` });
          return;
        }
        res.writeHead(200, { 'content-type': a.type, 'cache-control': 'max-age=3600' });
        res.end(a.body);
      }
    }
  }

  #json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }
}
