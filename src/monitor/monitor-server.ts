import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Dispatcher, NodeInfo } from '../dispatcher/dispatcher.js';
import type { StatsSnapshot } from '../dispatcher/stats.js';
import { NodesetError } from '../protocol/errors.js';
import { findToken, hashToken, isTokenHash } from '../security/keys.js';
import { isLoopback } from '../transport/tcp.js';
import { DASHBOARD_HTML, FAVICON_SVG } from './dashboard.js';
import { EventStream } from './event-stream.js';
import { type QueueGroups, queueGroups } from './groups.js';
import { HistoryRing } from './history.js';
import { counterFrom, type MonitorCounts, registerMetrics } from './metrics.js';

export { MONITOR_GROUP_MEMBERS_LIMIT, MONITOR_GROUPS_LIMIT, type QueueGroupInfo, type QueueGroups } from './groups.js';
export { METRICS_TOP_EVENTS } from './metrics.js';

/** Event names listed with their rates (`topEvents`): the busiest this many over the last sample. */
export const MONITOR_TOP_EVENTS = 20;

/** One event name's publishes per second over the last sample, and since the start. */
export interface EventRate {
  /** The event name (without host). */
  event: string;
  /** Publishes per second over the last sample. */
  perSec: number;
  /** Publishes since the dispatcher started. */
  total: number;
}

/** Shortest monitor token accepted (its stored form `sha256:…` is always accepted). */
export const MIN_MONITOR_TOKEN_LENGTH = 16;

export interface MonitorOptions {
  /**
   * The token every data endpoint then requires as `Authorization: Bearer TOKEN`,
   * or its stored form `sha256:<hex>`. Null (the default): no token, and the
   * endpoint listens on loopback addresses only, unless `insecure`.
   */
  token?: string | null;
  /** Allow a non-loopback listen without a token. Default false. */
  insecure?: boolean;
  /** How often rates are computed and the dashboard is updated, in ms. Default 1000. */
  sampleIntervalMs?: number;
  /** Bytes queued for one /events client past which samples are skipped for it. Default 1 MiB. */
  maxEventBufferedBytes?: number;
  /** Samples skipped in a row for one /events client before it is disconnected. Default 10. */
  maxEventSkippedSamples?: number;
  /** /events clients at once. Default 64. */
  maxEventClients?: number;
  /** Default: the dispatcher's. */
  logger?: Logger;
}

export function defaultMonitorOptions() {
  return {
    token: null as string | null,
    insecure: false,
    sampleIntervalMs: 1000,
    maxEventBufferedBytes: 1024 * 1024,
    maxEventSkippedSamples: 10,
    maxEventClients: 64,
  };
}

export interface StatsWithRates extends StatsSnapshot {
  at: string;
  rates: { publishesPerSec: number; deliveriesPerSec: number; bytesInPerSec: number; bytesOutPerSec: number };
  bytesIn: number;
  bytesOut: number;
  memory: { rssBytes: number; heapUsedBytes: number };
  /**
   * Publishes per second per event name over the last sample, busiest first
   * (at most MONITOR_TOP_EVENTS; names past the dispatcher's count limit are summed under `(other)`).
   */
  topEvents: EventRate[];
  /** The monitoring endpoint's own counts. */
  monitor: MonitorCounts;
}

/** Paths served without a token: the page itself and its chart code hold no data; liveness for load balancers. */
const PUBLIC_PATHS = new Set([
  '/',
  '/healthz',
  '/favicon.ico',
  '/favicon.svg',
  '/assets/uplot.js',
  '/assets/uplot.css',
]);

const requireFromHere = createRequire(import.meta.url);

function asset(path: string): Buffer {
  return readFileSync(requireFromHere.resolve(path));
}

function validate(o: ReturnType<typeof defaultMonitorOptions>): void {
  const t = o.token;
  if (t !== null && !isTokenHash(t) && t.length < MIN_MONITOR_TOKEN_LENGTH) {
    throw new NodesetError(
      'BAD_OPTION',
      `the monitor token must be at least ${MIN_MONITOR_TOKEN_LENGTH} characters (or its stored form sha256:…)`,
    );
  }
  for (const key of [
    'sampleIntervalMs',
    'maxEventBufferedBytes',
    'maxEventSkippedSamples',
    'maxEventClients',
  ] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 1) {
      throw new NodesetError('BAD_OPTION', `monitor option ${key} must be an integer >= 1`);
    }
  }
}

/**
 * Refuses a non-loopback address without a token unless `insecure`: the
 * endpoint shows every node's address and subscriptions.
 */
export function checkMonitorListen(host: string, hasToken: boolean, insecure: boolean): void {
  if (isLoopback(host) || hasToken || insecure) return;
  throw new NodesetError(
    'BAD_OPTION',
    `refusing to serve the monitor on ${host} without a token: anyone who can reach it would see every node's ` +
      `address and subscriptions. Give a token (--monitor-token-file or NODESET_MONITOR_TOKEN), listen on a ` +
      'loopback address, or pass --monitor-insecure.',
  );
}

/** The token of an `Authorization: Bearer TOKEN` header, or null. */
function bearer(req: IncomingMessage): string | null {
  const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
  return m === null ? null : (m[1] as string);
}

/**
 * The dispatcher's monitoring endpoint: Prometheus `/metrics`, JSON `/stats`,
 * `/nodes` and `/groups`, `/healthz`, and a live dashboard at `/` fed by `/events`
 * (Server-Sent Events). Reads the dispatcher's plain counters; nothing is
 * added to the routing path. With a token, every path but `/`, its assets
 * and `/healthz` requires it; without one, it listens on loopback only.
 */
export class MonitorServer {
  readonly registry = new Registry();
  readonly #dispatcher: Dispatcher;
  readonly #o: ReturnType<typeof defaultMonitorOptions>;
  readonly #logger: Logger;
  readonly #tokenHash: string | null;
  readonly #events: EventStream;
  #authFailures = 0;
  #server: Server | null = null;
  #timer: NodeJS.Timeout | null = null;
  #last: { at: number; publishes: number; deliveries: number; bytesIn: number; bytesOut: number } | null = null;
  #latest: StatsWithRates;
  /** The last 15 minutes of rates, for the dashboard's charts. */
  readonly #history = new HistoryRing();
  #lastDropped: number | null = null;
  /** Each event name's publish count at the last sample. */
  readonly #lastEvents = new Map<string, number>();
  readonly #assets: Record<string, { type: string; body: Buffer }>;

  constructor(dispatcher: Dispatcher, options: MonitorOptions = {}) {
    const d = defaultMonitorOptions();
    const o = {
      token: options.token ?? d.token,
      insecure: options.insecure ?? d.insecure,
      sampleIntervalMs: options.sampleIntervalMs ?? d.sampleIntervalMs,
      maxEventBufferedBytes: options.maxEventBufferedBytes ?? d.maxEventBufferedBytes,
      maxEventSkippedSamples: options.maxEventSkippedSamples ?? d.maxEventSkippedSamples,
      maxEventClients: options.maxEventClients ?? d.maxEventClients,
    };
    validate(o);
    this.#o = o;
    this.#dispatcher = dispatcher;
    this.#logger = options.logger ?? dispatcher.logger;
    this.#tokenHash = o.token === null ? null : isTokenHash(o.token) ? o.token : hashToken(o.token);
    this.#events = new EventStream({
      maxBufferedBytes: o.maxEventBufferedBytes,
      maxSkippedSamples: o.maxEventSkippedSamples,
      maxClients: o.maxEventClients,
    });
    this.#latest = this.#sample();
    this.#assets = {
      '/assets/uplot.js': { type: 'text/javascript', body: asset('uplot/dist/uPlot.iife.min.js') },
      '/assets/uplot.css': { type: 'text/css', body: asset('uplot/dist/uPlot.min.css') },
    };
    registerMetrics(
      this.registry,
      dispatcher,
      () => this.#bytes(),
      () => this.#counts(),
    );
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
    checkMonitorListen(host, this.#tokenHash !== null, this.#o.insecure);
    const server = createServer((req, res) => this.#handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.#logger.error({ err }, 'monitor server error'));
    this.#server = server;
    this.#timer = setInterval(() => this.#tick(), this.#o.sampleIntervalMs);
    return this;
  }

  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#events.closeAll();
    const server = this.#server;
    this.#server = null;
    if (server !== null) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }

  /** The latest stats with rates, and the endpoint's own counts as they are now (as served on /stats). */
  stats(): StatsWithRates {
    return { ...this.#latest, monitor: this.#counts() };
  }

  nodes(): NodeInfo[] {
    return this.#dispatcher.nodes();
  }

  /** Exports a plain integer kept elsewhere in the process (the manhole's counts) as a counter on /metrics. */
  addCounter(name: string, help: string, read: () => number): void {
    counterFrom(this.registry, name, help, read);
  }

  #counts(): MonitorCounts {
    const e = this.#events.stats();
    return {
      eventClients: e.clients,
      eventsSkipped: e.skipped,
      eventClientsDisconnected: e.disconnected,
      eventClientsRefused: e.refused,
      authFailures: this.#authFailures,
    };
  }

  /** The queue groups, the largest first (bounded), and how many there are (as served on /groups). */
  groups(): QueueGroups {
    return queueGroups(this.#dispatcher);
  }

  #message(): string {
    return `data: ${JSON.stringify({ stats: this.#latest, nodes: this.nodes(), groups: this.groups() })}\n\n`;
  }

  #tick(): void {
    this.#latest = this.#sample();
    const s = this.#latest;
    const secs = this.#o.sampleIntervalMs / 1000;
    const dropped = this.#lastDropped === null ? 0 : Math.max(0, s.dropped - this.#lastDropped) / secs;
    this.#lastDropped = s.dropped;
    this.#history.push({ t: Date.parse(s.at) / 1000, ...s.rates, droppedPerSec: dropped });
    if (this.#events.size > 0) this.#events.broadcast(this.#message());
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
    const topEvents = this.#eventRates(last !== null, secs);
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
      topEvents,
      monitor: this.#counts(),
    };
  }

  /**
   * Publishes per second of each event name since the last sample (a name
   * first seen now had none then), the busiest MONITOR_TOP_EVENTS. Reads the
   * dispatcher's counters, at most EVENT_COUNT_LIMIT of them.
   */
  #eventRates(sampledBefore: boolean, secs: number): EventRate[] {
    const rates: EventRate[] = [];
    for (const [event, count] of this.#dispatcher.stats.events) {
      const before = this.#lastEvents.get(event) ?? 0;
      this.#lastEvents.set(event, count.n);
      const perSec = sampledBefore && secs > 0 ? Math.max(0, count.n - before) / secs : 0;
      rates.push({ event, perSec, total: count.n });
    }
    return rates
      .sort((a, b) => b.perSec - a.perSec || b.total - a.total || a.event.localeCompare(b.event))
      .slice(0, MONITOR_TOP_EVENTS);
  }

  /** True when no token is configured or the request carries it (compared in constant time). */
  #authorised(req: IncomingMessage): boolean {
    if (this.#tokenHash === null) return true;
    const token = bearer(req);
    return token !== null && findToken(token, [this.#tokenHash]) === 0;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] as string;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      this.#json(res, 405, { code: 'BAD_OPTION', message: 'only GET' });
      return;
    }
    const authorised = this.#authorised(req);
    if (!authorised && !PUBLIC_PATHS.has(path)) {
      this.#authFailures++;
      this.#logger.warn({ address: req.socket.remoteAddress, path }, 'monitor: missing or wrong token');
      res.setHeader('www-authenticate', 'Bearer realm="nodeset-monitor"');
      this.#json(res, 401, { code: 'AUTH_FAILED', message: 'this endpoint needs Authorization: Bearer TOKEN' });
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
        this.#json(res, 200, this.stats());
        return;
      case '/history':
        this.#json(res, 200, { intervalMs: this.#o.sampleIntervalMs, ...this.#history.columns() });
        return;
      case '/nodes':
        this.#json(res, 200, this.nodes());
        return;
      case '/groups':
        this.#json(res, 200, this.groups());
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
        // Liveness for anyone; what it says about the dispatcher, only to those who may see the rest.
        this.#json(
          res,
          200,
          authorised
            ? { status: 'ok', host: this.#dispatcher.hostName, connections: this.#dispatcher.connectionCount }
            : { status: 'ok' },
        );
        return;
      case '/events':
        if (req.method === 'HEAD') {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
          res.end();
          return;
        }
        if (!this.#events.add(res, this.#message())) {
          this.#json(res, 503, {
            code: 'LIMIT_EXCEEDED',
            message: `${this.#o.maxEventClients} /events clients already`,
          });
        }
        return;
      case '/favicon.ico':
      case '/favicon.svg':
        res.writeHead(200, { 'content-type': 'image/svg+xml', 'cache-control': 'max-age=86400' });
        res.end(FAVICON_SVG);
        return;
      case '/':
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'referrer-policy': 'no-referrer' });
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
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  }
}
