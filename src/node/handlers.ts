/**
 * Handler types, subscription options and overflow policies, and the `@on`
 * decorator that declares handlers on a Node subclass.
 */
import { NodesetError } from '../protocol/errors.js';
import type { SlowConsumerPolicy } from '../protocol/frames.js';
import type { MessageHeaders } from '../protocol/headers.js';
import type { MessageOf, MessageType } from './message.js';

/** What a handler learns about the event it is called for. */
export interface EventInfo {
  /** The URI the publisher used (`orders.new`, `host/orders.new`, `n@host/orders.new`). */
  readonly uri: string;
  /** The publishing node's name (`node@host` for a message from another host). */
  readonly from: string;
  /** The host the message was published on when it came from another host (federation); null for this host's. */
  readonly host: string | null;
  /** The publisher's headers (empty when it sent none; tracing context as `traceparent`/`tracestate`). */
  readonly headers: Readonly<MessageHeaders>;
  /** The subscription URI that matched (may hold wildcards). */
  readonly subscription: string;
  /** True when the publisher waits for this handler's return value. */
  readonly isRequest: boolean;
}

/** A subscription handler: its return value answers a request. */
export type Handler<M = unknown> = (message: M, info: EventInfo) => unknown;

/**
 * What happens when a subscription's queue is full: `drop-newest` (the
 * arriving message is dropped), `drop-oldest` (the oldest queued one is),
 * `disconnect` (the connection is dropped and re-made: the messages in flight
 * on it are lost), `block` (the connection's reads pause until the queue has
 * room; every subscription of the connection waits).
 */
export type OverflowPolicy = 'drop-newest' | 'drop-oldest' | 'disconnect' | 'block';

export interface SubscribeOptions {
  /** Queue group: members of a group share each message, one of them per message. */
  group?: string;
  /** Message type: received messages are checked against it (VALIDATION on mismatch). */
  type?: MessageType;
  /** Handlers of this subscription running at once (async ones); default 1: in order. */
  maxInFlight?: number;
  /** Messages waiting for a free handler; default 10,000. */
  queueLimit?: number;
  /** What a full queue does; default `drop-newest`. Each time is counted and emitted as `overflow`. */
  overflow?: OverflowPolicy;
  /**
   * This subscription answers requests (as `node.respond()` does): its
   * handler's return value is the reply. Requests never go to subscriptions
   * without it.
   */
  reply?: boolean;
  /** Aborting it unsubscribes (before the dispatcher confirmed: subscribe rejects with ABORTED). */
  signal?: AbortSignal;
  /**
   * `pushback`: when this node falls behind reading, the dispatcher holds
   * back the publishers of this subscription's messages instead of cutting
   * the node off (see the node option `slowConsumer`, which sets it for every
   * subscription). Default: the node's policy.
   */
  slowConsumer?: SlowConsumerPolicy;
}

/** Emitted (`overflow` event) each time a subscription's queue overflows. */
export interface OverflowEvent {
  subscription: string;
  policy: OverflowPolicy;
  /** Messages dropped by this overflow (0 for `block`). */
  dropped: number;
}

/**
 * The message an `@on` method is called with: with `type:`, that type's
 * messages (a method taking something else does not compile); else anything.
 */
export type OnMessage<O> = O extends { type: infer T extends MessageType } ? MessageOf<T> : never;

interface DeclaredHandler {
  uri: string;
  method: string | symbol;
  options: SubscribeOptions;
}

const declared = new WeakMap<object, DeclaredHandler[]>();

/**
 * Declares a method as the handler of an event URI, like the original's
 * `@catch('event')`. The node subscribes to it when it starts.
 *
 * ```ts
 * class Billing extends Node {
 *   @on('orders.created') charge(order: Order) { ... }
 * }
 * ```
 */
export function on<O extends SubscribeOptions = SubscribeOptions>(uri: string, options: O = {} as O) {
  return <This extends object>(
    _method: (this: This, message: OnMessage<O>, info: EventInfo) => unknown,
    context: ClassMethodDecoratorContext<This>,
  ): void => {
    if (!isStandardContext(context)) throw legacyDecoratorError(uri);
    context.addInitializer(function (this: This) {
      let list = declared.get(this);
      if (list === undefined) {
        list = [];
        declared.set(this, list);
      }
      list.push({ uri, method: context.name, options });
    });
  };
}

/**
 * Under TypeScript's `experimentalDecorators` a method decorator is called
 * with (prototype, name, descriptor) instead of (method, context), and there
 * is no initializer to register the handler with: said at class definition,
 * not as a TypeError from deep inside.
 */
function isStandardContext(context: unknown): boolean {
  return (
    typeof context === 'object' &&
    context !== null &&
    (context as { kind?: unknown }).kind === 'method' &&
    typeof (context as { addInitializer?: unknown }).addInitializer === 'function'
  );
}

function legacyDecoratorError(uri: string): NodesetError {
  return new NodesetError(
    'BAD_OPTION',
    `@on('${uri}') needs standard (TC39) decorators, but was called as a legacy decorator: ` +
      'remove "experimentalDecorators" from tsconfig.json (TypeScript 5.0 or newer), ' +
      'or subscribe in code instead: node.subscribe(uri, handler)',
  );
}

/** The handlers declared with `@on` on an object's class. */
export function declaredHandlers(target: object): readonly DeclaredHandler[] {
  return declared.get(target) ?? [];
}
