/**
 * Dispatcher options in one place: defaults, validation and the resolved
 * shape.
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { NodesetError } from '../protocol/errors.js';
import { isValidName } from '../protocol/event-uri.js';
import { DEFAULT_MAX_PAYLOAD_BYTES } from '../protocol/frames.js';
import { DEFAULT_PORT } from '../protocol/url.js';
import type { AuthConfig } from '../security/auth-config.js';
import type { TlsServerOptions } from '../transport/tcp.js';

export interface DispatcherOptions {
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** Port to listen on; 0 picks a free one. Default 5333. */
  port?: number;
  /** This host's name in event URIs. Default: the OS host name. */
  hostName?: string;
  /** Interval between pings to each node, in ms. Default 5000. */
  heartbeatIntervalMs?: number;
  /** A node silent for this long is dropped, in ms. Default 2 intervals. */
  heartbeatTimeoutMs?: number;
  /** Largest payload accepted, in bytes. Default 1 MiB. */
  maxPayloadBytes?: number;
  /** Outbound bytes queued for one connection before it is cut off as a slow consumer. Default 64 MiB. */
  maxPendingBytes?: number;
  /**
   * A `pushback` subscriber with more than this many outbound bytes queued
   * holds back the publishers that feed it until its queue has drained.
   * Default 4 MiB, or a quarter of maxPendingBytes when that is smaller.
   */
  pushbackHighBytes?: number;
  /** Longest a `pushback` subscriber may hold a publisher back before it is cut off (SLOW_CONSUMER), in ms. Default 30,000. */
  maxPushbackMs?: number;
  /** Subscriptions allowed per connection. Default 100,000. */
  maxSubscriptionsPerConnection?: number;
  /** Connections allowed in total. Default 100,000. */
  maxConnections?: number;
  /** A connection that has not sent HELLO within this time is closed, in ms. Default 5000. */
  handshakeTimeoutMs?: number;
  /** On stop, how long to wait for queued data to be written before closing sockets, in ms. Default 5000. */
  closeTimeoutMs?: number;
  /** Connections allowed at once per authenticated identity (unless the identity sets its own). Default 1000. */
  maxConnectionsPerIdentity?: number;
  /** Identities, tokens and permissions; null: no authentication (loopback only, unless `insecure`). */
  auth?: AuthConfig | null;
  /** TLS certificate and key; with `ca`, clients must present a certificate (mutual TLS). */
  tls?: TlsServerOptions | null;
  /** Allow listening on a non-loopback address without authentication. Default false. */
  insecure?: boolean;
  /** Structured logger; default: silent. */
  logger?: Logger;
}

export type ResolvedDispatcherOptions = Required<Omit<DispatcherOptions, 'logger' | 'auth' | 'tls'>> & {
  logger: Logger | null;
  auth: AuthConfig | null;
  tls: TlsServerOptions | null;
};

export function defaultDispatcherOptions(): Omit<ResolvedDispatcherOptions, 'hostName'> & { hostName: string } {
  return {
    host: '127.0.0.1',
    port: DEFAULT_PORT,
    hostName: hostname().split('.')[0] || 'localhost',
    heartbeatIntervalMs: 5000,
    heartbeatTimeoutMs: 10_000,
    maxPayloadBytes: DEFAULT_MAX_PAYLOAD_BYTES,
    maxPendingBytes: 64 * 1024 * 1024,
    pushbackHighBytes: 4 * 1024 * 1024,
    maxPushbackMs: 30_000,
    maxSubscriptionsPerConnection: 100_000,
    maxConnections: 100_000,
    handshakeTimeoutMs: 5000,
    closeTimeoutMs: 5000,
    maxConnectionsPerIdentity: 1000,
    auth: null,
    tls: null,
    insecure: false,
    logger: null,
  };
}

function positiveInt(name: string, value: number, min = 1): void {
  if (!Number.isInteger(value) || value < min) {
    throw new NodesetError('BAD_OPTION', `option ${name} must be an integer >= ${min}, got ${String(value)}`);
  }
}

/** Fills in defaults and validates; throws BAD_OPTION naming the first bad option. */
export function resolveDispatcherOptions(options: DispatcherOptions = {}): ResolvedDispatcherOptions {
  const defaults = defaultDispatcherOptions();
  const interval = options.heartbeatIntervalMs ?? defaults.heartbeatIntervalMs;
  const resolved: ResolvedDispatcherOptions = {
    ...defaults,
    heartbeatTimeoutMs: interval * 2,
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
    logger: options.logger ?? null,
    auth: options.auth ?? null,
    tls: options.tls ?? null,
  };
  if (options.pushbackHighBytes === undefined) {
    resolved.pushbackHighBytes = Math.max(
      1,
      Math.min(defaults.pushbackHighBytes, Math.floor(resolved.maxPendingBytes / 4)),
    );
  }
  if (!isValidName(resolved.hostName) || resolved.hostName === '*') {
    throw new NodesetError(
      'BAD_OPTION',
      `option hostName must be a host name, got ${JSON.stringify(resolved.hostName)}`,
    );
  }
  positiveInt('port', resolved.port, 0);
  if (resolved.port > 65535) throw new NodesetError('BAD_OPTION', `option port out of range: ${resolved.port}`);
  positiveInt('heartbeatIntervalMs', resolved.heartbeatIntervalMs, 10);
  positiveInt('heartbeatTimeoutMs', resolved.heartbeatTimeoutMs, 10);
  if (resolved.heartbeatTimeoutMs <= resolved.heartbeatIntervalMs) {
    throw new NodesetError('BAD_OPTION', 'option heartbeatTimeoutMs must be longer than heartbeatIntervalMs');
  }
  positiveInt('maxPayloadBytes', resolved.maxPayloadBytes);
  positiveInt('maxPendingBytes', resolved.maxPendingBytes);
  positiveInt('pushbackHighBytes', resolved.pushbackHighBytes);
  positiveInt('maxPushbackMs', resolved.maxPushbackMs, 10);
  if (resolved.pushbackHighBytes >= resolved.maxPendingBytes) {
    throw new NodesetError('BAD_OPTION', 'option pushbackHighBytes must be smaller than maxPendingBytes');
  }
  positiveInt('maxSubscriptionsPerConnection', resolved.maxSubscriptionsPerConnection);
  positiveInt('maxConnections', resolved.maxConnections);
  positiveInt('handshakeTimeoutMs', resolved.handshakeTimeoutMs, 10);
  positiveInt('closeTimeoutMs', resolved.closeTimeoutMs, 0);
  positiveInt('maxConnectionsPerIdentity', resolved.maxConnectionsPerIdentity);
  return resolved;
}
