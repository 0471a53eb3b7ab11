/**
 * Hooks between Node and the classes that host nodes (NodeCollection). Not
 * part of the public API: the symbols are not exported from the entry module.
 */
export const CHANNEL_OWNER = Symbol('nodeset.channelOwner');
export const ATTACH_CHANNEL = Symbol('nodeset.attachChannel');
/** Tells a Subscription that its node removed it (or stopped): its iteration ends. */
export const SUBSCRIPTION_ENDED = Symbol('nodeset.subscriptionEnded');
