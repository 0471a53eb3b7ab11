// A publisher node, like the original's mnode_publish example.
// Run a dispatcher (npm start) and the subscriber example, then:
//   npx tsx examples/publisher.ts
import { Node } from 'nodeset';
import { Order } from './types.js';

const node = await new Node({ name: 'shop' }).start();

for (let i = 1; i <= 3; i++) {
  const delivered = await node.publish(
    'orders.created',
    { id: `A${i}`, item: 'teapot', qty: i },
    { type: Order, ack: true },
  );
  console.log(`orders.created A${i}: delivered to ${delivered} subscriber(s)`);
}
await node.publish('orders.cancelled', { id: 'A2' }, { ack: true });
await node.publish('shop.opened', { at: new Date().toISOString() }, { ack: true });
await node.stop();
