import type { Logger } from 'pino';
import { NodesetError } from '../protocol/errors.js';
import { DEFAULT_DISPATCHER_URL } from '../protocol/url.js';
import type { TlsClientOptions } from '../transport/tcp.js';
import type { KeyRing } from './signatures.js';

export interface WebBridgeOptions {
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** Port to listen on; 0 picks a free one. Default 8080. */
  port?: number;
  dispatcherUrl?: string;
  /** Token used when a request carries none. */
  token?: string;
  tls?: TlsClientOptions;
  /** Static files and route modules. */
  path?: string;
  /** Shared keys: when set, publish, request and subscribe must be signed. */
  keys?: KeyRing | null;
  /** Origins allowed by CORS (`*` for any). */
  cors?: string[];
  /** Largest request body, in bytes. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Comment lines sent on idle SSE streams, in ms. Default 15,000. */
  keepAliveMs?: number;
  /**
   * Connections open at once (requests, streams and WebSockets together);
   * past it a new connection is closed as soon as it is accepted. Default 10,000.
   */
  maxConnections?: number;
  /** A client has this long from connecting (or from its previous request) to send a request's headers, in ms. Default 10,000. */
  headersTimeoutMs?: number;
  /** A client has this long to send a whole request, headers and body, in ms. Default 30,000. */
  requestTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this, in ms. Default 5,000. */
  keepAliveTimeoutMs?: number;
  /** Allow a non-loopback listen without keys. */
  insecure?: boolean;
  logger?: Logger;
}

export type ResolvedWebBridgeOptions = Required<Omit<WebBridgeOptions, 'token' | 'tls' | 'path' | 'logger' | 'keys'>> &
  Pick<WebBridgeOptions, 'token' | 'tls' | 'path'> & { keys: KeyRing | null };

export function defaultWebBridgeOptions(): ResolvedWebBridgeOptions {
  return {
    host: '127.0.0.1',
    port: 8080,
    dispatcherUrl: DEFAULT_DISPATCHER_URL,
    keys: null,
    cors: [],
    maxBodyBytes: 1024 * 1024,
    keepAliveMs: 15_000,
    maxConnections: 10_000,
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 30_000,
    keepAliveTimeoutMs: 5000,
    insecure: false,
  };
}

function int(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new NodesetError('BAD_OPTION', `option ${name} must be an integer >= ${min}, got ${String(value)}`);
  }
}

/** Fills in defaults and validates; throws BAD_OPTION naming the first bad option. */
export function resolveWebBridgeOptions(options: WebBridgeOptions = {}): ResolvedWebBridgeOptions {
  const o: ResolvedWebBridgeOptions = {
    ...defaultWebBridgeOptions(),
    ...Object.fromEntries(Object.entries(options).filter(([k, v]) => v !== undefined && k !== 'logger')),
  };
  int('port', o.port, 0);
  if (o.port > 65535) throw new NodesetError('BAD_OPTION', `option port out of range: ${o.port}`);
  int('maxBodyBytes', o.maxBodyBytes, 1);
  int('keepAliveMs', o.keepAliveMs, 1);
  int('maxConnections', o.maxConnections, 1);
  int('headersTimeoutMs', o.headersTimeoutMs, 1);
  int('requestTimeoutMs', o.requestTimeoutMs, 1);
  int('keepAliveTimeoutMs', o.keepAliveTimeoutMs, 1);
  if (o.headersTimeoutMs > o.requestTimeoutMs) {
    throw new NodesetError('BAD_OPTION', 'option headersTimeoutMs must not be longer than requestTimeoutMs');
  }
  return o;
}
