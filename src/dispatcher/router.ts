/**
 * The router: the routing table and its target cache, publish, fan-out and
 * delivery, the slow-consumer rules (warning, pushback, cut-off), reply
 * bookkeeping, and who-subscribes lookups. It knows connections only as
 * Peers and owns their routing state; it writes no protocol beyond MSG and
 * REPLY frames through the Peer interface.
 */
import type { Logger } from 'pino';
import { isUint } from '../protocol/decoder.js';
import { NodesetError, toWireError } from '../protocol/errors.js';
import { ALL_HOSTS, MAX_URI_LENGTH, matchesPattern, parseEventUri } from '../protocol/event-uri.js';
import {
  MsgMode,
  PubFlag,
  packMsgTail,
  packOriginMsgTail,
  STATS_EVENT,
  type SubscriberInfo,
  setSeq,
  setSeqAt,
} from '../protocol/frames.js';
import type { MessageHeaders } from '../protocol/headers.js';
import { Route, RoutingTable } from '../protocol/routing-table.js';
import type { Arrival, Envelope } from './federation.js';
import type { Peer, Subscription, Target } from './peer.js';
import type { DispatcherStats } from './stats.js';

const TARGET_CACHE_LIMIT = 10_000;
/** Requests a responder may hold unanswered before the oldest is forgotten. */
const MAX_AWAITED_REPLIES = 10_000;
/** Connection id that stands for "the requester is on another host". */
export const FEDERATION_CONN = 0xffffffff;
/** Events under this prefix are published by the dispatcher only (but STATS_EVENT, each node's own metrics). */
export const RESERVED_PREFIX = '$nodeset.';
/** Sender name of the dispatcher's own events. */
export const INTERNAL_SENDER = 'dispatcher';

/** What the router needs of the link to other hosts. */
export interface RemoteHosts {
  readonly connected: boolean;
  /** The largest payload another host can be sent, in bytes (0: not known). */
  readonly maxPayload: number;
  /** Whether a live dispatcher of that host name is known. */
  knows(host: string): boolean;
  /**
   * One other live host with interest in `event` (single deliveries of `*\/event`), or null;
   * `responder`: a host with a responder for it (requests).
   */
  pickHost(event: string, responder: boolean): string | null;
  forward(host: string, envelope: Envelope): void;
  broadcast(envelope: Envelope): void;
  /** A local responder's reply to a request from another host. */
  reply(replyId: number, ct: number, err: { code: string; message: string } | undefined, payload: Buffer): void;
  /**
   * Subscriptions appeared for (+1) or left (-1) a pattern, in a queue group or not, responders
   * (`respond()`) or not; a promise while a new interest is on its way to the other hosts.
   */
  interestChanged(pattern: string, delta: 1 | -1, group: string | null, responds: boolean): Promise<void> | undefined;
  /** Other live hosts' queue groups that `event` reaches: group name → hosts; null: none. */
  groupHosts(event: string): Map<string, string[]> | null;
}

export interface RouterOptions {
  hostName: string;
  /** A cut-policy connection with more queued is cut off. */
  maxPendingBytes: number;
  /** A pushback connection with more queued holds its publishers. */
  pushbackHighBytes: number;
  logger: Logger;
}

/** The delivered count of a publish handed to another host (its answer comes from there). */
export const FORWARDED = -1;
const EMPTY_PAYLOAD = Buffer.alloc(0);
/** Room kept in a cross-host message for its metadata (URI, sender, host, flags), in bytes. */
const ENVELOPE_ROOM_BYTES = 1024;
/** The PUB flags that mean something at another host; other bits a client sets do not cross. */
const CROSSING_FLAGS = PubFlag.DIRECT | PubFlag.ACK | PubFlag.REQUEST;

export class Router {
  readonly #o: RouterOptions;
  readonly #stats: DispatcherStats;
  readonly #table = new RoutingTable<Subscription>();
  readonly #targets = new Map<string, Target | NodesetError>();
  /** Finds a connection by id (for replies). */
  readonly #peer: (id: number) => Peer | undefined;
  #remote: RemoteHosts | null = null;
  /** Queued bytes past which a delivery looks at the slow-consumer rules; the lower of the two marks. */
  readonly #behindBytes: number;
  /** The connection whose PUB is being routed now (pushback holds it); null otherwise. */
  #publisher: Peer | null = null;
  /** The connection the last successful delivery went to (request bookkeeping). */
  #lastDelivered: Peer | null = null;
  /** Copies refused by connections cut off or closing, in all (see #route). */
  #lost = 0;
  /** Copies the last routed publish lost that way: an acknowledged publish reports them. */
  lastDropped = 0;

  constructor(options: RouterOptions, stats: DispatcherStats, peer: (id: number) => Peer | undefined) {
    this.#o = options;
    this.#stats = stats;
    this.#peer = peer;
    this.#behindBytes = Math.min(options.pushbackHighBytes, options.maxPendingBytes / 2);
  }

  /** Connects the router to the other hosts (federation). */
  setRemote(remote: RemoteHosts): void {
    this.#remote = remote;
  }

  get subscriptionCount(): number {
    return this.#table.size;
  }

  isLocalHost(host: string): boolean {
    return host === this.#o.hostName || host === 'localhost' || host === '*';
  }

  /** Adds a subscription; returns a promise while its interest is not yet in effect on the other hosts. */
  add(sub: Subscription): Promise<void> | undefined {
    this.#table.add(sub);
    return this.#remote?.interestChanged(sub.pattern, 1, sub.group, sub.responds);
  }

  remove(sub: Subscription): void {
    if (this.#table.remove(sub)) this.#remote?.interestChanged(sub.pattern, -1, sub.group, sub.responds);
  }

  /**
   * Routes one publish from a connection; returns how many subscriptions got
   * it, or FORWARDED. Throws PERMISSION_DENIED, NO_ROUTE, BAD_URI. Hot path:
   * no promise, no closure, no re-encode of the payload. A publish with
   * headers has its MSG tail packed for it (no tail cache).
   */
  publish(
    from: Peer,
    sender: string,
    uri: string,
    flags: number,
    r: number,
    ct: number,
    payload: Buffer,
    seq: number,
    headers: MessageHeaders | null = null,
  ): number {
    const state = from.routing;
    // A connection mostly publishes to the URI it used last (same interned string).
    let target = state.lastTarget;
    if (target === null || state.lastUri !== uri) {
      target = this.resolve(uri);
      state.lastTarget = target;
      state.lastUri = uri;
    }
    const event = target.uri.event;
    if ((flags & PubFlag.ANNOUNCE) !== 0) return this.#announce(from, target, sender, uri, ct, seq);
    // Every node may report its own metrics; the other `$nodeset.` events are the dispatcher's alone.
    if (event.charCodeAt(0) === 36 /* $ */ && event.startsWith(RESERVED_PREFIX)) {
      if (event !== STATS_EVENT) {
        throw new NodesetError(
          'PERMISSION_DENIED',
          `${event}: events under ${RESERVED_PREFIX} come from the dispatcher`,
        );
      }
    } else if (!from.mayPublish(event)) {
      throw new NodesetError('PERMISSION_DENIED', `identity ${from.identityName} may not publish to ${uri}`);
    }
    if (!target.local) {
      this.#forward(from, sender, target.uri.host as string, uri, flags, r, ct, payload, seq, headers);
      return FORWARDED;
    }
    const isRequest = (flags & PubFlag.REQUEST) !== 0;
    const allHosts = target.uri.host === ALL_HOSTS && this.#remote !== null;
    if (allHosts) this.#checkSize(payload, uri, headers);
    const tail =
      isRequest || headers !== null ? undefined : setSeq(state.tails.get(uri, sender, ct, flags & PubFlag.DIRECT), seq);
    const skip = (flags & PubFlag.LOCAL_DONE) !== 0 ? from : null;
    this.#publisher = from;
    const delivered = this.#route(
      target,
      sender,
      uri,
      flags,
      ct,
      payload,
      from.id,
      r,
      skip,
      tail,
      seq,
      null,
      headers,
      null,
      state.stream,
    );
    this.#publisher = null;
    if (allHosts && (flags & (PubFlag.DIRECT | PubFlag.REQUEST)) !== 0) {
      // One receiver across the cluster: this host's, else one other host with interest
      // (for a request, one with a responder).
      if (delivered > 0) return delivered;
      const host = this.#remote?.connected === true ? this.#remote.pickHost(event, isRequest) : null;
      if (host === null) return 0;
      this.#forward(from, sender, host, uri, flags, r, ct, payload, seq, headers);
      return FORWARDED;
    }
    if (allHosts && this.#remote !== null) {
      const gh = this.#chooseGroupHosts(event, target.route);
      this.#remote.broadcast({
        uri,
        from: sender,
        host: this.#o.hostName,
        ct,
        flags: flags & PubFlag.DIRECT,
        payload,
        seq,
        st: state.stream,
        gh: gh ?? undefined,
        hd: headers ?? undefined,
      });
    }
    return delivered;
  }

  /**
   * A publish from another host, for this one: delivered to this host's
   * subscribers; a request's reply goes back through the federation (replyId).
   * `headers`: the envelope's, checked. The MSG names the origin host.
   */
  routeArrived(
    meta: Arrival,
    seq: number,
    payload: Buffer,
    replyId: number,
    headers: MessageHeaders | null = null,
  ): number {
    const target = this.resolve(meta.uri);
    if (!target.local) return 0;
    const flags = meta.flags & ~PubFlag.LOCAL_DONE;
    // Delivered as from `node@host` with the stream id of its connection there: gap
    // detection keys on both, so same-named nodes on two hosts are told apart.
    const stream = isUint(meta.st) ? meta.st : 0;
    meta.sender ??= `${meta.from}@${meta.host}`;
    const sender = meta.sender;
    let tail: Buffer | undefined;
    if ((flags & PubFlag.REQUEST) === 0 && headers === null) {
      // The link hands consecutive publishes with the same metadata the same Arrival: the
      // MSG tail is packed once for them, and only its sequence number changes.
      if (meta.tail === undefined) {
        const packed = packOriginMsgTail(meta.uri, sender, meta.ct, stream, (flags & PubFlag.DIRECT) !== 0, meta.host);
        meta.tail = packed.tail;
        meta.tailSeqAt = packed.seqAt;
      }
      tail = setSeqAt(meta.tail, meta.tailSeqAt as number, seq);
    }
    return this.#route(
      target,
      sender,
      meta.uri,
      flags,
      meta.ct,
      payload,
      FEDERATION_CONN,
      replyId,
      null,
      tail,
      seq,
      meta.gh ?? null,
      headers,
      meta.host,
      stream,
    );
  }

  /**
   * One host per queue group across the cluster for an all-hosts publish:
   * this host for the groups it has (delivered already), else one of the
   * other hosts that have the group. Null when no other host has a group.
   */
  #chooseGroupHosts(event: string, route: Route<Subscription> | null): Record<string, string> | null {
    const remote = this.#remote?.groupHosts(event) ?? null;
    if (remote === null) return null;
    // No prototype: a group may be named `constructor` or `__proto__`.
    const gh: Record<string, string> = Object.create(null);
    for (const group of route?.groups ?? []) gh[group.name] = this.#o.hostName;
    for (const [name, hosts] of remote) {
      if (gh[name] === undefined) gh[name] = hosts[Math.floor(Math.random() * hosts.length)] as string;
    }
    return gh;
  }

  /**
   * Publishes an event of the dispatcher's own (presence, last wills): `all`
   * mode, from the sender name `dispatcher`, or as `sender`.
   */
  publishInternal(uri: string, payload: Buffer, sender = INTERNAL_SENDER, ct = 0): number {
    const target = this.resolve(uri);
    if (!target.local) return 0;
    this.#stats.publishes++;
    const route = this.#routeOf(target);
    const lostBefore = this.#lost;
    const delivered = this.#fanOut(route, target.uri.event, packMsgTail(uri, sender, ct, 0, 0, false), payload, null);
    this.#countLost(lostBefore, delivered, false, payload);
    return delivered;
  }

  /**
   * Forwards a responder's REPLY to the requesting connection: only for a
   * request this router sent to that responder, so no connection can forge
   * answers to another's requests.
   */
  reply(from: Peer, toConn: number, r: number, ct: number, err: unknown, payload: Buffer): void {
    if (from.routing.awaitingReply?.delete(`${toConn}:${r}`) !== true) {
      throw new NodesetError('BAD_FRAME', `REPLY to a request this connection did not receive (${toConn}:${r})`);
    }
    const wireErr = toWireError(err, 'HANDLER_ERROR');
    if (toConn === FEDERATION_CONN) {
      this.#remote?.reply(r, ct, wireErr, payload);
      return;
    }
    const requester = this.#peer(toConn);
    if (requester === undefined || !requester.open) {
      this.#stats.repliesDropped++;
      return;
    }
    requester.sendReply(r, ct, wireErr, payload);
  }

  /** Who would receive a publish to `uri` on this host (in `all` mode, ignoring groups). */
  subscribers(uri: unknown): SubscriberInfo[] {
    const target = this.resolve(uri);
    if (!target.local) return [];
    const node = target.uri.node;
    return this.#table
      .match(target.uri.event)
      .all.filter((sub) => node === null || sub.serves(node))
      .map((sub) => ({
        node: sub.peer.name,
        nodes: sub.nodes ?? [sub.peer.name],
        host: sub.peer.host,
        uri: sub.uri,
        group: sub.group,
        stream: sub.stream,
      }));
  }

  /** URIs whose targets are cached. */
  get cachedTargets(): number {
    return this.#targets.size;
  }

  /** The target of a URI (cached); throws BAD_URI for a malformed one. */
  resolve(uri: unknown): Target {
    if (typeof uri === 'string') {
      const cached = this.#targets.get(uri);
      if (cached !== undefined) {
        if (cached instanceof NodesetError) throw cached;
        return cached;
      }
    }
    let result: Target | NodesetError;
    try {
      const parsed = parseEventUri(uri, false);
      result = { uri: parsed, local: parsed.host === null || this.isLocalHost(parsed.host), route: null, count: null };
    } catch (err) {
      if (!(err instanceof NodesetError)) throw err;
      result = err;
    }
    // Only URIs of a valid length are kept: a client sending long malformed ones must not fill
    // the cache with their text (up to a frame header each).
    if (typeof uri === 'string' && uri.length <= MAX_URI_LENGTH) {
      if (this.#targets.size >= TARGET_CACHE_LIMIT) this.#targets.clear();
      this.#targets.set(uri, result);
    }
    if (result instanceof NodesetError) throw result;
    return result;
  }

  // ---- flow control --------------------------------------------------------

  /** The peer's outbound queue emptied: the publishers it held read again; its slow warning re-arms. */
  drained(peer: Peer): void {
    peer.routing.slowWarned = false;
    this.#release(peer);
  }

  /** The peer is gone: whatever it held reads again. */
  detach(peer: Peer): void {
    this.#release(peer);
  }

  /** True while a pushback subscriber holds this peer's reading (it cannot show it is alive meanwhile). */
  isHeld(peer: Peer): boolean {
    return peer.routing.heldBy > 0;
  }

  /** How long this pushback peer has been holding its publishers, in ms (0: it holds none). */
  holdingForMs(peer: Peer, now: number): number {
    return peer.routing.holding === null ? 0 : now - peer.routing.holdingSince;
  }

  /** Cuts off a connection that cannot keep up, counting it. */
  cutSlowConsumer(peer: Peer): void {
    this.#stats.slowConsumers++;
    this.#o.logger.warn({ node: peer.name, id: peer.id, pending: peer.pendingBytes }, 'slow consumer disconnected');
    // Its queue is discarded (counted) and its SLOW_CONSUMER notice goes ahead of it.
    peer.terminate('slow-consumer');
  }

  // ---- internals -------------------------------------------------------------

  /**
   * Delivers a publish to this host's subscribers; returns how many got it.
   * A request goes to one subscriber and its reply is awaited from it for
   * (replyConn, replyId). `tail` is a cached MSG header tail, when there is one;
   * `headers`, `origin` (another host's publish) and the publisher's `stream`
   * id go into a tail packed here.
   */
  #route(
    target: Target,
    sender: string,
    uri: string,
    flags: number,
    ct: number,
    payload: Buffer,
    replyConn: number,
    replyId: number,
    skip: Peer | null,
    tail: Buffer | undefined,
    seq: number,
    groupHosts: Record<string, string> | null = null,
    headers: MessageHeaders | null = null,
    origin: string | null = null,
    stream = 0,
  ): number {
    const event = target.uri.event;
    this.#stats.publishes++;
    const route = this.#routeOf(target);
    const isRequest = (flags & PubFlag.REQUEST) !== 0;
    const single = (flags & (PubFlag.DIRECT | PubFlag.REQUEST)) !== 0;
    const msgTail =
      tail ??
      packMsgTail(
        uri,
        sender,
        ct,
        isRequest ? replyConn : stream,
        isRequest ? replyId : 0,
        single,
        seq,
        headers,
        origin,
      );
    let delivered = 0;
    const lostBefore = this.#lost;
    const node = target.uri.node;
    if (single) {
      // A request goes only to subscriptions that declared they answer; `direct` to any.
      const pool = isRequest ? route.responders : route.all;
      const sub =
        node !== null ? pool.find((s) => s.serves(node)) : isRequest ? route.pickResponder() : route.pickOne();
      if (sub !== undefined) {
        if (this.#deliver(sub, event, msgTail, payload)) delivered = 1;
        else
          delivered = this.#deliverToAnother(
            node === null ? pool : pool.filter((s) => s.serves(node)),
            sub,
            event,
            msgTail,
            payload,
          );
      }
    } else if (node === null) {
      delivered = this.#fanOut(route, event, msgTail, payload, skip, groupHosts);
    } else {
      for (const sub of route.all) {
        if (sub.serves(node) && this.#deliver(sub, event, msgTail, payload)) delivered++;
      }
    }
    if (isRequest && delivered > 0) this.#awaitReply(this.#lastDelivered as Peer, replyConn, replyId);
    this.lastDropped = this.#lost === lostBefore ? 0 : this.#countLost(lostBefore, delivered, single, payload);
    return delivered;
  }

  /** Counts the copies one publish lost (refused by connections cut off or closing); returns how many. */
  #countLost(lostBefore: number, delivered: number, single: boolean, payload: Buffer): number {
    let lost = this.#lost - lostBefore;
    if (lost > 0) {
      // A single delivery that another subscriber took in the end lost nothing; else it lost one copy.
      if (single) lost = delivered > 0 ? 0 : 1;
      this.#lost = lostBefore + lost;
      this.#stats.dropped += lost;
      this.#stats.droppedBytes += lost * payload.length;
    }
    return lost;
  }

  /** A publish for another host: through the federation, or NO_ROUTE. Its ack or reply comes back from there. */
  #forward(
    from: Peer,
    sender: string,
    host: string,
    uri: string,
    flags: number,
    r: number,
    ct: number,
    payload: Buffer,
    seq: number,
    headers: MessageHeaders | null,
  ): void {
    const remote = this.#remote;
    if (remote === null) throw new NodesetError('NO_ROUTE', `host ${host} is not reachable from ${this.#o.hostName}`);
    if (!remote.connected) {
      this.#stats.federationRejected++;
      throw new NodesetError('NO_ROUTE', `host ${host} is not reachable: the federation link is down`);
    }
    if (!remote.knows(host)) {
      this.#stats.federationRejected++;
      throw new NodesetError('NO_ROUTE', `host ${host} is not known: no live dispatcher of that name`);
    }
    this.#checkSize(payload, uri, headers);
    const answered = (flags & (PubFlag.ACK | PubFlag.REQUEST)) !== 0;
    remote.forward(host, {
      uri,
      from: sender,
      host: this.#o.hostName,
      ct,
      flags: flags & CROSSING_FLAGS,
      payload,
      seq,
      st: from.routing.stream,
      // One object shape for every publish (no spread): undefined marks what is absent.
      conn: answered ? from.id : undefined,
      r: answered ? r : undefined,
      hd: headers ?? undefined,
    });
  }

  /**
   * A publisher's announce of the last sequence number it used on `uri`:
   * a MSG marked as an announce (MsgMode.ANNOUNCE, empty payload) to this
   * host's ungrouped subscriptions its publish would reach, so one that
   * missed the end of the stream learns of it. Best effort and quiet: an
   * announce the publish would not be allowed (another host, a reserved
   * event, no permission) goes nowhere without an error, and a subscriber
   * past its falling-behind mark is skipped (the next one reaches it). Counted
   * in `announces`, not as a publish or a delivery.
   */
  #announce(from: Peer, target: Target, sender: string, uri: string, ct: number, seq: number): number {
    const event = target.uri.event;
    if (!target.local || seq === 0 || event.charCodeAt(0) === 36 /* $ */ || !from.mayPublish(event)) return 0;
    let route = target.route;
    if (route === null || route.stale) {
      route = this.#table.match(event);
      target.route = route;
    }
    this.#stats.announces++;
    const tail = setSeq(from.routing.tails.get(uri, sender, ct, MsgMode.ANNOUNCE), seq);
    const node = target.uri.node;
    let sent = 0;
    for (const sub of route.ungrouped) {
      const peer = sub.peer;
      if (!peer.open || peer.pendingBytes > this.#behindBytes) continue;
      if ((node !== null && !sub.serves(node)) || (sub.deny !== null && deniedBy(sub.deny, event))) continue;
      peer.sendMsg(sub.sid, tail, EMPTY_PAYLOAD);
      sent++;
    }
    return sent;
  }

  /**
   * A payload larger than the NATS server takes is refused before any delivery (TOO_LARGE).
   * Headers travel in the same NATS message (as JSON in a NATS header when it goes alone), so
   * they count too.
   */
  #checkSize(payload: Buffer, uri: string, headers: MessageHeaders | null): void {
    const max = this.#remote?.maxPayload ?? 0;
    if (max === 0) return;
    const headerBytes = headers === null ? 0 : Buffer.byteLength(JSON.stringify(headers));
    if (payload.length + headerBytes + uri.length + ENVELOPE_ROOM_BYTES > max) {
      this.#stats.federationRejected++;
      const what = headerBytes === 0 ? '' : ` with ${headerBytes} bytes of headers`;
      throw new NodesetError(
        'TOO_LARGE',
        `payload of ${payload.length} bytes${what} is too large for another host (NATS max_payload ${max} bytes)`,
      );
    }
  }

  /** `all` mode: every ungrouped subscription (but those of `skip`), and one member of each queue group. */
  #fanOut(
    route: Route<Subscription>,
    event: string,
    tail: Buffer,
    payload: Buffer,
    skip: Peer | null,
    groupHosts: Record<string, string> | null = null,
  ): number {
    let delivered = 0;
    for (const sub of route.ungrouped) {
      if (sub.peer !== skip && this.#deliver(sub, event, tail, payload)) delivered++;
    }
    for (const group of route.groups) {
      // An all-hosts publish from another host: a group is served by the one host chosen for it.
      if (groupHosts !== null && groupHosts[group.name] !== this.#o.hostName) continue;
      const lostBefore = this.#lost;
      const member = Route.pickMember(group);
      if (this.#deliver(member, event, tail, payload)) {
        delivered++;
        continue;
      }
      // Refused by the member chosen: a copy another member takes is not lost; one nobody takes is lost once.
      const took = this.#deliverToAnother(group.members, member, event, tail, payload);
      if (this.#lost > lostBefore) this.#lost = lostBefore + (took > 0 ? 0 : 1);
      delivered += took;
    }
    return delivered;
  }

  /**
   * The one chosen for a single delivery (`direct`, a request, a queue group)
   * refused it (a deny rule, a closing or slow connection): the first of the
   * others that takes it gets it. Off the hot path: only after a refusal.
   */
  #deliverToAnother(
    candidates: readonly Subscription[],
    refused: Subscription,
    event: string,
    tail: Buffer,
    payload: Buffer,
  ): number {
    for (const sub of candidates) {
      if (sub !== refused && this.#deliver(sub, event, tail, payload)) return 1;
    }
    return 0;
  }

  /** The route of a target's event, counting the publish. */
  #routeOf(target: Target): Route<Subscription> {
    let count = target.count;
    if (count === null) {
      count = this.#stats.eventCount(target.uri.event);
      target.count = count;
    }
    count.n++;
    let route = target.route;
    if (route === null || route.stale) {
      route = this.#table.match(target.uri.event);
      target.route = route;
    }
    return route;
  }

  #awaitReply(responder: Peer, requester: number, r: number): void {
    const state = responder.routing;
    state.awaitingReply ??= new Set();
    const pending = state.awaitingReply;
    if (pending.size >= MAX_AWAITED_REPLIES) {
      // The oldest request never got its answer; the requester's own timeout reports it.
      const oldest = pending.values().next().value;
      if (oldest !== undefined) pending.delete(oldest);
    }
    pending.add(`${requester}:${r}`);
  }

  #deliver(sub: Subscription, event: string, tail: Buffer, payload: Buffer): boolean {
    const peer = sub.peer;
    if (!peer.open) {
      this.#lost++;
      return false;
    }
    if (sub.deny !== null && deniedBy(sub.deny, event)) return false;
    const pending = peer.pendingBytes;
    if (pending > this.#o.maxPendingBytes) {
      this.cutSlowConsumer(peer);
      this.#lost++;
      return false;
    }
    peer.sendMsg(sub.sid, tail, payload);
    this.#lastDelivered = peer;
    peer.routing.msgsOut++;
    this.#stats.deliveries++;
    if (pending > this.#behindBytes) this.#fallingBehind(sub, peer, pending);
    return true;
  }

  /**
   * Past the lower of the two marks: a delivery to a pushback connection (or
   * subscription) past its high-water mark holds its publisher; a cut one past
   * half its limit is warned (once until it drains).
   */
  #fallingBehind(sub: Subscription, peer: Peer, pending: number): void {
    if (peer.pushback || sub.pushback) {
      if (this.#publisher !== null && pending > this.#o.pushbackHighBytes) this.#hold(peer, this.#publisher);
    } else if (!peer.routing.slowWarned && pending > this.#o.maxPendingBytes / 2) {
      peer.routing.slowWarned = true;
      peer.warnSlow(pending, this.#o.maxPendingBytes);
      this.#stats.slowWarnings++;
    }
  }

  /** `pushback`: stop reading from `publisher` until `subscriber`'s outbound queue has drained. */
  #hold(subscriber: Peer, publisher: Peer): void {
    const state = subscriber.routing;
    if (state.holding === null) {
      state.holding = new Set();
      state.holdingSince = Date.now();
    } else if (state.holding.has(publisher)) {
      return;
    }
    state.holding.add(publisher);
    subscriber.wantDrained();
    if (publisher.routing.heldBy++ === 0) {
      publisher.holdReading(true);
      this.#stats.pushbacks++;
    }
  }

  /** A pushback subscriber drained (or went away): the publishers it held read again, unless another holds them. */
  #release(subscriber: Peer): void {
    const held = subscriber.routing.holding;
    if (held === null) return;
    subscriber.routing.holding = null;
    for (const publisher of held) {
      if (--publisher.routing.heldBy === 0) publisher.holdReading(false);
    }
  }
}

function deniedBy(patterns: string[], event: string): boolean {
  for (const p of patterns) if (matchesPattern(p, event)) return true;
  return false;
}
