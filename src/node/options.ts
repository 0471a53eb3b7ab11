/**
 * Node-side options in one place: their shapes, defaults and validation,
 * shared by Node, NodeCollection and the dispatcher link. A bad option is
 * refused when the object is made, with BAD_OPTION and the option's name.
 */
import type { Logger } from 'pino';
import { NodesetError } from '../protocol/errors.js';
import { isValidName } from '../protocol/event-uri.js';
import type { SlowConsumerPolicy } from '../protocol/frames.js';
import { DEFAULT_DISPATCHER_URL, type DispatcherAddress, parseDispatcherUrl } from '../protocol/url.js';
import type { TlsClientOptions } from '../transport/tcp.js';
import type { BackoffOptions } from './backoff.js';
import type { OverflowPolicy, SubscribeOptions } from './handlers.js';

const MiB = 1024 * 1024;

/** Every node-side default, with its unit in its name. */
export const NODE_DEFAULTS = {
  startTimeoutMs: 30_000,
  connectTimeoutMs: 5000,
  ackTimeoutMs: 10_000,
  requestTimeoutMs: 5000,
  closeTimeoutMs: 5000,
  statsIntervalMs: 5000,
  offlineMaxMessages: 10_000,
  offlineMaxBytes: 8 * MiB,
  maxPendingBytes: 64 * MiB,
  /** Timeout of each subscription sent again after a reconnect. */
  resubscribeTimeoutMs: 10_000,
  /** Largest frame payload a node accepts from the dispatcher (the dispatcher's own limit is lower). */
  maxInboundPayloadBytes: 64 * MiB,
  maxInFlight: 1,
  queueLimit: 10_000,
  overflow: 'drop-newest' as OverflowPolicy,
} as const;

/** Largest last will payload, in bytes: it travels in the HELLO header with the node's name and token. */
export const MAX_WILL_BYTES = 32 * 1024;

/** How a connection to the dispatcher is made and bounded; shared by nodes and collections. */
export interface ConnectionOptions {
  /** Name; a random UUID when not given. */
  name?: string;
  /** Dispatcher URL, `nodeset://[token@]host:port`. Default: env NODESET_DISPATCHER_URL, else nodeset://127.0.0.1:5333. */
  dispatcherUrl?: string;
  /** Authentication token; default: the one in the URL, else env NODESET_TOKEN. */
  token?: string;
  /** TLS settings for `nodesets://` URLs: CA to trust, client certificate for mutual TLS. */
  tls?: TlsClientOptions;
  /** Host name to announce; default: the dispatcher's. */
  host?: string;
  /** Reconnect back-off: first delay (default 100 ms) and cap (default 30 s). */
  reconnect?: BackoffOptions;
  /** `start()` rejects when no connection is made within this time, in ms (0: wait forever). Default 30,000. */
  startTimeoutMs?: number;
  /** Timeout of one connection attempt, handshake included, in ms. Default 5000. */
  connectTimeoutMs?: number;
  /** Frames buffered while disconnected: at most this many. Default 10,000. */
  offlineMaxMessages?: number;
  /** Frames buffered while disconnected: at most this many bytes. Default 8 MiB. */
  offlineMaxBytes?: number;
  /**
   * Outbound bytes queued on a live connection before publish throws
   * BUFFER_FULL. Default 64 MiB: a loop of 1,000 publishes of 16 KiB fits
   * between two `drain()` calls. `pendingBytes` and `drain()` are the way to
   * stay under it.
   */
  maxPendingBytes?: number;
  /**
   * When this connection falls behind reading what it subscribed to: `cut`
   * (the default) lets the dispatcher cut it off past its limit; `pushback`
   * makes the dispatcher hold back the publishers feeding it until it catches up.
   */
  slowConsumer?: SlowConsumerPolicy;
  /** On stop, how long queued frames may take to be written, in ms. Default 5000. */
  closeTimeoutMs?: number;
  /**
   * After the dispatcher refuses the credentials (AUTH_FAILED), keep
   * reconnecting (true) or stop (the default: `start()` rejects and the
   * node holds no timers, so a process with nothing else to do exits).
   */
  retryOnAuthFailure?: boolean;
  logger?: Logger;
}

export interface NodeOptions extends ConnectionOptions {
  /** Default timeout of `publish(..., { ack: true })`, in ms. Default 10,000. */
  ackTimeoutMs?: number;
  /** Default timeout of `request()`, in ms. Default 5000. */
  requestTimeoutMs?: number;
  /** Publish `metrics` on `$nodeset.stats` this often, in ms (0: never). Default 5000. */
  statsIntervalMs?: number;
  /** A message the dispatcher publishes for this node if it disappears without a graceful stop. */
  lastWill?: { uri: string; message?: unknown };
}

export type NodeCollectionOptions = Omit<ConnectionOptions, 'host'>;

/** Connection options with every default applied, checked. */
export interface ResolvedConnectionOptions {
  name: string | null;
  address: DispatcherAddress;
  host: string | null;
  tls: TlsClientOptions | null;
  backoff: BackoffOptions;
  startTimeoutMs: number;
  connectTimeoutMs: number;
  offlineMaxMessages: number;
  offlineMaxBytes: number;
  maxPendingBytes: number;
  slowConsumer: SlowConsumerPolicy;
  closeTimeoutMs: number;
  retryOnAuthFailure: boolean;
}

export interface ResolvedNodeOptions extends ResolvedConnectionOptions {
  ackTimeoutMs: number;
  requestTimeoutMs: number;
  statsIntervalMs: number;
}

export function resolveConnectionOptions(o: ConnectionOptions): ResolvedConnectionOptions {
  if (o.name !== undefined) checkName('name', o.name);
  if (o.host !== undefined) checkName('host', o.host);
  const url = o.dispatcherUrl ?? process.env.NODESET_DISPATCHER_URL ?? DEFAULT_DISPATCHER_URL;
  return {
    name: o.name ?? null,
    address: withToken(parseDispatcherUrl(url), o.token),
    host: o.host ?? null,
    tls: o.tls ?? null,
    backoff: o.reconnect ?? {},
    startTimeoutMs: count(o, 'startTimeoutMs', 0),
    connectTimeoutMs: count(o, 'connectTimeoutMs', 1),
    offlineMaxMessages: count(o, 'offlineMaxMessages', 0),
    offlineMaxBytes: count(o, 'offlineMaxBytes', 0),
    maxPendingBytes: count(o, 'maxPendingBytes', 1),
    slowConsumer: slowConsumerPolicy(o.slowConsumer),
    closeTimeoutMs: count(o, 'closeTimeoutMs', 0),
    retryOnAuthFailure: o.retryOnAuthFailure === true,
  };
}

export function resolveNodeOptions(o: NodeOptions): ResolvedNodeOptions {
  return {
    ...resolveConnectionOptions(o),
    ackTimeoutMs: count(o, 'ackTimeoutMs', 1),
    requestTimeoutMs: count(o, 'requestTimeoutMs', 1),
    statsIntervalMs: count(o, 'statsIntervalMs', 0),
  };
}

/** A subscription's flow-control options, with defaults, checked. */
export function resolveSubscribeOptions(o: SubscribeOptions): {
  maxInFlight: number;
  queueLimit: number;
  overflow: OverflowPolicy;
  pushback: boolean;
} {
  const overflow = o.overflow ?? NODE_DEFAULTS.overflow;
  if (!['drop-newest', 'drop-oldest', 'disconnect', 'block'].includes(overflow)) {
    throw new NodesetError(
      'BAD_OPTION',
      `overflow must be drop-newest, drop-oldest, disconnect or block, got ${JSON.stringify(overflow)}`,
    );
  }
  if (o.group !== undefined) checkName('group', o.group);
  const pushback = o.slowConsumer === undefined ? false : slowConsumerPolicy(o.slowConsumer) === 'pushback';
  return { maxInFlight: count(o, 'maxInFlight', 1), queueLimit: count(o, 'queueLimit', 0), overflow, pushback };
}

/** A numeric option: an integer at least `min`, or its default. */
function count<O extends object>(o: O, key: keyof O & keyof typeof NODE_DEFAULTS, min: number): number {
  const value = (o as Record<string, unknown>)[key as string] ?? NODE_DEFAULTS[key];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new NodesetError('BAD_OPTION', `option ${String(key)} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

function checkName(option: string, value: unknown): void {
  if (!isValidName(value)) {
    throw new NodesetError(
      'BAD_OPTION',
      `option ${option} ${JSON.stringify(value)} must be 1 to 255 letters, digits and _.:-`,
    );
  }
}

function slowConsumerPolicy(value: unknown): SlowConsumerPolicy {
  if (value === undefined || value === 'cut') return 'cut';
  if (value === 'pushback') return 'pushback';
  throw new NodesetError('BAD_OPTION', `slowConsumer must be 'cut' or 'pushback', got ${JSON.stringify(value)}`);
}

/** The token to use: the option, the URL's, the environment's; '' means none. */
function withToken(address: DispatcherAddress, token: string | undefined): DispatcherAddress {
  const chosen = token ?? address.token ?? process.env.NODESET_TOKEN ?? null;
  return { ...address, token: chosen === '' ? null : chosen };
}
