import type { Logger } from 'pino';
import type { EventInfo } from '../node/handlers.js';
import { Node } from '../node/node.js';
import type { TlsClientOptions } from '../transport/tcp.js';

export interface BridgeEvent {
  event: string;
  message: unknown;
  from: string;
  /** The message headers (absent when it has none). */
  headers?: Readonly<Record<string, string>>;
  /** The origin host of a message from another host. */
  host?: string;
}

/** The JSON a stream or WebSocket client gets for an event: `{ event, message, from, headers?, host? }`. */
export function wireEvent(e: BridgeEvent): Record<string, unknown> {
  const out: Record<string, unknown> = { event: e.event, message: e.message ?? null, from: e.from };
  if (e.headers !== undefined) out.headers = e.headers;
  if (e.host !== undefined) out.host = e.host;
  return out;
}

/** A delivered event as the bridge's clients see it: headers and host only when there are some. */
export function bridgeEvent(uri: string, message: unknown, info: EventInfo): BridgeEvent {
  const event: BridgeEvent = { event: uri, message, from: info.from };
  for (const _ in info.headers) {
    event.headers = info.headers;
    break;
  }
  if (info.host !== null) event.host = info.host;
  return event;
}

export type BridgeListener = (event: BridgeEvent) => void;

interface Shared {
  readonly node: Node;
  readonly uri: string;
  readonly listeners: Set<BridgeListener>;
  ready: Promise<void>;
}

/** Identities held at once; the least recently used is closed past it. */
const MAX_IDENTITIES = 1000;

/**
 * The bridge's dispatcher connections: one node per token, so HTTP and
 * WebSocket clients get exactly the identity (and the permissions, checked
 * by the dispatcher) of a native node with that token. Subscriptions are
 * shared: one per node and URI, fanned out to every HTTP client that wants it,
 * and removed at the dispatcher when the last one goes.
 */
export class NodePool {
  readonly #nodes = new Map<string, Promise<Node>>();
  readonly #shared = new Map<string, Shared>();
  readonly #options: { dispatcherUrl: string; tls?: TlsClientOptions; logger: Logger; startTimeoutMs: number };

  constructor(options: { dispatcherUrl: string; tls?: TlsClientOptions; logger: Logger; startTimeoutMs?: number }) {
    this.#options = { startTimeoutMs: 5000, ...options };
  }

  /** The node for a token (null: no token), connected. Rejects with the dispatcher's refusal (AUTH_FAILED…). */
  node(token: string | null): Promise<Node> {
    const key = token ?? '';
    let pending = this.#nodes.get(key);
    if (pending !== undefined) {
      // Most recently used last.
      this.#nodes.delete(key);
      this.#nodes.set(key, pending);
      return pending;
    }
    const node = new Node({
      dispatcherUrl: this.#options.dispatcherUrl,
      name: `web-${Math.random().toString(36).slice(2, 10)}`,
      token: token ?? '',
      tls: this.#options.tls,
      logger: this.#options.logger,
      startTimeoutMs: this.#options.startTimeoutMs,
      statsIntervalMs: 0,
    });
    pending = node.start().catch(async (err: unknown) => {
      this.#nodes.delete(key);
      await node.stop();
      throw err;
    });
    this.#nodes.set(key, pending);
    if (this.#nodes.size > MAX_IDENTITIES) {
      const [oldest, evicted] = this.#nodes.entries().next().value as [string, Promise<Node>];
      this.#nodes.delete(oldest);
      void evicted.then((n) => n.stop()).catch(() => {});
    }
    return pending;
  }

  /** Adds a listener to the shared subscription of `node` to `uri`; resolves with the function that removes it. */
  async listen(node: Node, uri: string, listener: BridgeListener): Promise<() => Promise<void>> {
    const key = `${node.name}\u0000${uri}`;
    let shared = this.#shared.get(key);
    if (shared === undefined) {
      const created: Shared = { node, uri, listeners: new Set(), ready: Promise.resolve() };
      created.ready = node
        .subscribe(uri, (message, info) => {
          const event = bridgeEvent(info.uri, message, info);
          for (const l of created.listeners) l(event);
        })
        .then(() => undefined);
      shared = created;
      this.#shared.set(key, shared);
      try {
        await shared.ready;
      } catch (err) {
        this.#shared.delete(key);
        throw err;
      }
    } else {
      await shared.ready;
    }
    const s = shared;
    s.listeners.add(listener);
    let removed = false;
    return async () => {
      if (removed) return;
      removed = true;
      s.listeners.delete(listener);
      if (s.listeners.size > 0 || this.#shared.get(key) !== s) return;
      this.#shared.delete(key);
      await s.node.unsubscribe(uri).catch(() => {});
    };
  }

  /** Listeners currently attached, over all shared subscriptions. */
  get listenerCount(): number {
    let n = 0;
    for (const s of this.#shared.values()) n += s.listeners.size;
    return n;
  }

  async stop(): Promise<void> {
    const nodes = [...this.#nodes.values()];
    this.#nodes.clear();
    this.#shared.clear();
    await Promise.all(nodes.map((p) => p.then((n) => n.stop()).catch(() => {})));
  }
}
