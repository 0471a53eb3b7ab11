/** The public API of nodeset. */
export { Dispatcher, type NodeInfo, type SubscriberInfo } from './dispatcher/dispatcher.js';
export type { Answer, Arrival, Envelope, Federation, FederationHost } from './dispatcher/federation.js';
export {
  type DispatcherOptions,
  defaultDispatcherOptions,
  type ResolvedDispatcherOptions,
} from './dispatcher/options.js';
export type { LeaveReason } from './dispatcher/peer.js';
export type { NodePresence } from './dispatcher/presence.js';
export type { DispatcherStats, EventCount, StatsSnapshot } from './dispatcher/stats.js';
export type { MonitorCounts } from './monitor/metrics.js';
export {
  type EventRate,
  type MonitorOptions,
  MonitorServer,
  type QueueGroupInfo,
  type QueueGroups,
  type StatsWithRates,
} from './monitor/monitor-server.js';
export type { BackoffOptions } from './node/backoff.js';
export { NodeCollection } from './node/collection.js';
export type { Welcome } from './node/dispatcher-link.js';
export {
  type EventInfo,
  type Handler,
  type OnMessage,
  type OverflowEvent,
  type OverflowPolicy,
  on,
  type SubscribeOptions,
} from './node/handlers.js';
export { defineMessage, type MessageOf, type MessageType, z } from './node/message.js';
export { type CounterMetric, type GaugeMetric, type MetricKind, NodeMetrics } from './node/metrics.js';
export {
  type DrainOptions,
  type GapEvent,
  Node,
  type NodeEvents,
  type PublishDroppedEvent,
  type PublishOptions,
  type RequestOptions,
  type SlowConsumerEvent,
  type StartOptions,
  type TypedMethods,
  type TypedNode,
} from './node/node.js';
export type { ConnectionOptions, NodeCollectionOptions, NodeOptions } from './node/options.js';
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
export { type Delivered, Subscription, type SubscriptionStats } from './node/subscription.js';
export type {
  ConnectedNodeInfo,
  DispatcherStatsAnswer,
  EventMap,
  HandlerMessage,
  IsWide,
  MessageFor,
  MessageInput,
  Nothing,
  PublishResult,
  ReceivedMessage,
  ReplyFor,
  ReplyMessage,
  RequestReply,
  Responder,
  SentMessage,
  TypeOption,
  UntypedEvents,
} from './node/typed.js';
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
  type QueryWhat,
  type SlowConsumerPolicy,
  STATS_EVENT,
} from './protocol/frames.js';
export { MAX_HEADER_ENTRIES, MAX_HEADERS_BYTES, type MessageHeaders } from './protocol/headers.js';
export { DEFAULT_DISPATCHER_URL, DEFAULT_PORT, type DispatcherAddress, parseDispatcherUrl } from './protocol/url.js';
export type { AuthConfig, Identity } from './security/auth-config.js';
export type { Rules } from './security/permissions.js';
export type { TlsClientOptions, TlsServerOptions } from './transport/tcp.js';
export { KeyRing, type KeyRingOptions, type SignedRequest, signRequest } from './web/signatures.js';
export { WebBridge, type WebBridgeOptions } from './web/web-server.js';
