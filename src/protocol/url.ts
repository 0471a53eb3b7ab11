/**
 * Dispatcher URLs (`nodeset://[token@]host:port`, `nodesets://` for TLS) and
 * host:port parsing.
 */
import { NodesetError } from './errors.js';

export const DEFAULT_PORT = 5333;
export const DEFAULT_DISPATCHER_URL = `nodeset://127.0.0.1:${DEFAULT_PORT}`;

export interface DispatcherAddress {
  host: string;
  port: number;
  tls: boolean;
  /** Credentials carried in the URL (`nodeset://TOKEN@host:port`), if any. */
  token: string | null;
}

/** Parses `nodeset://[token@]host[:port]` or `nodesets://…` (TLS). */
export function parseDispatcherUrl(url: string): DispatcherAddress {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new NodesetError('BAD_OPTION', `dispatcher URL ${JSON.stringify(url)} is not a URL`, { cause });
  }
  if (parsed.protocol !== 'nodeset:' && parsed.protocol !== 'nodesets:') {
    throw new NodesetError(
      'BAD_OPTION',
      `dispatcher URL must start with nodeset:// or nodesets://, got ${JSON.stringify(url)}`,
    );
  }
  if (parsed.hostname === '') throw new NodesetError('BAD_OPTION', `dispatcher URL ${JSON.stringify(url)} has no host`);
  const port = parsed.port === '' ? DEFAULT_PORT : Number(parsed.port);
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  const token = parsed.username === '' ? null : decodeURIComponent(parsed.username);
  return { host, port, tls: parsed.protocol === 'nodesets:', token };
}

/** Parses `HOST:PORT` (or `[v6]:PORT`, or `PORT` alone) for listen options. */
export function parseHostPort(value: string, defaultHost = '127.0.0.1'): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value) ?? /^()()(\d+)$/.exec(value);
  if (m === null) throw new NodesetError('BAD_OPTION', `expected HOST:PORT, got ${JSON.stringify(value)}`);
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new NodesetError('BAD_OPTION', `port out of range in ${JSON.stringify(value)}`);
  }
  const host = m[1] || m[2] || defaultHost;
  return { host, port };
}

export function formatDispatcherUrl(host: string, port: number, tls = false): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return `${tls ? 'nodesets' : 'nodeset'}://${h}:${port}`;
}
