import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import fastifyWebsocket from '@fastify/websocket';
import Fastify, { type FastifyInstance, type FastifyRequest, LogController } from 'fastify';
import pino, { type Logger } from 'pino';
import type { Node } from '../node/node.js';
import { NodesetError } from '../protocol/errors.js';
import { isLoopback } from '../transport/tcp.js';
import { formFields, installBodyParsers } from './body-parsers.js';
import { BROWSER_CLIENT_JS } from './client-assets.js';
import { installCrossOrigin } from './cross-origin.js';
import { DEMO_PAGE_HTML } from './demo-page.js';
import { answerNotFound, clientErrorHandler, frameworkError, installErrorHandling } from './http-errors.js';
import { NodePool } from './node-pool.js';
import { type ResolvedWebBridgeOptions, resolveWebBridgeOptions, type WebBridgeOptions } from './options.js';
import { publishRoutes } from './publish-routes.js';
import { loadRouteModules, mountRouteModules, registerStaticSender, StaticFiles } from './static-files.js';
import { subscribeRoutes } from './subscribe-route.js';
import { MAX_WS_MESSAGE_BYTES, refuseOtherUpgrades, webSocketRoute } from './ws-endpoint.js';

export type { WebBridgeOptions } from './options.js';

/** Longest path fastify's router takes as one parameter: never shorter than Node's header limit allows. */
const MAX_PATH_CHARS = 16 * 1024;

/**
 * nodeset-web: publish, subscribe and request over HTTP (JSON, forms,
 * Server-Sent Events, newline-delimited JSON) and WebSocket, with the same
 * identities as native nodes and optional request signatures. HTTP is
 * fastify's: routing, body limits, schema validation, static files; the
 * bridge adds its error codes, its limits on connections and time, and the
 * streams.
 */
export class WebBridge {
  /** The bridge's nodes, one per identity (for its routes). @internal */
  readonly pool: NodePool;
  readonly logger: Logger;
  /**
   * Counters: events dropped for WebSocket clients that did not read;
   * connections closed at once because `maxConnections` were open; requests
   * whose headers or body did not arrive in time.
   */
  readonly stats = { wsDropped: 0, connectionsRefused: 0, requestTimeouts: 0 };
  readonly #o: ResolvedWebBridgeOptions;
  #app: FastifyInstance | null = null;
  readonly #streams = new Set<ServerResponse>();
  /** Sockets Node handed over for an upgrade: no longer the HTTP server's to close. */
  readonly #upgrades = new Set<Duplex>();

  constructor(options: WebBridgeOptions = {}) {
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.#o = resolveWebBridgeOptions(options);
    this.pool = new NodePool({ dispatcherUrl: this.#o.dispatcherUrl, tls: this.#o.tls, logger: this.logger });
  }

  get url(): string {
    const a = this.#app?.server.address();
    if (a === null || a === undefined || typeof a === 'string') throw new Error('bridge is not listening');
    return `http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** Connections open now: requests, streams and WebSockets. */
  connectionCount(): Promise<number> {
    const server = this.#app?.server;
    if (server === undefined) return Promise.resolve(0);
    return new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
  }

  /** Open subscription streams (SSE or NDJSON). */
  get streamCount(): number {
    return this.#streams.size;
  }

  async start(): Promise<this> {
    const o = this.#o;
    if (!isLoopback(o.host) && o.keys === null && !o.insecure) {
      throw new NodesetError(
        'BAD_OPTION',
        `refusing to listen on ${o.host} without request signatures: give a keys file (--keys), listen on a loopback address, or pass --insecure`,
      );
    }
    const app = await this.#build();
    try {
      await app.listen({ host: o.host, port: o.port });
    } catch (err) {
      await app.close();
      throw err;
    }
    this.#app = app;
    return this;
  }

  async stop(): Promise<void> {
    for (const res of this.#streams) res.end();
    const app = this.#app;
    this.#app = null;
    if (app !== null) {
      for (const ws of app.websocketServer.clients) ws.terminate();
      for (const socket of this.#upgrades) socket.destroy();
      await app.close();
    }
    await this.pool.stop();
  }

  /** The node of a request's identity (its bearer token, else the bridge's own token). @internal */
  nodeFor(token: string | null): Promise<Node> {
    return this.pool.node(token ?? this.#o.token ?? null);
  }

  /** Checks a request's signature (over its method, target and body) when keys are configured. @internal */
  verify(request: FastifyRequest): void {
    this.#o.keys?.verify(request.headers, {
      method: request.raw.method ?? '',
      target: request.raw.url ?? '',
      body: request.rawBody ?? undefined,
    });
  }

  async #build(): Promise<FastifyInstance> {
    const o = this.#o;
    const app = Fastify({
      loggerInstance: this.logger,
      logController: new LogController({ disableRequestLogging: true }),
      bodyLimit: o.maxBodyBytes,
      keepAliveTimeout: o.keepAliveTimeoutMs,
      requestTimeout: o.requestTimeoutMs,
      forceCloseConnections: true,
      http: {
        headersTimeout: o.headersTimeoutMs,
        requestTimeout: o.requestTimeoutMs,
        // Node looks for overdue requests this often (30 s unless told): a slow client is closed within one more tick.
        connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(o.headersTimeoutMs / 4))),
      },
      routerOptions: { maxParamLength: MAX_PATH_CHARS, querystringParser: formFields },
      ajv: { customOptions: { coerceTypes: false } },
      frameworkErrors: frameworkError(o.maxBodyBytes),
      clientErrorHandler: clientErrorHandler(() => this.stats.requestTimeouts++),
    }) as unknown as FastifyInstance;
    app.server.maxConnections = o.maxConnections;
    app.server.on('drop', () => this.stats.connectionsRefused++);
    app.server.on('upgrade', (_request, socket: Duplex) => {
      this.#upgrades.add(socket);
      socket.once('close', () => this.#upgrades.delete(socket));
    });

    /** The methods of each path, for 405 answers. */
    const allowed = new Map<string, Set<string>>();
    app.addHook('onRoute', (route) => {
      if (route.url.includes('*')) return;
      const methods = allowed.get(route.url) ?? new Set<string>();
      for (const m of [route.method].flat()) methods.add(m);
      allowed.set(route.url, methods);
    });
    installBodyParsers(app, o.maxBodyBytes);
    installErrorHandling(app, allowed, o.maxBodyBytes, this.logger);
    await app.register(fastifyWebsocket, {
      options: { maxPayload: MAX_WS_MESSAGE_BYTES },
      errorHandler: (err, ws) => {
        this.logger.debug({ err: err.message }, 'WebSocket client error');
        ws.terminate();
      },
    });
    // After the WebSocket plugin's hooks, so that an upgrade it refuses is seen as one.
    installCrossOrigin(app, o.cors);
    refuseOtherUpgrades(app);

    publishRoutes(app, this);
    subscribeRoutes(app, this, this.#streams, o.keepAliveMs);
    webSocketRoute(app, this);
    app.get('/nodeset.js', (_request, reply) => {
      reply.type('text/javascript; charset=utf-8').send(BROWSER_CLIENT_JS);
    });
    app.options('*', (_request, reply) => {
      reply.code(204).send();
    });

    const routes = o.path === undefined ? new Map() : await loadRouteModules(o.path);
    await mountRouteModules(app, routes, this, (path) => allowed.has(path));
    const files = o.path === undefined ? null : await new StaticFiles(o.path).open();
    if (files !== null) {
      await registerStaticSender(app, files);
      app.get<{ Params: { '*': string } }>('/*', async (request, reply) => {
        const file = await files.resolve(request.params['*']);
        if (file === null) return answerNotFound(request, reply, allowed);
        return reply.sendFile(file);
      });
    }
    if (!routes.has('/')) {
      app.get('/', async (_request, reply) => {
        const index = files === null ? null : await files.resolve('/');
        if (index !== null) return reply.sendFile(index);
        return reply.type('text/html; charset=utf-8').send(DEMO_PAGE_HTML);
      });
    }
    return app;
  }
}
