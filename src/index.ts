/** The public API of nodeset. */
export { Dispatcher, type NodeInfo, type SubscriberInfo } from './dispatcher/dispatcher.js';
export { type DispatcherOptions, defaultDispatcherOptions } from './dispatcher/options.js';
export type { NodePresence } from './dispatcher/presence.js';
export type { LeaveReason } from './dispatcher/session.js';
export type { StatsSnapshot } from './dispatcher/stats.js';
export { MonitorServer, type StatsWithRates } from './monitor/monitor-server.js';
export type { BackoffOptions } from './node/backoff.js';
export { NodeCollection, type NodeCollectionOptions } from './node/collection.js';
export type { Welcome } from './node/dispatcher-link.js';
export {
  type EventInfo,
  type Handler,
  type OverflowEvent,
  type OverflowPolicy,
  on,
  type SubscribeOptions,
} from './node/handlers.js';
export { defineMessage, type MessageOf, type MessageType, z } from './node/message.js';
export { type CounterMetric, type GaugeMetric, type MetricKind, NodeMetrics } from './node/metrics.js';
export {
  type GapEvent,
  Node,
  type NodeEvents,
  type NodeOptions,
  type PublishOptions,
  type RequestOptions,
  type SlowConsumerEvent,
} from './node/node.js';
export { JSON_FORMAT, RAW_FORMAT, type StreamFormat } from './node/stream-format.js';
export {
  type IncomingStreamInfo,
  type OpenStreamOptions,
  OutgoingStream,
  type StreamHandler,
  StreamNode,
  type StreamNodeOptions,
  type StreamPeer,
} from './node/stream-node.js';
export {
  ERROR_CODES,
  type ErrorCode,
  NodesetError,
  SlowConsumerError,
  TimeoutError,
  ValidationError,
} from './protocol/errors.js';
export { type EventUri, formatEventUri, matchesPattern, parseEventUri } from './protocol/event-uri.js';
export {
  type DeliveryMode,
  PRESENCE_JOINED,
  PRESENCE_LEFT,
  PROTOCOL_VERSION,
  type SlowConsumerPolicy,
  STATS_EVENT,
} from './protocol/frames.js';
export { DEFAULT_DISPATCHER_URL, DEFAULT_PORT, parseDispatcherUrl } from './protocol/url.js';
export { KeyRing, type KeyRingOptions, type SignedRequest, signRequest } from './web/signatures.js';
export { WebBridge, type WebBridgeOptions } from './web/web-server.js';
