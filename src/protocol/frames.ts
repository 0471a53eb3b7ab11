/**
 * The wire protocol: frame kinds, flags, header shapes, and the frame
 * writers (every one checks its bounds). docs/protocol.md is the reference.
 */
import { Packr } from 'msgpackr';
import { NodesetError, type WireError } from './errors.js';
import type { MessageHeaders } from './headers.js';

/**
 * Frame layout (all integers big-endian):
 *
 *   u32  length   bytes that follow this field (kind + header length + header + payload)
 *   u8   kind     FrameKind
 *   u16  hlen     header length in bytes (0: no header)
 *   ...  header   MessagePack value (map, or array for PUB and MSG)
 *   ...  payload  opaque bytes, forwarded untouched by the dispatcher
 *
 * docs/protocol.md is the reference for every frame.
 */
export const PROTOCOL_VERSION = 1;
export const FRAME_PREFIX_BYTES = 4;
/** kind (1) + header length (2). */
export const FRAME_FIXED_BYTES = 3;
export const MAX_HEADER_BYTES = 0xffff;
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;
/** The largest payload the length field can describe, whatever the configured limits. */
export const MAX_FRAME_PAYLOAD_BYTES = 0xffffffff - FRAME_FIXED_BYTES - MAX_HEADER_BYTES;

export const FrameKind = {
  HELLO: 1,
  WELCOME: 2,
  SUB: 3,
  UNSUB: 4,
  PUB: 5,
  MSG: 6,
  REPLY: 7,
  OK: 8,
  ERROR: 9,
  PING: 10,
  PONG: 11,
  QUERY: 12,
  GOODBYE: 13,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Payload content types: how a node encodes the payload bytes. */
export const ContentType = {
  JSON: 0,
  BINARY: 1,
  EMPTY: 2,
} as const;
export type ContentType = (typeof ContentType)[keyof typeof ContentType];

/** PUB flag bits. */
export const PubFlag = {
  /** Deliver to exactly one subscriber, round-robin. */
  DIRECT: 1,
  /** The publisher wants an OK with the delivered count (correlated by id). */
  ACK: 2,
  /** A request: one subscriber is chosen and its REPLY goes back to the publisher. */
  REQUEST: 4,
  /**
   * The publishing connection has already delivered the message to its own
   * ungrouped subscriptions (a node collection's local delivery): skip them.
   */
  LOCAL_DONE: 8,
  /**
   * Not a message: the publisher says the last sequence number it used on
   * this URI (the PUB's seq; empty payload). Routed like an `all`-mode
   * publish to this host's ungrouped subscriptions, as a MSG marked
   * `direct` = 2; never given to handlers. Other flags are ignored with it.
   */
  ANNOUNCE: 16,
} as const;

/** MSG `direct` element values. */
export const MsgMode = {
  ALL: 0,
  /** Routed to exactly one subscriber (`direct`, a request). */
  SINGLE: 1,
  /** A publisher's announce of its last sequence number (PubFlag.ANNOUNCE). */
  ANNOUNCE: 2,
} as const;

/** Delivery modes chosen by the publisher. */
export type DeliveryMode = 'all' | 'direct';

/** The PUB flags of a delivery mode (undefined: `all`); BAD_OPTION for anything else. */
export function deliveryFlags(mode: unknown): number {
  if (mode === undefined || mode === 'all') return 0;
  if (mode === 'direct') return PubFlag.DIRECT;
  throw new NodesetError('BAD_OPTION', `mode must be 'all' or 'direct', got ${JSON.stringify(mode)}`);
}

export interface HelloHeader {
  v: number;
  name: string;
  host?: string;
  /** Authentication token. */
  token?: string | null;
  /** Last will: published by the dispatcher if this node disappears without a graceful stop. */
  will?: { uri: string; ct: number; payload: Uint8Array };
  /** Slow-consumer policy for this connection: `cut` (the default) or `pushback`. */
  slow?: SlowConsumerPolicy;
  /**
   * The resume token of this node's previous connection to the same
   * dispatcher process (WELCOME `resume`): its stream id carries over.
   */
  resume?: string;
}

/** What the dispatcher does with a connection that falls behind reading: cut it off, or hold its publishers back. */
export type SlowConsumerPolicy = 'cut' | 'pushback';

export interface WelcomeHeader {
  v: number;
  /** The dispatcher's host name. */
  host: string;
  /** Connection id assigned by the dispatcher. */
  id: number;
  /** Heartbeat interval in milliseconds. */
  hb: number;
  maxPayload: number;
  /**
   * A token to present in the next HELLO (`resume`) after a reconnect to
   * this dispatcher process, so the connection keeps its stream id.
   */
  resume?: string;
}

export interface SubHeader {
  sid: number;
  uri: string;
  group?: string | null;
  r?: number;
  /** Names of the nodes holding this subscription (a node collection); default: the connection's name. */
  nodes?: string[];
  /** Address (`host:port`) where the subscriber accepts direct streams (StreamNode). */
  stream?: string;
  /** This subscription answers requests; requests go only to such subscriptions. */
  reply?: boolean;
  /** `pushback`: when the connection falls behind, deliveries to this subscription hold their publisher. */
  slow?: 'pushback';
}

export interface UnsubHeader {
  sid: number;
  r?: number;
}

/**
 * PUB header: [uri, flags, correlation id (0 = none), content type], then
 * optionally sender (nil: the connection's name), seq and headers (a map, or nil).
 */
export type PubHeader = [
  uri: string,
  flags: number,
  r: number,
  ct: number,
  sender?: string | null,
  seq?: number,
  headers?: MessageHeaders | null,
];

/**
 * MSG header: [sid, uri, from, ct, conn, replyId, direct, seq], then
 * optionally headers (a map, or nil) and the origin host.
 * replyId is 0 unless the message is a request; conn is, for a request, the
 * requesting connection, and otherwise the publishing connection's stream
 * id (assigned by the dispatcher; 0: none); direct is 1 when the message was
 * routed to exactly one subscriber (`direct` mode or request), 2 for an
 * announce (PubFlag.ANNOUNCE); seq is the publisher's sequence number for
 * this URI (0: none). A message without headers from this host has exactly
 * the 8 elements.
 */
export type MsgHeader = [
  sid: number,
  uri: string,
  from: string,
  ct: number,
  conn: number,
  replyId: number,
  direct: number,
  seq: number,
  headers?: MessageHeaders | null,
  host?: string,
];

/** A MSG header, decoded. */
export interface MsgFields {
  sid: number;
  uri: string;
  /** The publishing node's name. */
  from: string;
  ct: number;
  /** For a request: where its reply goes (0 otherwise). */
  replyConn: number;
  /** For a request: its id at the dispatcher (never 0); 0 otherwise. */
  replyId: number;
  /** Not a request: the publishing connection's stream id (sequence numbers run per from, stream and URI); 0: none. */
  stream: number;
  /** Routed to exactly one subscriber (`direct`, a request). */
  single: boolean;
  /** A publisher's announce of its last sequence number `seq`: for gap detection only, never for handlers. */
  announce: boolean;
  /** The publisher's sequence number for this URI (0: none). */
  seq: number;
  /** The message's headers (null: none). */
  headers: MessageHeaders | null;
  /** The host the message was published on, when it came from another host (federation); null otherwise. */
  host: string | null;
}

export type { WireError } from './errors.js';

export interface ReplyHeader {
  /** Correlation id: the requester's id (dispatcher → requester) or the request id (responder → dispatcher). */
  r: number;
  /** Requesting connection id (responder → dispatcher only). */
  to?: number;
  ct: number;
  err?: WireError;
}

export interface OkHeader {
  r: number;
  /** Number of subscribers delivered to (publish acks). */
  n?: number;
  /** Publish acks: copies lost to subscribers cut off or closing (absent when none). */
  dropped?: number;
  /** A QUERY answered in pages: the offset to ask for the next one. */
  next?: number;
  /** A SUB's member names the identity may not use, left out of the subscription. */
  refused?: string[];
}

export interface ErrorHeader extends WireError {
  r?: number;
  /** True when the dispatcher closes the connection after this error. */
  fatal?: boolean;
}

export type QueryWhat = 'stats' | 'nodes' | 'subscribers';

export interface QueryHeader {
  r: number;
  what: QueryWhat;
  uri?: string;
  /** Offset of the first list item wanted (paged answers). */
  from?: number;
}

/** One entry of the answer to QUERY `subscribers`. */
export interface SubscriberInfo {
  /** The connection's node name (for a collection: the collection's). */
  node: string;
  /** Names of the nodes behind the subscription. */
  nodes: string[];
  host: string;
  uri: string;
  group: string | null;
  /** Direct-stream address (StreamNode), when the subscriber accepts streams. */
  stream: string | null;
}

export interface GoodbyeHeader {
  reason: string;
}

// MessagePack options: plain maps as objects, no record extension, so
// headers are readable by any MessagePack implementation.
export const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

export function packHeader(header: unknown): Buffer {
  return packr.pack(header);
}

export function unpackHeader(bytes: Uint8Array): unknown {
  return packr.unpack(bytes);
}

/**
 * Bytes a frame with this header and payload occupies on the wire. Every
 * frame writer asks this first: a header past MAX_HEADER_BYTES (or a frame
 * past what the length field holds) is refused with TOO_LARGE.
 */
export function frameSize(headerBytes: number, payloadBytes: number): number {
  if (headerBytes > MAX_HEADER_BYTES) {
    throw new NodesetError('TOO_LARGE', `frame header is ${headerBytes} bytes, over ${MAX_HEADER_BYTES}`);
  }
  if (payloadBytes > MAX_FRAME_PAYLOAD_BYTES) {
    throw new NodesetError('TOO_LARGE', `frame payload is ${payloadBytes} bytes, over ${MAX_FRAME_PAYLOAD_BYTES}`);
  }
  return FRAME_PREFIX_BYTES + FRAME_FIXED_BYTES + headerBytes + payloadBytes;
}

/** Writes one frame into `target` at `offset`; returns the offset after it. */
export function writeFrame(
  target: Buffer,
  offset: number,
  kind: number,
  header: Uint8Array | null,
  payload: Uint8Array | null,
): number {
  const hlen = header === null ? 0 : header.length;
  const plen = payload === null ? 0 : payload.length;
  target.writeUInt32BE(FRAME_FIXED_BYTES + hlen + plen, offset);
  target[offset + 4] = kind;
  target.writeUInt16BE(hlen, offset + 5);
  let at = offset + 7;
  if (header !== null) {
    target.set(header, at);
    at += hlen;
  }
  if (payload !== null) {
    target.set(payload, at);
    at += plen;
  }
  return at;
}

/** Whole PING and PONG frames (they carry nothing), shared by every connection. */
export const PING_FRAME = encodeFrameBytes(FrameKind.PING);
export const PONG_FRAME = encodeFrameBytes(FrameKind.PONG);

function encodeFrameBytes(kind: number): Buffer {
  const out = Buffer.alloc(frameSize(0, 0));
  writeFrame(out, 0, kind, null, null);
  return out;
}

/** Encodes one whole frame into a new buffer (control frames, tests, tools). */
export function encodeFrame(kind: number, header: unknown = null, payload: Uint8Array | null = null): Buffer {
  const headerBytes = header === null ? null : packHeader(header);
  const out = Buffer.allocUnsafe(frameSize(headerBytes?.length ?? 0, payload?.length ?? 0));
  writeFrame(out, 0, kind, headerBytes, payload);
  return out;
}

/**
 * MSG frames are built once per publish and sent to many subscriptions that
 * differ only in their sid. The sid, the header's first element, is always
 * encoded as a MessagePack uint32, so the dispatcher packs the array marker
 * and the other elements once (the "tail") and patches the sid in per
 * delivery. Without headers or origin host the last element, the publisher's
 * sequence number, is also a fixed-width uint32, so a cached tail is reused
 * by patching it (setSeq); a tail with headers is packed for its message.
 */
const MSG_SID_BYTES = 5; // uint32 marker + 4 sid bytes
/** Packs as a 5-byte MessagePack uint32, whatever the value patched in later. */
const SEQ_PLACEHOLDER = 0xffffffff;

/**
 * `conn`: the requesting connection for a request, else the publisher's
 * stream id; `direct`: true (or MsgMode.SINGLE) for a single delivery,
 * MsgMode.ANNOUNCE for an announce.
 */
export function packMsgTail(
  uri: string,
  from: string,
  ct: number,
  conn: number,
  replyId: number,
  direct: boolean | number,
  seq = 0,
  headers: MessageHeaders | null = null,
  host: string | null = null,
): Buffer {
  const mode = typeof direct === 'number' ? direct : direct ? MsgMode.SINGLE : MsgMode.ALL;
  let tail: Buffer;
  if (headers === null && host === null) {
    tail = setSeq(packr.pack([uri, from, ct, conn, replyId, mode, SEQ_PLACEHOLDER]), seq);
  } else if (host === null) {
    tail = packr.pack([uri, from, ct, conn, replyId, mode, seq, headers]);
  } else {
    tail = packr.pack([uri, from, ct, conn, replyId, mode, seq, headers, host]);
  }
  // The array of the elements after the sid: one more element (the sid) in its fixarray marker.
  (tail[0] as number)++;
  return tail;
}

/**
 * The MSG tail of a publish from another host, with the sequence number in
 * a fixed-width slot at `seqAt` (setSeqAt), so one tail serves a stream of
 * publishes: [uri, from, ct, stream, 0, mode, seq, nil, host].
 */
export function packOriginMsgTail(
  uri: string,
  from: string,
  ct: number,
  stream: number,
  single: boolean,
  host: string,
): { tail: Buffer; seqAt: number } {
  const mode = single ? MsgMode.SINGLE : MsgMode.ALL;
  const tail = packr.pack([uri, from, ct, stream, 0, mode, SEQ_PLACEHOLDER, null, host]);
  (tail[0] as number)++;
  // The slot's 4 value bytes come before the nil and the packed host.
  return { tail, seqAt: tail.length - packr.pack(host).length - 1 - 4 };
}

/** Writes a sequence number into the 4 bytes at `at` of a packed MSG tail. */
export function setSeqAt<B extends Buffer>(packed: B, at: number, seq: number): B {
  packed[at] = seq >>> 24;
  packed[at + 1] = seq >>> 16;
  packed[at + 2] = seq >>> 8;
  packed[at + 3] = seq;
  return packed;
}

/** Writes a sequence number into the last 4 bytes of a packed MSG tail or PUB header. */
export function setSeq<B extends Buffer>(packed: B, seq: number): B {
  const at = packed.length - 4;
  packed[at] = seq >>> 24;
  packed[at + 1] = seq >>> 16;
  packed[at + 2] = seq >>> 8;
  packed[at + 3] = seq;
  return packed;
}

/**
 * A PUB header: [uri, flags, r, ct, sender|nil, seq] with a fixed-width seq
 * slot (setSeq), or with headers [uri, flags, r, ct, sender|nil, seq, headers].
 */
export function packPubHeader(
  uri: string,
  flags: number,
  r: number,
  ct: number,
  sender: string | null,
  seq: number,
  headers: MessageHeaders | null = null,
): Buffer {
  if (headers !== null) return packHeader([uri, flags, r, ct, sender, seq, headers]);
  return setSeq(packHeader([uri, flags, r, ct, sender, SEQ_PLACEHOLDER]), seq);
}

/** A plain publish's header (no correlation id) in HeaderCache's argument order; mode: the PUB flags. */
export function packPlainPubHeader(uri: string, sender: string | null, ct: number, flags: number): Buffer {
  return packPubHeader(uri, flags, 0, ct, sender, 0);
}

export function msgFrameSize(tail: Uint8Array, payloadBytes: number): number {
  return frameSize(MSG_SID_BYTES + tail.length, payloadBytes);
}

export function writeMsgFrame(
  target: Buffer,
  offset: number,
  sid: number,
  tail: Uint8Array,
  payload: Uint8Array,
): number {
  const at = writeMsgHead(target, offset, sid, tail, payload.length);
  target.set(payload, at);
  return at + payload.length;
}

/**
 * Writes a MSG frame's bytes up to its payload (the payload, `payloadBytes`
 * long, is written after them by the caller, or sent from its own memory);
 * returns the offset after them.
 */
export function writeMsgHead(
  target: Buffer,
  offset: number,
  sid: number,
  tail: Uint8Array,
  payloadBytes: number,
): number {
  // Byte by byte: cheaper than the Buffer write helpers on this path.
  const hlen = MSG_SID_BYTES + tail.length;
  const len = FRAME_FIXED_BYTES + hlen + payloadBytes;
  target[offset] = len >>> 24;
  target[offset + 1] = len >>> 16;
  target[offset + 2] = len >>> 8;
  target[offset + 3] = len;
  target[offset + 4] = FrameKind.MSG;
  target[offset + 5] = hlen >>> 8;
  target[offset + 6] = hlen;
  // The tail's array marker lands at offset + 12 and is copied to offset + 7; the sid's last byte then covers it.
  target.set(tail, offset + 12);
  target[offset + 7] = tail[0] as number;
  target[offset + 8] = 0xce; // uint32
  target[offset + 9] = sid >>> 24;
  target[offset + 10] = sid >>> 16;
  target[offset + 11] = sid >>> 8;
  target[offset + 12] = sid;
  return offset + 12 + tail.length;
}

/** Reserved events. Nodes publish their metrics on STATS_EVENT; the dispatcher keeps the latest per node. */
export const STATS_EVENT = '$nodeset.stats';
/** Published by the dispatcher when a node has connected. */
export const PRESENCE_JOINED = '$nodeset.node.joined';
/** Published by the dispatcher when a node has gone, with the reason. */
export const PRESENCE_LEFT = '$nodeset.node.left';
