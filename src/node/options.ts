/**
 * Node-side defaults and limits, in one place: Node, NodeCollection and the
 * dispatcher link read them from here.
 */

/** Largest last will payload, in bytes: it travels in the HELLO header with the node's name and token. */
export const MAX_WILL_BYTES = 32 * 1024;
