import { defineMessage, type MessageOf, z } from 'nodeset';

/** An order, declared once: TypeScript type, runtime check and JSON Schema. */
export const Order = defineMessage('Order', {
  id: z.string(),
  item: z.string(),
  qty: z.number().int().positive().default(1),
  // Metadata: never sent on the wire.
  _receivedAt: z.number().optional(),
});
export type Order = MessageOf<typeof Order>;
