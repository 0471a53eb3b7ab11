/** Presence: what `$nodeset.node.joined` and `.left` say about a node. */
import type { NodePresence } from '../protocol/queries.js';
import type { Session } from './session.js';

export { PRESENCE_JOINED, PRESENCE_LEFT } from '../protocol/frames.js';

export type { NodePresence } from '../protocol/queries.js';

export function presenceOf(session: Session): NodePresence {
  return {
    id: session.id,
    name: session.name,
    host: session.host,
    address: session.address,
    connectedAt: new Date(session.connectedAt).toISOString(),
    subscriptions: [...session.subs.values()].map((s) => s.uri),
  };
}
