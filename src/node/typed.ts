/**
 * Types that flow from declarations to call sites: the optional typed event
 * map of a Node, the message types of `type:` options, and the shapes of the
 * dispatcher's QUERY answers as a node receives them. Types only: nothing
 * here exists at run time.
 */

import type { z } from 'zod';
import type { SubscriberInfo } from '../protocol/frames.js';
import type { NodeInfo, StatsSnapshot } from '../protocol/queries.js';
import type { EventInfo } from './handlers.js';
import type { MessageOf, MessageType } from './message.js';

/**
 * A typed event map: event name → the message published on it, or
 * `{ req, res }` for a name that is requested and answered.
 *
 * ```ts
 * type Events = {
 *   'orders.created': MessageOf<typeof Order>;
 *   'math.add': { req: { a: number; b: number }; res: number };
 * };
 * const node = new Node<Events>({ name: 'calc' });
 * ```
 *
 * Names outside the map (wildcards, host-qualified URIs, anything else)
 * stay allowed, untyped (`unknown`), as on a Node without a map.
 */
export type EventMap = object;

/** The map of a Node declared without one: every name is untyped. */
export type UntypedEvents = Record<never, never>;

/** A map entry for a name that is requested and answered. */
export interface RequestReply<Req = unknown, Res = unknown> {
  req: Req;
  res: Res;
}

/** What a value passed to publish must be for a message type: its input (defaults may be left out). */
export type MessageInput<T> = T extends MessageType<infer S> ? z.input<z.ZodObject<S>> : never;

/** The message published (or requested) on `uri` according to the map; `unknown` for a name outside it. */
export type MessageFor<E, U extends string> = U extends keyof E
  ? E[U] extends RequestReply<infer Req, unknown>
    ? Req
    : E[U]
  : unknown;

/** The reply to a request on `uri` according to the map; `unknown` for a name outside it or without `res`. */
export type ReplyFor<E, U extends string> = U extends keyof E
  ? E[U] extends RequestReply<unknown, infer Res>
    ? Res
    : unknown
  : unknown;

/** The message type named by an options object's `type`, if a precise one is. */
export type TypeOption<O> = O extends { type: infer T } ? (T extends MessageType ? T : undefined) : undefined;

/** Whether T is the wide `MessageType` (an options variable typed `PublishOptions`) rather than one declared type. */
export type IsWide<T> = MessageType extends T ? true : false;

/**
 * What a handler receives: the `type:` option's message when given, else the
 * map's entry for `uri`, else `unknown`.
 */
export type ReceivedMessage<E, U extends string, O> =
  TypeOption<O> extends infer T extends MessageType
    ? IsWide<T> extends true
      ? unknown
      : MessageOf<T>
    : MessageFor<E, U>;

/**
 * What publish and request accept: the input of the `type:` option's message
 * when given, else the map's entry for `uri`, else anything.
 */
export type SentMessage<E, U extends string, O> =
  TypeOption<O> extends infer T extends MessageType
    ? IsWide<T> extends true
      ? unknown
      : MessageInput<T>
    : MessageFor<E, U>;

/** The reply of a request: the `replyType:` option's message when given, else the map's `res` for `uri`. */
export type ReplyMessage<E, U extends string, O> = O extends { replyType: infer T extends MessageType }
  ? IsWide<T> extends true
    ? unknown
    : MessageOf<T>
  : ReplyFor<E, U>;

/** publish's result: the delivered count with `ack: true`, nothing without. */
export type PublishResult<O> = O extends { ack: true }
  ? Promise<number>
  : O extends { ack?: infer A }
    ? true extends A
      ? undefined | Promise<number>
      : Nothing
    : Nothing;

/** What publish returns without `ack` (its return type has always been `void`). */
// biome-ignore lint/suspicious/noConfusingVoidType: the return type of publish without ack, as before
export type Nothing = void;

/** The message a handler gets: the explicit type argument `M` when given, else what the map or `type:` says. */
export type HandlerMessage<M, E, U extends string, O> = [M] extends [never] ? ReceivedMessage<E, U, O> : M;

/** A handler of a typed name: the map's `res` is what it must answer. */
export type Responder<M, R> = (message: M, info: EventInfo) => R | PromiseLike<R>;

// ---- QUERY answers ---------------------------------------------------------
// The shapes of what the dispatcher answers (docs/protocol.md, QUERY), as a
// node receives them: the dispatcher's own types (src/protocol/queries.ts).

/** The answer to `node.stats()`: the dispatcher's counters. */
export type DispatcherStatsAnswer = StatsSnapshot;

/** One entry of the answer to `node.nodes()`: a node connected to the dispatcher. */
export type ConnectedNodeInfo = NodeInfo;

/** One entry of the answer to `node.subscribers(uri)`. */
export type { SubscriberInfo };
