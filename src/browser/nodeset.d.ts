/**
 * Types of the browser client (`nodeset/browser`): the ES module the web
 * bridge serves at `/nodeset.js`. It speaks the bridge's `/ws` protocol; it
 * needs a browser's `WebSocket` and, without a URL, `location`.
 */

/** What a subscription handler learns about the event besides its message. */
export interface BrowserEvent {
  readonly type: 'event';
  /** The URI the publisher used. */
  readonly event: string;
  readonly message: unknown;
  /** The publishing node's name. */
  readonly from: string;
}

export type BrowserHandler = (message: unknown, event: BrowserEvent) => void;

export interface ConnectOptions {
  /** Bearer token of an identity of the bridge, sent as `?token=`. */
  token?: string;
}

export interface BrowserPublishOptions {
  /** `all` (default: every subscriber) or `direct` (exactly one). */
  mode?: 'all' | 'direct';
}

export interface BrowserRequestOptions {
  /** Milliseconds to wait for the reply; the bridge's default is 5000. */
  timeout?: number;
}

/** `connecting`, `open`, `reconnecting` (after a lost connection, with back-off) or `closed`. */
export type BrowserClientStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

/**
 * An error answered by the bridge or a lost connection: an `Error` with the
 * nodeset error code (`PERMISSION_DENIED`, `TIMEOUT`, `CONNECTION_LOST`, …).
 */
export interface BrowserClientError extends Error {
  code: string;
}

export interface BrowserClient {
  readonly status: BrowserClientStatus;
  /** Called on each status change. */
  onstatus: ((status: BrowserClientStatus) => void) | null;
  /** Subscribes (wildcards allowed); again after every reconnect. Rejects with a {@link BrowserClientError}. */
  subscribe(event: string, handler: BrowserHandler): Promise<void>;
  /** Drops every handler of the event. */
  unsubscribe(event: string): Promise<void>;
  /** Publishes and resolves with the number of subscribers reached. */
  publish(event: string, message?: unknown, options?: BrowserPublishOptions): Promise<{ delivered: number }>;
  /** Resolves with one subscriber's handler return value. */
  request(event: string, message?: unknown, options?: BrowserRequestOptions): Promise<unknown>;
  /** Closes the connection for good. */
  close(): void;
}

/**
 * Connects to a bridge's WebSocket endpoint, by default `/ws` of the page's
 * own host: `connect()`, or `connect('wss://bridge.example/ws', { token })`.
 * It reconnects by itself (with back-off) and subscribes again.
 */
export declare function connect(url?: string, options?: ConnectOptions): BrowserClient;
