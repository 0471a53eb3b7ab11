/**
 * NodeCollection: many nodes behind one dispatcher connection, sharing one
 * dispatcher subscription per URI and group, with in-process delivery
 * between members.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { isRecord } from '../protocol/decoder.js';
import { NodesetError } from '../protocol/errors.js';
import { type EventUri, parseEventUri } from '../protocol/event-uri.js';
import {
  FrameKind,
  type MsgFields,
  PubFlag,
  packHeader,
  packPlainPubHeader,
  packPubHeader,
  type QueryWhat,
  setSeq,
} from '../protocol/frames.js';
import { HeaderCache } from '../protocol/header-cache.js';
import type { MessageHeaders } from '../protocol/headers.js';
import { type RouteEntry, RoutingTable } from '../protocol/routing-table.js';
import {
  type AckAnswer,
  ask,
  type ChannelOwner,
  type LocalSubscription,
  type NodeChannel,
  publishAcked,
  queryLink,
  requestOver,
  subHeader,
  subscriptionKey,
} from './channel.js';
import { DispatcherLink, linkOptions, type Welcome } from './dispatcher-link.js';
import { ATTACH_CHANNEL, CHANNEL_OWNER } from './internal.js';
import { defaultLogger } from './logger.js';
import type { Node } from './node.js';
import { NODE_DEFAULTS, type NodeCollectionOptions, resolveConnectionOptions } from './options.js';

export type { NodeCollectionOptions };

interface Holder {
  readonly owner: ChannelOwner;
  readonly sub: LocalSubscription;
}

/** One dispatcher subscription shared by every member that wants the same URI and group. */
interface SharedSubscription extends RouteEntry {
  readonly sid: number;
  readonly uri: string;
  readonly holders: Holder[];
  readonly responds: boolean;
  next: number;
  /** The SUB carrying the member list, when one is scheduled and not sent yet: changes in one turn share it. */
  sending: Promise<unknown> | null;
}

const TARGET_CACHE_LIMIT = 4096;
const LOCAL_HOSTS = new Set(['localhost', '*']);

/**
 * Many nodes in one process behind one dispatcher connection. Each member
 * keeps its own name, handlers and subscriptions and is written exactly as a
 * standalone node. The dispatcher sees one subscription per distinct URI and
 * group; events between members are delivered in-process, without a round
 * trip through the dispatcher.
 */
export class NodeCollection extends EventEmitter<{ error: [Error] }> {
  readonly name: string;
  readonly logger: Logger;
  readonly startTimeoutMs: number;
  readonly closeTimeoutMs: number;
  readonly #link: DispatcherLink;
  readonly #members = new Map<Node, MemberChannel>();
  readonly #shared = new Map<number, SharedSubscription>();
  readonly #byKey = new Map<string, SharedSubscription>();
  readonly #local = new RoutingTable<SharedSubscription>();
  readonly #targets = new Map<string, EventUri | null>();
  #nextSid = 1;
  #everOpened = false;
  /** Local deliveries waiting for the next microtask: [shared, header, payload] triples. */
  #localQueue: unknown[] = [];
  #localScheduled = false;

  constructor(options: NodeCollectionOptions = {}) {
    super();
    const o = resolveConnectionOptions(options);
    this.name = o.name ?? randomUUID();
    this.logger = (options.logger ?? defaultLogger()).child({ collection: this.name });
    this.startTimeoutMs = o.startTimeoutMs;
    this.closeTimeoutMs = o.closeTimeoutMs;
    this.#link = new DispatcherLink(linkOptions(this.name, o, this.logger), {
      opened: (welcome) => this.#opened(welcome),
      message: (header, payload) => this.#message(header, payload),
      lost: (error) => {
        this.logger.warn({ err: error?.message }, 'collection disconnected from the dispatcher');
        for (const m of this.#members.values()) m.owner.channelLost(error);
      },
      error: (error) => this.#reportError(error),
      drained: () => {
        for (const m of this.#members.values()) m.owner.channelDrained();
      },
    });
  }

  get connected(): boolean {
    return this.#link.isOpen;
  }

  /** The members, in the order they were added. */
  get members(): Node[] {
    return [...this.#members.keys()];
  }

  /** Adds a node (before it is started); returns it. */
  add<N extends Node>(node: N): N {
    if (this.#members.has(node)) return node;
    const channel = new MemberChannel(this, node[CHANNEL_OWNER]);
    node[ATTACH_CHANNEL](channel);
    this.#members.set(node, channel);
    return node;
  }

  /** Connects and starts every member added so far. */
  async start(): Promise<this> {
    await this.#link.start(this.startTimeoutMs);
    await Promise.all(this.members.map((n) => n.start()));
    return this;
  }

  /** Stops every member, then closes the connection. */
  async stop(): Promise<void> {
    await Promise.all(this.members.map((n) => n.stop()));
    await this.#link.stop(this.closeTimeoutMs);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Subscriptions the dispatcher holds for this collection (one per distinct URI and group). */
  get sharedSubscriptionCount(): number {
    return this.#shared.size;
  }

  // ---- used by MemberChannel (not part of the public API) ----------------------

  /** @internal */
  get link(): DispatcherLink {
    return this.#link;
  }

  /** @internal */
  connect(timeoutMs: number): Promise<void> {
    return this.#link.start(timeoutMs);
  }

  /** @internal */
  detach(owner: ChannelOwner): void {
    for (const [node, channel] of this.#members) if (channel.owner === owner) this.#members.delete(node);
  }

  /** @internal */
  addHolder(owner: ChannelOwner, sub: LocalSubscription, timeoutMs: number): Promise<unknown> {
    const key = subscriptionKey(sub.uri, sub.group, sub.responds);
    let shared = this.#byKey.get(key);
    if (shared === undefined) {
      const parsed = parseEventUri(sub.uri, true);
      shared = {
        sid: this.#nextSid++,
        uri: sub.uri,
        group: sub.group,
        responds: sub.responds,
        pattern: parsed.event,
        wildcard: parsed.wildcard,
        holders: [],
        next: 0,
        sending: null,
      };
      this.#shared.set(shared.sid, shared);
      this.#byKey.set(key, shared);
      this.#local.add(shared);
    }
    shared.holders.push({ owner, sub });
    return this.#sendSub(shared, timeoutMs);
  }

  /** @internal */
  removeHolder(owner: ChannelOwner, sub: LocalSubscription, timeoutMs: number): Promise<unknown> {
    const shared = this.#byKey.get(subscriptionKey(sub.uri, sub.group, sub.responds));
    if (shared === undefined) return Promise.resolve();
    const i = shared.holders.findIndex((h) => h.owner === owner && h.sub === sub);
    if (i !== -1) shared.holders.splice(i, 1);
    if (shared.holders.length > 0) return this.#sendSub(shared, timeoutMs);
    // The last member left: remove it at the dispatcher too.
    this.#shared.delete(shared.sid);
    this.#byKey.delete(subscriptionKey(shared.uri, shared.group, shared.responds));
    this.#local.remove(shared);
    if (!this.#link.isOpen) return Promise.resolve();
    const sid = shared.sid;
    return ask(this.#link, FrameKind.UNSUB, (r) => ({ sid, r }), null, timeoutMs, `unsubscribe ${shared.uri}`);
  }

  /**
   * A member's publish in `all` mode to this host: members that subscribe
   * get it in-process (on the next microtask); returns how many.
   * @internal
   */
  deliverLocally(from: string, uri: string, ct: number, payload: Buffer, headers: MessageHeaders | null): number {
    const target = this.#target(uri);
    if (target === null || target.node !== null) return -1;
    if (target.host !== null && !LOCAL_HOSTS.has(target.host) && target.host !== this.#link.welcome?.host) return -1;
    const route = this.#local.match(target.event);
    if (route.ungrouped.length === 0) return 0;
    const msg: MsgFields = {
      sid: 0,
      uri,
      from,
      ct,
      replyConn: 0,
      replyId: 0,
      single: false,
      seq: 0,
      headers,
      host: null,
    };
    let n = 0;
    for (const shared of route.ungrouped) {
      this.#localQueue.push(shared, msg, payload);
      n += shared.holders.length;
    }
    if (!this.#localScheduled) {
      this.#localScheduled = true;
      queueMicrotask(this.#drainLocal);
    }
    return n;
  }

  /** @internal */
  query(what: QueryWhat, uri: string | undefined, timeoutMs: number): Promise<unknown> {
    return queryLink(this.#link, what, uri, timeoutMs);
  }

  // ---- internals -------------------------------------------------------------

  readonly #drainLocal = (): void => {
    this.#localScheduled = false;
    const queue = this.#localQueue;
    this.#localQueue = [];
    for (let i = 0; i < queue.length; i += 3) {
      const shared = queue[i] as SharedSubscription;
      for (const holder of shared.holders.slice()) {
        holder.owner.deliver(holder.sub, queue[i + 1] as MsgFields, queue[i + 2] as Buffer);
      }
    }
  };

  /**
   * Sends the shared subscription with its member list; members joining or
   * leaving in the same turn share one SUB (a list sent per member would
   * grow with the square of the members).
   */
  #sendSub(shared: SharedSubscription, timeoutMs: number): Promise<unknown> {
    if (!this.#link.isOpen) return Promise.resolve();
    shared.sending ??= Promise.resolve().then(() => {
      shared.sending = null;
      // Removed meanwhile (its UNSUB went out): nothing to send.
      if (this.#shared.get(shared.sid) !== shared || !this.#link.isOpen) return undefined;
      return this.#askSub(shared, timeoutMs);
    });
    return shared.sending;
  }

  #askSub(shared: SharedSubscription, timeoutMs: number): Promise<unknown> {
    // The member names travel as the payload: a header would hold only a few thousand.
    const nodes = packHeader([...new Set(shared.holders.map((h) => h.owner.name))]);
    return ask(
      this.#link,
      FrameKind.SUB,
      (r) =>
        subHeader(
          shared.sid,
          {
            uri: shared.uri,
            group: shared.group,
            stream: null,
            responds: shared.responds,
            // Any member that asked for `pushback` makes the shared subscription ask for it.
            pushback: shared.holders.some((h) => h.sub.pushback),
          },
          r,
        ),
      nodes,
      timeoutMs,
      `subscribe ${shared.uri}`,
    );
  }

  #opened(welcome: Welcome): void {
    const first = !this.#everOpened;
    this.#everOpened = true;
    const confirmations: Promise<unknown>[] = [];
    for (const shared of this.#shared.values()) {
      confirmations.push(
        this.#sendSub(shared, NODE_DEFAULTS.resubscribeTimeoutMs).catch((err: Error) => this.#reportError(err)),
      );
    }
    const resubscribed = Promise.all(confirmations);
    for (const m of this.#members.values()) m.owner.channelOpened(welcome, first, resubscribed);
  }

  /** A MSG for one of the shared subscriptions: fan it out to the right members. */
  #message(msg: MsgFields, payload: Buffer): void {
    const shared = this.#shared.get(msg.sid);
    if (shared === undefined || shared.holders.length === 0) return;
    const node = this.#target(msg.uri)?.node ?? null;
    if (node !== null) {
      for (const holder of shared.holders)
        if (holder.owner.name === node) holder.owner.deliver(holder.sub, msg, payload);
    } else if (msg.single || shared.group !== null) {
      // Routed to exactly one subscriber (direct, request) or one group member: one member gets it.
      const holder = shared.holders[shared.next % shared.holders.length] as Holder;
      shared.next = (shared.next + 1) % shared.holders.length;
      holder.owner.deliver(holder.sub, msg, payload);
    } else {
      for (const holder of shared.holders.slice()) holder.owner.deliver(holder.sub, msg, payload);
    }
  }

  #target(uri: string): EventUri | null {
    let target = this.#targets.get(uri);
    if (target === undefined) {
      try {
        target = parseEventUri(uri, false);
      } catch {
        target = null;
      }
      if (this.#targets.size >= TARGET_CACHE_LIMIT) this.#targets.clear();
      this.#targets.set(uri, target);
    }
    return target;
  }

  #reportError(error: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else this.logger.warn({ err: error }, error.message);
  }
}

/** A member node's share of its collection's connection. */
class MemberChannel implements NodeChannel {
  readonly owner: ChannelOwner;
  readonly #collection: NodeCollection;
  readonly #plainHeaders = new HeaderCache(packPlainPubHeader, 1024);
  readonly #held = new Set<LocalSubscription>();
  #stopped = false;

  constructor(collection: NodeCollection, owner: ChannelOwner) {
    this.#collection = collection;
    this.owner = owner;
  }

  get isOpen(): boolean {
    return !this.#stopped && this.#collection.link.isOpen;
  }

  get welcome(): Welcome | null {
    return this.#collection.link.welcome;
  }

  get pendingBytes(): number {
    return this.#collection.link.pendingBytes;
  }

  async start(timeoutMs: number): Promise<void> {
    if (this.#stopped) throw new NodesetError('CLOSED', `node ${this.owner.name} is stopped`);
    const link = this.#collection.link;
    const wasOpen = link.isOpen;
    // Subscriptions made before start (handlers declared with @on) join the shared ones now.
    const confirmations: Promise<unknown>[] = [];
    for (const sub of this.owner.subscriptions()) {
      if (!this.#held.has(sub))
        confirmations.push(this.subscribe(sub, timeoutMs || NODE_DEFAULTS.resubscribeTimeoutMs));
    }
    await this.#collection.connect(timeoutMs);
    // When the collection connects now, its own handshake sends everything; otherwise report here.
    if (wasOpen) this.owner.channelOpened(link.welcome as Welcome, true, Promise.all(confirmations));
  }

  async stop(closeTimeoutMs: number): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const removals = [...this.#held].map((sub) =>
      this.#collection.removeHolder(this.owner, sub, closeTimeoutMs).catch(() => {}),
    );
    this.#collection.detach(this.owner);
    await Promise.all(removals);
  }

  drain(): Promise<void> {
    return this.#collection.link.drain();
  }

  subscribe(sub: LocalSubscription, timeoutMs: number): Promise<unknown> {
    this.#held.add(sub);
    const name = this.owner.name;
    return this.#collection
      .addHolder(this.owner, sub, timeoutMs)
      .then((ok) => {
        // The shared SUB went through, but without this member's name: its identity may not use it.
        if (isRecord(ok) && Array.isArray(ok.refused) && ok.refused.includes(name)) {
          throw new NodesetError('PERMISSION_DENIED', `this connection's identity may not use the node name ${name}`);
        }
        return ok;
      })
      .catch((err: unknown) => {
        // Refused: the member does not hold it (its node forgets it too), so its handler is not called.
        this.#held.delete(sub);
        this.#collection.removeHolder(this.owner, sub, timeoutMs).catch(() => {});
        throw err;
      });
  }

  unsubscribe(sub: LocalSubscription, timeoutMs: number): Promise<unknown> {
    this.#held.delete(sub);
    return this.#collection.removeHolder(this.owner, sub, timeoutMs);
  }

  publish(
    uri: string,
    flags: number,
    ct: number,
    bytes: Buffer,
    _header: Buffer,
    seq: number,
    headers: MessageHeaders | null,
  ): void {
    const link = this.#collection.link;
    if (flags === 0 && this.#collection.deliverLocally(this.owner.name, uri, ct, bytes, headers) >= 0)
      flags = PubFlag.LOCAL_DONE;
    if (headers !== null) {
      link.send(FrameKind.PUB, packPubHeader(uri, flags, 0, ct, this.owner.name, seq, headers), bytes);
      return;
    }
    const header = this.#plainHeaders.get(uri, this.owner.name, ct, flags);
    link.send(FrameKind.PUB, setSeq(header, seq), bytes);
  }

  async publishAcked(
    uri: string,
    flags: number,
    ct: number,
    bytes: Buffer,
    timeoutMs: number,
    seq: number,
    headers: MessageHeaders | null,
  ): Promise<AckAnswer> {
    let local = 0;
    if (flags === 0) {
      const n = this.#collection.deliverLocally(this.owner.name, uri, ct, bytes, headers);
      if (n >= 0) {
        local = n;
        flags = PubFlag.LOCAL_DONE;
      }
    }
    const link = this.#collection.link;
    const answer = await publishAcked(link, uri, flags, ct, bytes, timeoutMs, this.owner.name, seq, headers);
    answer.n += local;
    return answer;
  }

  request(uri: string, ct: number, bytes: Buffer, timeoutMs: number, headers: MessageHeaders | null): Promise<unknown> {
    return requestOver(this.#collection.link, uri, ct, bytes, timeoutMs, this.owner.name, headers);
  }

  query(what: QueryWhat, uri: string | undefined, timeoutMs: number): Promise<unknown> {
    return this.#collection.query(what, uri, timeoutMs);
  }

  reply(to: number, r: number, ct: number, bytes: Buffer | null, err?: { code: string; message: string }): void {
    const header = packHeader(err === undefined ? { r, to, ct } : { r, to, ct, err });
    this.#collection.link.sendIfOpen(FrameKind.REPLY, header, bytes);
  }

  pauseReading(paused: boolean): void {
    this.#collection.link.pauseReading(paused);
  }

  resetConnection(): void {
    this.#collection.link.resetConnection();
  }
}
