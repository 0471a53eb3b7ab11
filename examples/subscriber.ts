// A subscriber node with per-event handlers, like the original's example node.
// Run a dispatcher first (npm start), then: npx tsx examples/subscriber.ts
import { type EventInfo, Node, on } from 'nodeset';
import { Order } from './types.js';

class ShopMonitor extends Node {
  @on('orders.created', { type: Order })
  created(order: Order, info: EventInfo) {
    console.log(`order ${order.id}: ${order.qty} x ${order.item} (from ${info.from})`);
  }

  @on('orders.cancelled')
  cancelled(message: { id: string }) {
    console.log(`order ${message.id} cancelled`);
  }

  // Everything subscribed without a handler of its own lands here.
  override onEvent(event: string, message: unknown) {
    console.log(`${event}: ${JSON.stringify(message)}`);
    return undefined;
  }
}

const node = new ShopMonitor({ name: 'shop-monitor' });
await node.start();
await node.subscribe('shop.>'); // handled by onEvent
console.log('shop-monitor listening for orders.created, orders.cancelled and shop.>; Ctrl-C to stop');
process.once('SIGINT', () => void node.stop());
