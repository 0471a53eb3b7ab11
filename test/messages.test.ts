import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import {
  type Dispatcher,
  defineMessage,
  ERROR_CODES,
  type MessageType,
  Node,
  on,
  type ValidationError,
  z,
} from '../src/index.js';
import { ROOT, startDispatcher, startNode, until } from './helpers.js';

const Order = defineMessage('Order', {
  id: z.string(),
  qty: z.number().int().default(1),
  tags: z.array(z.string()).default([]),
  _mode: z.enum(['all', 'direct']).default('all'),
});

describe('typed messages', () => {
  test('defaults are filled; the JSON form leaves out metadata fields', () => {
    const order = Order.create({ id: 'A1' });
    assert.deepEqual(order, { id: 'A1', qty: 1, tags: [], _mode: 'all' });
    assert.deepEqual(Order.toJSON({ ...order, _mode: 'direct' }), { id: 'A1', qty: 1, tags: [] });
    const back = Order.fromJSON(JSON.stringify(Order.toJSON(order)));
    assert.deepEqual(back, order);
  });

  test('a message that does not fit is refused with VALIDATION naming the field', () => {
    assert.throws(
      () => Order.parse({ id: 'A1', qty: 1.5 }),
      (err: ValidationError) => err.code === 'VALIDATION' && err.field === 'qty',
    );
    assert.throws(
      () => Order.parse({ qty: 1 }),
      (err: ValidationError) => err.field === 'id',
    );
    assert.throws(() => Order.fromJSON('{'), { code: 'VALIDATION' });
  });

  test('JSON Schema of the public fields', () => {
    const schema = Order.jsonSchema() as { title: string; properties: Record<string, unknown>; required: string[] };
    assert.equal(schema.title, 'Order');
    assert.deepEqual(Object.keys(schema.properties).sort(), ['id', 'qty', 'tags']);
    assert.deepEqual(schema.required, ['id']);
  });

  describe('over the wire', () => {
    let dispatcher: Dispatcher;
    const nodes: Node[] = [];
    before(async () => {
      dispatcher = await startDispatcher();
    });
    after(async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      await dispatcher.stop();
    });

    test('checked on publish and on receipt; metadata never travels', async () => {
      class Shop extends Node {
        orders: unknown[] = [];
        @on('orders.created', { type: Order, reply: true })
        created(order: z.output<typeof Order.schema>) {
          this.orders.push(order);
          return order.qty * 10;
        }
      }
      const shop = new Shop({ dispatcherUrl: dispatcher.url });
      nodes.push(await shop.start());
      const client = await startNode(dispatcher);
      nodes.push(client);
      // A message without its id: refused by the compiler, and at run time by the type.
      const missingId: unknown = { qty: 2 };
      assert.throws(() => client.publish('orders.created', missingId, { type: Order as MessageType }), {
        code: 'VALIDATION',
      });
      assert.equal(await client.request('orders.created', { id: 'B2', qty: 3, _mode: 'direct' }, { type: Order }), 30);
      assert.deepEqual(shop.orders, [{ id: 'B2', qty: 3, tags: [], _mode: 'all' }]);

      // An untyped publisher sending a bad message: the typed receiver refuses it.
      await assert.rejects(client.request('orders.created', { id: 7 }), (err: Error & { code: string }) => {
        assert.equal(err.code, 'VALIDATION');
        assert.match(err.message, /field id/);
        return true;
      });
      assert.equal(shop.orders.length, 1);

      const raw: unknown[] = [];
      await client.subscribe('orders.created', (m) => void raw.push(m));
      assert.equal(
        await client.publish('orders.created', { id: 'C3', _mode: 'direct' }, { type: Order, ack: true }),
        2,
      );
      await until(() => raw.length === 1 && shop.orders.length === 2);
      assert.deepEqual(raw[0], { id: 'C3', qty: 1, tags: [] }, 'no _ fields on the wire');
    });
  });
});

describe('error catalogue', () => {
  test('every error code is documented in docs/errors.md', () => {
    const doc = readFileSync(`${ROOT}docs/errors.md`, 'utf8');
    const documented = new Set([...doc.matchAll(/^\|\s*`([A-Z_]+)`\s*\|/gm)].map((m) => m[1]));
    for (const code of Object.keys(ERROR_CODES)) assert.ok(documented.has(code), `${code} is not documented`);
    for (const code of documented) assert.ok(code! in ERROR_CODES, `${code} is documented but does not exist`);
  });
});
