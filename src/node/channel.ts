/**
 * How a node reaches the dispatcher (NodeChannel): its own connection
 * (LinkChannel) or a collection's; and the frames that expect answers (ask,
 * queries, acked publishes, requests).
 */
import { isRecord, isUint } from '../protocol/decoder.js';
import { NodesetError } from '../protocol/errors.js';
import {
  FrameKind,
  type MsgFields,
  type OkHeader,
  PubFlag,
  packHeader,
  type QueryHeader,
  type QueryWhat,
  type SubHeader,
} from '../protocol/frames.js';
import type { MessageHeaders } from '../protocol/headers.js';
import { DispatcherLink, type LinkOptions, type Welcome } from './dispatcher-link.js';
import type { GapTracker } from './gaps.js';
import type { Handler, OverflowPolicy } from './handlers.js';
import type { MessageType } from './message.js';
import { NODE_DEFAULTS } from './options.js';

/** A subscription as its node holds it. */
export interface LocalSubscription {
  readonly sid: number;
  readonly uri: string;
  readonly group: string | null;
  /** Answers requests (respond); a passive subscription never gets one. */
  readonly responds: boolean;
  /** Its slow-consumer policy asks for `pushback` (else the connection's policy applies). */
  readonly pushback: boolean;
  handler: Handler | null;
  type: MessageType | null;
  /** Direct-stream address announced with the subscription (StreamNode). */
  stream: string | null;
  /** Flow control: handlers running, the limit, and messages waiting ([header, payload] pairs). */
  inFlight: number;
  readonly maxInFlight: number;
  readonly queueLimit: number;
  readonly overflow: OverflowPolicy;
  readonly queue: [MsgFields, Buffer][];
  /** Set by unsubscribe: its handler is never called again. */
  removed: boolean;
  /** What it has seen of publishers' sequence numbers; made on the first numbered message. */
  gaps: GapTracker | null;
  /** Counters (Subscription.stats): messages received, handled, and dropped (overflow, or queued when removed). */
  received: number;
  handled: number;
  dropped: number;
  /** Called when its last handler finishes with nothing queued (set while it drains). */
  idle: (() => void) | null;
  /** Called once when its node removes it (releases an abort listener). */
  onRemoved: (() => void) | null;
}

/** The key of a subscription among a node's (or a collection's): its URI within its group. */
export function subscriptionKey(uri: string, group: string | null, responds = false): string {
  const key = group === null ? uri : `${group}\u0000${uri}`;
  return responds ? `\u0001${key}` : key;
}

/** What a channel calls back on the node it serves. */
export interface ChannelOwner {
  readonly name: string;
  /** Every subscription, to send again after a reconnect. */
  subscriptions(): Iterable<LocalSubscription>;
  subscriptionBySid(sid: number): LocalSubscription | undefined;
  /** Hands one received message to a subscription's handler. */
  deliver(sub: LocalSubscription, msg: MsgFields, payload: Buffer): void;
  channelOpened(welcome: Welcome, first: boolean, resubscribed: Promise<unknown>): void;
  channelLost(error: Error | undefined): void;
  channelError(error: Error): void;
  channelDrained(): void;
}

/**
 * How a node reaches the dispatcher: its own connection (LinkChannel), or a
 * share of a node collection's connection.
 */
export interface NodeChannel {
  readonly isOpen: boolean;
  readonly welcome: Welcome | null;
  readonly pendingBytes: number;
  start(timeoutMs: number): Promise<void>;
  stop(closeTimeoutMs: number): Promise<void>;
  drain(): Promise<void>;
  /** Resolves once the dispatcher confirmed it (at once when offline: sent on connect). */
  subscribe(sub: LocalSubscription, timeoutMs: number): Promise<unknown>;
  unsubscribe(sub: LocalSubscription, timeoutMs: number): Promise<unknown>;
  /**
   * The throughput path: no promise. `header` is the packed PUB header for
   * these arguments, `seq` and `headers` already in it.
   */
  publish(
    uri: string,
    flags: number,
    ct: number,
    bytes: Buffer,
    header: Buffer,
    seq: number,
    headers: MessageHeaders | null,
  ): void;
  publishAcked(
    uri: string,
    flags: number,
    ct: number,
    bytes: Buffer,
    timeoutMs: number,
    seq: number,
    headers: MessageHeaders | null,
  ): Promise<AckAnswer>;
  request(uri: string, ct: number, bytes: Buffer, timeoutMs: number, headers: MessageHeaders | null): Promise<unknown>;
  query(what: QueryWhat, uri: string | undefined, timeoutMs: number): Promise<unknown>;
  reply(to: number, r: number, ct: number, bytes: Buffer | null, err?: { code: string; message: string }): void;
  /** Stops (true) or resumes (false) reading from the connection (the `block` overflow policy). */
  pauseReading(paused: boolean): void;
  /** Drops the connection; it is made again with back-off (the `disconnect` overflow policy). */
  resetConnection(): void;
}

export function subHeader(
  sid: number,
  sub: Pick<LocalSubscription, 'uri' | 'group' | 'stream' | 'responds' | 'pushback'>,
  r: number,
): SubHeader {
  const header: SubHeader = { sid, uri: sub.uri, r };
  if (sub.group !== null) header.group = sub.group;
  if (sub.responds) header.reply = true;
  if (sub.pushback) header.slow = 'pushback';
  if (sub.stream !== null) header.stream = sub.stream;
  return header;
}

/** Sends one frame that expects an OK/ERROR/REPLY and returns the answer. */
export function ask(
  link: DispatcherLink,
  kind: number,
  header: (r: number) => unknown,
  payload: Buffer | null,
  timeoutMs: number,
  what: string,
): Promise<unknown> {
  const r = link.nextId();
  const answer = link.expect(r, timeoutMs, what);
  try {
    link.send(kind, packHeader(header(r)), payload);
  } catch (err) {
    link.forget(r);
    return Promise.reject(err);
  }
  return answer;
}

/** Ask the dispatcher a question; only while connected. A list answer comes in pages, gathered here. */
export async function queryLink(
  link: DispatcherLink,
  what: QueryWhat,
  uri: string | undefined,
  timeoutMs: number,
): Promise<unknown> {
  if (!link.isOpen) throw new NodesetError('NOT_CONNECTED', 'not connected to the dispatcher');
  let gathered: unknown[] | null = null;
  let from = 0;
  for (;;) {
    const header = (r: number): QueryHeader => {
      const h: QueryHeader = { r, what };
      if (uri !== undefined) h.uri = uri;
      if (from > 0) h.from = from;
      return h;
    };
    const ok = (await ask(link, FrameKind.QUERY, header, null, timeoutMs, `query ${what}`)) as QueryAnswer;
    const data = ok.data;
    if (gathered === null && !isUint(ok.next)) return data;
    if (!Array.isArray(data)) throw new NodesetError('BAD_FRAME', `query ${what}: a page is not a list`);
    gathered = gathered === null ? data : gathered.concat(data);
    if (!isUint(ok.next)) return gathered;
    if (ok.next <= from) throw new NodesetError('BAD_FRAME', `query ${what}: pages do not move forward`);
    from = ok.next;
  }
}

/** An OK answering a QUERY, its payload decoded (DispatcherLink). */
interface QueryAnswer extends OkHeader {
  data?: unknown;
}

/** The dispatcher's answer to an acknowledged publish. */
export interface AckAnswer {
  /** Subscriptions the message was written to. */
  n: number;
  /** Copies lost to subscribers cut off or closing. */
  dropped: number;
}

/** An acknowledged publish; resolves with the number of subscriptions reached and of copies dropped. */
export async function publishAcked(
  link: DispatcherLink,
  uri: string,
  flags: number,
  ct: number,
  bytes: Buffer,
  timeoutMs: number,
  sender: string | null,
  seq: number,
  headers: MessageHeaders | null = null,
): Promise<AckAnswer> {
  const ok = await ask(
    link,
    FrameKind.PUB,
    (r) =>
      headers === null
        ? [uri, flags | PubFlag.ACK, r, ct, sender, seq]
        : [uri, flags | PubFlag.ACK, r, ct, sender, seq, headers],
    bytes,
    timeoutMs,
    `publish ${uri}`,
  );
  return { n: ackCount(ok), dropped: isRecord(ok) && isUint(ok.dropped) ? ok.dropped : 0 };
}

/** A request; resolves with the reply. */
export function requestOver(
  link: DispatcherLink,
  uri: string,
  ct: number,
  bytes: Buffer,
  timeoutMs: number,
  sender: string | null,
  headers: MessageHeaders | null = null,
): Promise<unknown> {
  return ask(
    link,
    FrameKind.PUB,
    (r) =>
      headers === null ? [uri, PubFlag.REQUEST, r, ct, sender] : [uri, PubFlag.REQUEST, r, ct, sender, 0, headers],
    bytes,
    timeoutMs,
    `request ${uri}`,
  );
}

export function ackCount(ok: unknown): number {
  return isRecord(ok) && typeof ok.n === 'number' ? ok.n : 0;
}

/** A standalone node's own connection. */
export class LinkChannel implements NodeChannel {
  readonly link: DispatcherLink;

  constructor(owner: ChannelOwner, options: LinkOptions) {
    this.link = new DispatcherLink(options, {
      opened: (welcome, first) => {
        // Re-send every subscription: the dispatcher keeps nothing across restarts.
        const confirmations: Promise<unknown>[] = [];
        for (const sub of owner.subscriptions()) {
          confirmations.push(
            this.subscribe(sub, NODE_DEFAULTS.resubscribeTimeoutMs).catch((err: Error) => owner.channelError(err)),
          );
        }
        owner.channelOpened(welcome, first, Promise.all(confirmations));
      },
      message: (msg, payload) => {
        const sub = owner.subscriptionBySid(msg.sid);
        if (sub !== undefined) owner.deliver(sub, msg, payload); // else: unsubscribed while in flight
      },
      lost: (error) => owner.channelLost(error),
      error: (error) => owner.channelError(error),
      drained: () => owner.channelDrained(),
    });
  }

  get isOpen(): boolean {
    return this.link.isOpen;
  }

  get welcome(): Welcome | null {
    return this.link.welcome;
  }

  get pendingBytes(): number {
    return this.link.pendingBytes;
  }

  start(timeoutMs: number): Promise<void> {
    return this.link.start(timeoutMs);
  }

  stop(closeTimeoutMs: number): Promise<void> {
    return this.link.stop(closeTimeoutMs);
  }

  drain(): Promise<void> {
    return this.link.drain();
  }

  subscribe(sub: LocalSubscription, timeoutMs: number): Promise<unknown> {
    if (!this.link.isOpen) return Promise.resolve();
    return ask(this.link, FrameKind.SUB, (r) => subHeader(sub.sid, sub, r), null, timeoutMs, `subscribe ${sub.uri}`);
  }

  unsubscribe(sub: LocalSubscription, timeoutMs: number): Promise<unknown> {
    if (!this.link.isOpen) return Promise.resolve();
    return ask(this.link, FrameKind.UNSUB, (r) => ({ sid: sub.sid, r }), null, timeoutMs, `unsubscribe ${sub.uri}`);
  }

  publish(_uri: string, _flags: number, _ct: number, bytes: Buffer, header: Buffer): void {
    this.link.send(FrameKind.PUB, header, bytes);
  }

  publishAcked(
    uri: string,
    flags: number,
    ct: number,
    bytes: Buffer,
    timeoutMs: number,
    seq: number,
    headers: MessageHeaders | null,
  ): Promise<AckAnswer> {
    return publishAcked(this.link, uri, flags, ct, bytes, timeoutMs, null, seq, headers);
  }

  request(uri: string, ct: number, bytes: Buffer, timeoutMs: number, headers: MessageHeaders | null): Promise<unknown> {
    return requestOver(this.link, uri, ct, bytes, timeoutMs, null, headers);
  }

  query(what: QueryWhat, uri: string | undefined, timeoutMs: number): Promise<unknown> {
    return queryLink(this.link, what, uri, timeoutMs);
  }

  reply(to: number, r: number, ct: number, bytes: Buffer | null, err?: { code: string; message: string }): void {
    this.link.sendIfOpen(FrameKind.REPLY, packHeader(err === undefined ? { r, to, ct } : { r, to, ct, err }), bytes);
  }

  pauseReading(paused: boolean): void {
    this.link.pauseReading(paused);
  }

  resetConnection(): void {
    this.link.resetConnection();
  }
}
