// Type tests of the public API, checked by `npm run typecheck` (never run):
// what the declarations promise callers, and what they must refuse
// (each `@ts-expect-error` fails the check if the line compiles).
import { expectTypeOf } from 'expect-type';
import {
  Dispatcher,
  defineMessage,
  type ErrorCode,
  type EventInfo,
  type MessageOf,
  Node,
  NodeCollection,
  type NodesetError,
  on,
  type PublishOptions,
  parseEventUri,
  type SubscribeOptions,
  type Subscription,
  z,
} from 'nodeset';
import {
  type BrowserClient,
  type BrowserClientStatus,
  type BrowserEvent,
  type ConnectOptions,
  connect,
} from 'nodeset/browser';

declare const node: Node;

// publish: no promise without ack, the delivered count with it.
expectTypeOf(node.publish('orders.new', { id: 1 })).toEqualTypeOf<void>();
expectTypeOf(node.publish('orders.new', { id: 1 }, { mode: 'direct' })).toEqualTypeOf<void>();
expectTypeOf(node.publish('orders.new', { id: 1 }, { ack: true })).toEqualTypeOf<Promise<number>>();
expectTypeOf<PublishOptions['mode']>().toEqualTypeOf<'all' | 'direct' | undefined>();
// @ts-expect-error: a delivery mode that does not exist
node.publish('orders.new', {}, { mode: 'broadcast' });
// @ts-expect-error: the acknowledgement is a boolean
node.publish('orders.new', {}, { ack: 'yes' });
// @ts-expect-error: the URI is a string
node.publish(42, {});

// request: the reply type is the caller's to name; unknown by default.
expectTypeOf(node.request('math.add', { a: 1 })).toEqualTypeOf<Promise<unknown>>();
expectTypeOf(node.request<number>('math.add', { a: 1 }, { timeoutMs: 100 })).toEqualTypeOf<Promise<number>>();
// @ts-expect-error: the timeout is in milliseconds, a number
node.request('math.add', {}, { timeoutMs: '1s' });

// subscribe: a handler gets the message and what it needs to know of the event.
expectTypeOf(node.subscribe('orders.>', (_message: unknown, info: EventInfo) => info.from)).toEqualTypeOf<
  Promise<Subscription<unknown>>
>();
expectTypeOf<EventInfo>().toHaveProperty('isRequest').toEqualTypeOf<boolean>();
expectTypeOf<SubscribeOptions['overflow']>().toEqualTypeOf<
  'drop-newest' | 'drop-oldest' | 'disconnect' | 'block' | undefined
>();
// @ts-expect-error: an overflow policy that does not exist
node.subscribe('orders.>', () => {}, { overflow: 'drop-all' });

// start resolves with the node itself, so a subclass keeps its type.
class Billing extends Node {
  @on('orders.created', { group: 'billing' })
  charge(order: { qty: number }) {
    return { charged: order.qty * 10 };
  }
}
expectTypeOf(new Billing().start()).toEqualTypeOf<Promise<Billing>>();
expectTypeOf(new Dispatcher({ port: 0 }).start()).toEqualTypeOf<Promise<Dispatcher>>();
expectTypeOf<Dispatcher['url']>().toEqualTypeOf<string>();
expectTypeOf(new NodeCollection().add(new Billing())).toEqualTypeOf<Billing>();
// @ts-expect-error: the port is a number
new Dispatcher({ port: '5333' });

// Messages: the declared type is what a handler and create() see.
const Order = defineMessage('Order', { id: z.string(), qty: z.number().default(1) });
type Order = MessageOf<typeof Order>;
expectTypeOf<Order>().toEqualTypeOf<{ id: string; qty: number }>();
expectTypeOf(Order.create({ id: 'A1' })).toEqualTypeOf<Order>();
// @ts-expect-error: id is required
Order.create({ qty: 2 });

// Errors carry a code from the catalogue.
expectTypeOf<NodesetError['code']>().toEqualTypeOf<ErrorCode>();
expectTypeOf<'BAD_OPTION'>().toExtend<ErrorCode>();
expectTypeOf<'NO_SUCH_CODE'>().not.toExtend<ErrorCode>();
expectTypeOf(parseEventUri('billing@web1/orders.new', false)).toHaveProperty('event').toEqualTypeOf<string>();

// The browser client.
expectTypeOf(connect).parameters.toEqualTypeOf<[url?: string, options?: ConnectOptions]>();
expectTypeOf(connect()).toEqualTypeOf<BrowserClient>();
declare const client: BrowserClient;
expectTypeOf(client.publish('orders.new', { id: 1 })).toEqualTypeOf<Promise<{ delivered: number }>>();
expectTypeOf(client.status).toEqualTypeOf<BrowserClientStatus>();
expectTypeOf<Parameters<BrowserClient['subscribe']>[1]>().parameter(1).toEqualTypeOf<BrowserEvent>();
// @ts-expect-error: a delivery mode that does not exist
client.publish('orders.new', {}, { mode: 'broadcast' });
// @ts-expect-error: status is read-only
client.status = 'open';
