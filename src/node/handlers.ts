import type { MessageType } from './message.js';

/** What a handler learns about the event it is called for. */
export interface EventInfo {
  /** The URI the publisher used (`orders.new`, `host/orders.new`, `n@host/orders.new`). */
  readonly uri: string;
  /** The publishing node's name. */
  readonly from: string;
  /** The subscription URI that matched (may hold wildcards). */
  readonly subscription: string;
  /** True when the publisher waits for this handler's return value. */
  readonly isRequest: boolean;
}

/** A subscription handler: its return value answers a request. */
export type Handler<M = unknown> = (message: M, info: EventInfo) => unknown;

export interface SubscribeOptions {
  /** Queue group: members of a group share each message, one of them per message. */
  group?: string;
  /** Message type: received messages are checked against it (VALIDATION on mismatch). */
  type?: MessageType;
}

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
export function on(uri: string, options: SubscribeOptions = {}) {
  return <This extends object, M>(
    _method: (this: This, message: M, info: EventInfo) => unknown,
    context: ClassMethodDecoratorContext<This>,
  ): void => {
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

/** The handlers declared with `@on` on an object's class. */
export function declaredHandlers(target: object): readonly DeclaredHandler[] {
  return declared.get(target) ?? [];
}
