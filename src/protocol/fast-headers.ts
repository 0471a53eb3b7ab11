/**
 * Fast paths for the two headers decoded once per message: PUB at the
 * dispatcher and MSG at the node. They read MessagePack in place, without
 * views or intermediate objects, and intern short strings, so an event URI
 * seen before costs neither a UTF-8 decode nor a new string (and its hash,
 * cached on the string, is reused by every map lookup keyed on it). Anything
 * they do not recognise makes them decline, and the caller falls back to the
 * general MessagePack decoder, which then validates or refuses it.
 */
import { isUint } from './decoder.js';
import { NodesetError } from './errors.js';
import type { MsgFields } from './frames.js';
import { checkHeaders, type MessageHeaders } from './headers.js';

/** A PUB header, [uri, flags, r, ct] with optional sender (nil: the connection's name), seq and headers. */
export interface PubFields {
  uri: string;
  flags: number;
  r: number;
  ct: number;
  sender: string | null;
  seq: number;
  headers: MessageHeaders | null;
}

export function pubFields(): PubFields {
  return { uri: '', flags: 0, r: 0, ct: 0, sender: null, seq: 0, headers: null };
}

const FAIL = -1;
/** Offset after the last value read by uintAt/strAt. */
let next = 0;

/** A MessagePack unsigned integer (up to 32 bits) at `at`, or FAIL for any other type. */
function uintAt(b: Uint8Array, at: number, end: number): number {
  if (at >= end) return FAIL;
  const t = b[at] as number;
  if (t < 0x80) {
    next = at + 1;
    return t;
  }
  if (t === 0xcc && at + 2 <= end) {
    next = at + 2;
    return b[at + 1] as number;
  }
  if (t === 0xcd && at + 3 <= end) {
    next = at + 3;
    return ((b[at + 1] as number) << 8) | (b[at + 2] as number);
  }
  if (t === 0xce && at + 5 <= end) {
    next = at + 5;
    return (
      (b[at + 1] as number) * 0x1000000 +
      (((b[at + 2] as number) << 16) | ((b[at + 3] as number) << 8) | (b[at + 4] as number))
    );
  }
  return FAIL;
}

/**
 * Strings cached by their bytes, one per slot; a slot holds strings up to
 * `maxBytes` long, and storing into it replaces what it held.
 */
class StringSlots {
  readonly maxBytes: number;
  readonly #bytes: Uint8Array;
  readonly #length: Int32Array;
  readonly #strings: string[];

  constructor(slots: number, maxBytes: number) {
    this.maxBytes = maxBytes;
    this.#bytes = new Uint8Array(slots * maxBytes);
    this.#length = new Int32Array(slots).fill(-1);
    this.#strings = new Array<string>(slots).fill('');
  }

  /** The string in `slot` when it was stored from exactly b[start, start+len). */
  get(slot: number, b: Uint8Array, start: number, len: number): string | undefined {
    if (this.#length[slot] !== len) return undefined;
    const base = slot * this.maxBytes;
    const bytes = this.#bytes;
    for (let i = 0; i < len; i++) if (bytes[base + i] !== b[start + i]) return undefined;
    return this.#strings[slot];
  }

  set(slot: number, b: Uint8Array, start: number, len: number, str: string): void {
    const base = slot * this.maxBytes;
    for (let i = 0; i < len; i++) this.#bytes[base + i] = b[start + i] as number;
    this.#length[slot] = len;
    this.#strings[slot] = str;
  }
}

/**
 * Memo slots, compared before interning: a subscription usually receives one
 * URI from one sender, and a connection publishes to one URI, so this costs
 * one byte comparison instead of hashing. Two slots (URI, sender) for each of
 * 256 sid classes of MSG headers, then one URI for each of 256 connection
 * classes of PUB headers.
 */
const MSG_MEMO_SLOTS = 512;
const PUB_MEMO_SLOTS = 256;
const memo = new StringSlots(MSG_MEMO_SLOTS + PUB_MEMO_SLOTS, 31);

/** A MessagePack string at `at`, or null for any other type; `memoSlot`: the memo slot to try first (-1: none). */
function strAt(b: Buffer, at: number, end: number, memoSlot = -1): string | null {
  if (at >= end) return null;
  const t = b[at] as number;
  let len: number;
  let start: number;
  if (t >= 0xa0 && t <= 0xbf) {
    len = t & 0x1f;
    start = at + 1;
  } else if (t === 0xd9 && at + 2 <= end) {
    len = b[at + 1] as number;
    start = at + 2;
  } else if (t === 0xda && at + 3 <= end) {
    len = ((b[at + 1] as number) << 8) | (b[at + 2] as number);
    start = at + 3;
  } else {
    return null;
  }
  if (start + len > end) return null;
  next = start + len;
  if (memoSlot < 0 || len > memo.maxBytes) return internUtf8(b, start, len);
  let str = memo.get(memoSlot, b, start, len);
  if (str === undefined) {
    str = internUtf8(b, start, len);
    memo.set(memoSlot, b, start, len, str);
  }
  return str;
}

const INTERN_SLOTS = 1024;
const interned = new StringSlots(INTERN_SLOTS, 64);

/**
 * The UTF-8 string in b[start, start+len). Strings up to 64 bytes go through
 * a direct-mapped cache keyed by their bytes (a collision just replaces the
 * slot), so the names a connection repeats are decoded once.
 */
export function internUtf8(b: Buffer, start: number, len: number): string {
  if (len > interned.maxBytes) return b.toString('utf8', start, start + len);
  let h = len;
  for (let i = 0; i < len; i++) h = (Math.imul(h, 31) + (b[start + i] as number)) | 0;
  const slot = (h ^ (h >>> 13)) & (INTERN_SLOTS - 1);
  let str = interned.get(slot, b, start, len);
  if (str === undefined) {
    str = b.toString('utf8', start, start + len);
    interned.set(slot, b, start, len, str);
  }
  return str;
}

/**
 * Reads the PUB header in b[start, end) into `out`: [uri, flags, r, ct],
 * [uri, flags, r, ct, sender] or [uri, flags, r, ct, sender|nil, seq].
 * False for anything else, headers included (pubFieldsOf reads those). `connection` (any number, e.g. the connection's
 * id) picks the memo slot its URI is compared with first.
 */
export function decodePubHeader(b: Buffer, start: number, end: number, out: PubFields, connection = 0): boolean {
  const head = b[start];
  if (head !== 0x94 && head !== 0x95 && head !== 0x96) return false;
  const uri = strAt(b, start + 1, end, MSG_MEMO_SLOTS + (connection & (PUB_MEMO_SLOTS - 1)));
  if (uri === null) return false;
  const flags = uintAt(b, next, end);
  if (flags === FAIL) return false;
  const r = uintAt(b, next, end);
  if (r === FAIL) return false;
  const ct = uintAt(b, next, end);
  if (ct === FAIL) return false;
  let sender: string | null = null;
  let seq = 0;
  if (head >= 0x95) {
    if (next < end && b[next] === 0xc0) {
      next++;
    } else {
      sender = strAt(b, next, end);
      if (sender === null) return false;
    }
  }
  if (head === 0x96) {
    seq = uintAt(b, next, end);
    if (seq === FAIL) return false;
  }
  if (next !== end) return false;
  out.uri = uri;
  out.flags = flags;
  out.r = r;
  out.ct = ct;
  out.sender = sender;
  out.seq = seq;
  out.headers = null;
  return true;
}

/**
 * The MSG header a node decodes for every message:
 * [uint sid, string uri, string from, uint ct, uint conn, uint replyId, uint direct, uint seq].
 * `conn` is the requesting connection of a request (replyId set), else the
 * publisher's stream id.
 * Null for anything else (a MSG with headers or an origin host: msgFieldsOf reads those).
 */
export function decodeMsgHeader(b: Buffer, start = 0, end = b.length): MsgFields | null {
  if (b[start] !== 0x98) return null;
  const sid = uintAt(b, start + 1, end);
  if (sid === FAIL) return null;
  const slot = (sid & 0xff) << 1;
  const uri = strAt(b, next, end, slot);
  if (uri === null) return null;
  const from = strAt(b, next, end, slot | 1);
  if (from === null) return null;
  const ct = uintAt(b, next, end);
  if (ct === FAIL) return null;
  const conn = uintAt(b, next, end);
  if (conn === FAIL) return null;
  const replyId = uintAt(b, next, end);
  if (replyId === FAIL) return null;
  const mode = uintAt(b, next, end);
  if (mode === FAIL) return null;
  const seq = uintAt(b, next, end);
  if (seq === FAIL || next !== end) return null;
  const request = replyId !== 0;
  return {
    sid,
    uri,
    from,
    ct,
    replyConn: request ? conn : 0,
    replyId,
    stream: request ? 0 : conn,
    single: mode === 1,
    announce: mode === 2,
    seq,
    headers: null,
    host: null,
  };
}

/** A MSG header the fast path declined, from its general decoding; throws BAD_FRAME when malformed. */
export function msgFieldsOf(h: unknown): MsgFields {
  if (
    !Array.isArray(h) ||
    h.length < 7 ||
    !isUint(h[0]) ||
    typeof h[1] !== 'string' ||
    typeof h[2] !== 'string' ||
    !isUint(h[3]) ||
    !isUint(h[4]) ||
    !isUint(h[5])
  ) {
    throw new NodesetError('BAD_FRAME', 'MSG header must be [sid, uri, from, ct, conn, replyId, direct, seq?]');
  }
  const seq = h.length > 7 && isUint(h[7]) ? h[7] : 0;
  const headers = h.length > 8 ? checkHeaders(h[8], 'BAD_FRAME') : null;
  if (h.length > 9 && typeof h[9] !== 'string') throw new NodesetError('BAD_FRAME', 'MSG origin host must be a string');
  const host = h.length > 9 ? (h[9] as string) : null;
  const request = h[5] !== 0;
  return {
    sid: h[0],
    uri: h[1],
    from: h[2],
    ct: h[3],
    replyConn: request ? h[4] : 0,
    replyId: h[5],
    stream: request ? 0 : h[4],
    single: h[6] === 1,
    announce: h[6] === 2,
    seq,
    headers,
    host,
  };
}

/** The correlation id of a decoded PUB header, when it has one, so that refusing it can still answer it. */
export function pubCorrelationId(h: unknown): number | undefined {
  return Array.isArray(h) && isUint(h[2]) && h[2] !== 0 ? h[2] : undefined;
}

/** A PUB header the fast path declined: validated from its general decoding into `out`. */
export function pubFieldsOf(h: unknown, out: PubFields): void {
  if (
    !Array.isArray(h) ||
    h.length < 4 ||
    typeof h[0] !== 'string' ||
    !isUint(h[1]) ||
    !isUint(h[2]) ||
    !isUint(h[3])
  ) {
    throw new NodesetError('BAD_FRAME', 'PUB header must be [uri, flags, id, contentType, sender?, seq?, headers?]');
  }
  if (h.length > 4 && h[4] !== null && typeof h[4] !== 'string') {
    throw new NodesetError('BAD_FRAME', 'PUB sender must be a node name');
  }
  if (h.length > 5 && !isUint(h[5])) throw new NodesetError('BAD_FRAME', 'PUB seq must be an unsigned integer');
  const headers = h.length > 6 ? checkHeaders(h[6], 'BAD_FRAME') : null;
  out.uri = h[0];
  out.flags = h[1];
  out.r = h[2];
  out.ct = h[3];
  out.sender = h.length > 4 ? (h[4] as string | null) : null;
  out.seq = h.length > 5 ? (h[5] as number) : 0;
  out.headers = headers;
}
