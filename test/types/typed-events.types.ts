// Type tests of types that flow (checked by `npm run typecheck`, never run):
// `type:` options, the typed event map of node.typed<E>(), typed QUERY
// answers, Subscription objects and AbortSignal options.
import { expectTypeOf } from 'expect-type';
import {
  type ConnectedNodeInfo,
  type Delivered,
  type DispatcherStatsAnswer,
  defineMessage,
  type EventInfo,
  type MessageOf,
  Node,
  NodeCollection,
  type NodeInfo,
  on,
  type StatsSnapshot,
  type SubscriberInfo,
  type Subscription,
  type SubscriptionStats,
  z,
} from 'nodeset';

declare const node: Node;
const Order = defineMessage('Order', { id: z.string(), qty: z.number().default(1) });
type Order = MessageOf<typeof Order>;

// ---- `type:` options --------------------------------------------------------
// subscribe and respond infer the handler's message from the type.
void node.subscribe(
  'orders.created',
  (order) => {
    expectTypeOf(order).toEqualTypeOf<Order>();
  },
  { type: Order },
);
void node.respond(
  'orders.price',
  (order) => {
    expectTypeOf(order).toEqualTypeOf<Order>();
    return order.qty * 10;
  },
  { type: Order },
);
expectTypeOf(node.subscribe('orders.created', undefined, { type: Order })).resolves.toEqualTypeOf<
  Subscription<Order>
>();
// Without a type, the message stays unknown.
void node.subscribe('orders.created', (message) => {
  expectTypeOf(message).toEqualTypeOf<unknown>();
});
// An explicit type argument still names the message, as before.
void node.subscribe<Order>('orders.created', (order) => {
  expectTypeOf(order).toEqualTypeOf<Order>();
});

// publish checks the message against the type's input (defaults may be left out).
node.publish('orders.created', { id: 'A1' }, { type: Order });
expectTypeOf(node.publish('orders.created', { id: 'A1', qty: 2 }, { type: Order, ack: true })).toEqualTypeOf<
  Promise<number>
>();
// @ts-expect-error: id is a string
node.publish('orders.created', { id: 42 }, { type: Order });
// @ts-expect-error: id is missing
node.publish('orders.created', { qty: 1 }, { type: Order, ack: true });
// @ts-expect-error: a field of the wrong type, acked
void node.publish('orders.created', { id: 'A1', qty: 'two' }, { type: Order, ack: true, timeoutMs: 100 });
// Untyped publishes take anything, as before.
node.publish('orders.created', { id: 42 });

// request: the request checked by `type`, the reply typed by `replyType` (checked at run time).
const Price = defineMessage('Price', { total: z.number() });
expectTypeOf(node.request('orders.price', { id: 'A1' }, { type: Order, replyType: Price })).toEqualTypeOf<
  Promise<MessageOf<typeof Price>>
>();
// @ts-expect-error: the request does not fit its type
void node.request('orders.price', { id: 1 }, { type: Order });
// The type parameter is kept.
expectTypeOf(node.request<number>('orders.price', { id: 'A1' })).toEqualTypeOf<Promise<number>>();

// @on with a type: the method must take that type's messages.
class Shop extends Node {
  @on('orders.created', { type: Order })
  take(order: Order, _info: EventInfo): void {
    expectTypeOf(order.qty).toEqualTypeOf<number>();
  }

  @on('orders.cancelled')
  cancel(_anything: { id: string }): void {}
}
void Shop;
class WrongShop extends Node {
  // @ts-expect-error: the method takes numbers, the type gives Orders
  @on('orders.created', { type: Order })
  take(_order: number): void {}
}
void WrongShop;

// ---- the typed event map ----------------------------------------------------
type Events = {
  'orders.created': Order;
  'math.add': { req: { a: number; b: number }; res: number };
};
const events = node.typed<Events>();

events.publish('orders.created', { id: 'A1', qty: 1 });
// @ts-expect-error: a message that does not fit the map
events.publish('orders.created', { id: 1, qty: 1 });
// @ts-expect-error: checked with ack too
void events.publish('orders.created', { id: 'A1' }, { ack: true });
void events.subscribe('orders.created', (order, info) => {
  expectTypeOf(order).toEqualTypeOf<Order>();
  expectTypeOf(info).toEqualTypeOf<EventInfo>();
});
expectTypeOf(events.request('math.add', { a: 1, b: 2 })).toEqualTypeOf<Promise<number>>();
// @ts-expect-error: the request of math.add has numbers
void events.request('math.add', { a: '1', b: 2 });
void events.respond('math.add', ({ a, b }) => a + b);
void events.respond('math.add', async ({ a, b }) => a + b);
// @ts-expect-error: the reply of math.add is a number
void events.respond('math.add', ({ a, b }) => `${a + b}`);
// Names outside the map stay allowed, untyped.
events.publish('audit.anything', { whatever: true });
void events.subscribe('orders.*', (message) => {
  expectTypeOf(message).toEqualTypeOf<unknown>();
});
expectTypeOf(events.request('other.name')).toEqualTypeOf<Promise<unknown>>();
// It is the same node: its other members are the Node's.
expectTypeOf(events.stats).toEqualTypeOf<Node['stats']>();
new NodeCollection().add(node);

// ---- typed QUERY answers ----------------------------------------------------
expectTypeOf(node.stats()).resolves.toEqualTypeOf<DispatcherStatsAnswer>();
expectTypeOf(node.nodes()).resolves.toEqualTypeOf<ConnectedNodeInfo[]>();
expectTypeOf(node.subscribers('orders.created')).resolves.toEqualTypeOf<SubscriberInfo[]>();
// The dispatcher's own types fit what a node is told (they travel as MessagePack).
expectTypeOf<StatsSnapshot>().toEqualTypeOf<DispatcherStatsAnswer>();
expectTypeOf<NodeInfo>().toEqualTypeOf<ConnectedNodeInfo>();
// @ts-expect-error: no such counter
void node.stats().then((s) => s.nope);

// ---- Subscription objects -----------------------------------------------------
declare const sub: Subscription<Order>;
expectTypeOf(sub.unsubscribe()).toEqualTypeOf<Promise<void>>();
expectTypeOf(sub.drain({ signal: AbortSignal.timeout(10) })).toEqualTypeOf<Promise<void>>();
expectTypeOf(sub.stats).toEqualTypeOf<SubscriptionStats>();
expectTypeOf<SubscriptionStats>().toEqualTypeOf<{
  readonly received: number;
  readonly handled: number;
  readonly dropped: number;
  readonly queued: number;
}>();
expectTypeOf(sub[Symbol.asyncIterator]().next()).resolves.toEqualTypeOf<IteratorResult<Delivered<Order>>>();
async function iterate(): Promise<void> {
  for await (const { message, info } of sub) {
    expectTypeOf(message).toEqualTypeOf<Order>();
    expectTypeOf(info.uri).toEqualTypeOf<string>();
  }
  await using disposed = await node.subscribe('orders.created');
  expectTypeOf(disposed).toEqualTypeOf<Subscription<unknown>>();
}
void iterate;
// The old unsubscribe stays.
expectTypeOf(node.unsubscribe('orders.created', { group: 'g' })).toEqualTypeOf<Promise<void>>();

// ---- AbortSignal ----------------------------------------------------------------
const signal = new AbortController().signal;
expectTypeOf(node.start({ signal })).toEqualTypeOf<Promise<Node>>();
expectTypeOf(node.request('math.add', {}, { signal })).toEqualTypeOf<Promise<unknown>>();
expectTypeOf(node.publish('orders.created', {}, { ack: true, signal })).toEqualTypeOf<Promise<number>>();
expectTypeOf(node.subscribe('orders.created', () => {}, { signal })).resolves.toEqualTypeOf<Subscription<unknown>>();
expectTypeOf(node.drain({ signal })).toEqualTypeOf<Promise<void>>();
// @ts-expect-error: a signal is an AbortSignal
void node.request('math.add', {}, { signal: true });
