import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import pino, { type Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { Node } from '../node/node.js';
import { NodesetError } from '../protocol/errors.js';
import { parseEventUri } from '../protocol/event-uri.js';
import { DEFAULT_DISPATCHER_URL } from '../protocol/url.js';
import { isLoopback, type TlsClientOptions } from '../transport/tcp.js';
import { BROWSER_CLIENT_JS, DEMO_PAGE_HTML } from './client-assets.js';
import { bearerToken, parsePublishBody, readBody, sendError, sendJson } from './http-util.js';
import { type BridgeEvent, NodePool } from './node-pool.js';
import type { KeyRing } from './signatures.js';
import { loadRouteModules, type RouteModules, serveStatic } from './static-files.js';
import { handleWebSocket } from './ws-endpoint.js';

export interface WebBridgeOptions {
  host?: string;
  port?: number;
  dispatcherUrl?: string;
  /** Token used when a request carries none. */
  token?: string;
  tls?: TlsClientOptions;
  /** Static files and route modules. */
  path?: string;
  /** Shared keys: when set, publish and subscribe must be signed. */
  keys?: KeyRing | null;
  /** Origins allowed by CORS (`*` for any). */
  cors?: string[];
  /** Largest request body, in bytes. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Comment lines sent on idle SSE streams, in ms. Default 15,000. */
  keepAliveMs?: number;
  /** Allow a non-loopback listen without keys. */
  insecure?: boolean;
  logger?: Logger;
}

/** Bytes a subscription stream may hold for a client that does not read before it is closed. */
const MAX_STREAM_BUFFERED_BYTES = 8 * 1024 * 1024;

/**
 * nodeset-web: publish, subscribe and request over HTTP (JSON, forms,
 * Server-Sent Events, newline-delimited JSON) and WebSocket, with the same
 * identities as native nodes and optional request signatures.
 */
export class WebBridge {
  readonly pool: NodePool;
  readonly logger: Logger;
  /** Counters: events dropped for WebSocket clients that did not read. */
  readonly stats = { wsDropped: 0 };
  readonly #o: Required<Omit<WebBridgeOptions, 'token' | 'tls' | 'path' | 'logger' | 'keys'>> &
    Pick<WebBridgeOptions, 'token' | 'tls' | 'path'> & { keys: KeyRing | null };
  #server: Server | null = null;
  #routes: RouteModules = new Map();
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  readonly #streams = new Set<ServerResponse>();

  constructor(options: WebBridgeOptions = {}) {
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.#o = {
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 8080,
      dispatcherUrl: options.dispatcherUrl ?? DEFAULT_DISPATCHER_URL,
      token: options.token,
      tls: options.tls,
      path: options.path,
      keys: options.keys ?? null,
      cors: options.cors ?? [],
      maxBodyBytes: options.maxBodyBytes ?? 1024 * 1024,
      keepAliveMs: options.keepAliveMs ?? 15_000,
      insecure: options.insecure ?? false,
    };
    this.pool = new NodePool({ dispatcherUrl: this.#o.dispatcherUrl, tls: this.#o.tls, logger: this.logger });
  }

  get url(): string {
    const a = this.#server?.address();
    if (a === null || a === undefined || typeof a === 'string') throw new Error('bridge is not listening');
    return `http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
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
    if (o.path !== undefined) this.#routes = await loadRouteModules(o.path);
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => sendError(res, err));
    });
    server.on('upgrade', (req, socket, head) => this.#upgrade(req, socket as Socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    return this;
  }

  async stop(): Promise<void> {
    for (const res of this.#streams) res.end();
    for (const ws of this.#wss.clients) ws.terminate();
    const server = this.#server;
    this.#server = null;
    if (server !== null) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    await this.pool.stop();
  }

  /** The node of a request's identity (its bearer token, else the bridge's own token). */
  nodeFor(token: string | null): Promise<Node> {
    return this.pool.node(token ?? this.#o.token ?? null);
  }

  /** Checks a request's signature (over its method, target and body) when keys are configured. */
  verify(req: IncomingMessage, body?: Uint8Array): void {
    this.#o.keys?.verify(req.headers, { method: req.method ?? '', target: req.url ?? '', body });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://bridge');
    this.#cors(req, res);
    if (req.method === 'OPTIONS') {
      res.writeHead(204).end();
      return;
    }
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case 'POST /publish':
        return this.#publish(req, res, url);
      case 'POST /request':
        return this.#request(req, res, url);
      case 'GET /subscribe':
        return this.#subscribe(req, res, url);
      case 'GET /nodeset.js':
        res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(BROWSER_CLIENT_JS);
        return;
    }
    const mod = this.#routes.get(url.pathname);
    if (mod !== undefined) {
      await mod(req, res, { bridge: this, node: await this.nodeFor(bearerToken(req, url)) });
      return;
    }
    if (this.#o.path !== undefined && (await serveStatic(this.#o.path, url.pathname, req, res))) return;
    if (req.method === 'GET' && url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(DEMO_PAGE_HTML);
      return;
    }
    sendJson(res, 404, { code: 'NOT_FOUND', message: `no ${req.method} ${url.pathname}` });
  }

  async #publish(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const raw = await readBody(req, this.#o.maxBodyBytes);
    this.verify(req, raw);
    const body = parsePublishBody(req, raw);
    parseEventUri(body.event, false);
    if (body.mode !== undefined && body.mode !== 'all' && body.mode !== 'direct') {
      throw new NodesetError('BAD_OPTION', 'field "mode" must be "all" or "direct"');
    }
    const node = await this.nodeFor(bearerToken(req, url));
    const delivered = await node.publish(body.event, body.message, {
      ack: true,
      mode: body.mode as 'all' | 'direct' | undefined,
      timeoutMs: body.timeout,
    });
    sendJson(res, 200, { event: body.event, delivered });
  }

  async #request(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const raw = await readBody(req, this.#o.maxBodyBytes);
    this.verify(req, raw);
    const body = parsePublishBody(req, raw);
    parseEventUri(body.event, false);
    const node = await this.nodeFor(bearerToken(req, url));
    const reply = await node.request(body.event, body.message, { timeoutMs: body.timeout ?? 5000 });
    sendJson(res, 200, { event: body.event, reply: reply ?? null });
  }

  /**
   * Streams events: Server-Sent Events for `Accept: text/event-stream`, else
   * one JSON object per line. An HTTP/1.0 client gets one event, then the end.
   */
  async #subscribe(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const events = url.searchParams.getAll('event');
    if (events.length === 0) throw new NodesetError('BAD_URI', 'give at least one ?event=');
    for (const e of events) parseEventUri(e, true);
    this.verify(req);
    const node = await this.nodeFor(bearerToken(req, url));
    const sse = String(req.headers.accept ?? '').includes('text/event-stream');
    const once = req.httpVersion === '1.0';
    const removers: (() => Promise<void>)[] = [];
    let closed = false;
    let id = 0;
    let keepAlive: NodeJS.Timeout | null = null;
    const close = () => {
      if (closed) return;
      closed = true;
      if (keepAlive !== null) clearInterval(keepAlive);
      this.#streams.delete(res);
      for (const remove of removers) void remove();
    };
    const send = (e: BridgeEvent) => {
      if (closed) return;
      if (res.writableLength > MAX_STREAM_BUFFERED_BYTES) {
        // A client that does not read: end its stream (it may reconnect) rather than buffer without bound.
        this.logger.warn({ buffered: res.writableLength }, 'subscription stream not read; closing it');
        res.destroy();
        close();
        return;
      }
      const line = JSON.stringify({ event: e.event, message: e.message ?? null, from: e.from });
      res.write(sse ? `id: ${++id}\ndata: ${line}\n\n` : `${line}\n`);
      if (once) {
        res.end();
        close();
      }
    };
    // The response closes when the client goes away (the request 'close' only means its body was read).
    res.on('close', close);
    try {
      for (const e of events) removers.push(await this.pool.listen(node, e, send));
    } catch (err) {
      close();
      throw err;
    }
    if (closed) {
      close();
      return;
    }
    this.#streams.add(res);
    res.writeHead(200, {
      'content-type': sse ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
      'cache-control': 'no-store',
      ...(once ? {} : { connection: 'keep-alive' }),
    });
    if (sse) {
      res.write(': subscribed\n\n');
      keepAlive = setInterval(() => res.write(': keep-alive\n\n'), this.#o.keepAliveMs);
    } else {
      res.flushHeaders();
    }
  }

  #upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://bridge');
    if (url.pathname !== '/ws') {
      socket.destroy();
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      handleWebSocket(this, ws, req, bearerToken(req, url));
    });
  }

  #cors(req: IncomingMessage, res: ServerResponse): void {
    const origin = req.headers.origin;
    const allowed = this.#o.cors;
    if (origin === undefined || allowed.length === 0) return;
    if (!allowed.includes('*') && !allowed.includes(origin)) return;
    res.setHeader('access-control-allow-origin', allowed.includes('*') ? '*' : origin);
    res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
    res.setHeader(
      'access-control-allow-headers',
      'content-type, authorization, x-nodeset-key, x-nodeset-timestamp, x-nodeset-signature',
    );
  }
}
