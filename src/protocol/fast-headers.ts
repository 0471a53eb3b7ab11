/**
 * Fast paths for the two headers decoded once per message: PUB at the
 * dispatcher and MSG at the node. They read MessagePack in place, without
 * views or intermediate objects, and intern short strings, so an event URI
 * seen before costs neither a UTF-8 decode nor a new string (and its hash,
 * cached on the string, is reused by every map lookup keyed on it). Anything
 * they do not recognise makes them decline, and the caller falls back to the
 * general MessagePack decoder, which then validates or refuses it.
 */

/** A PUB header, [uri, flags, r, ct] with optional sender (nil: the connection's name) and seq. */
export interface PubFields {
  uri: string;
  flags: number;
  r: number;
  ct: number;
  sender: string | null;
  seq: number;
}

export function pubFields(): PubFields {
  return { uri: '', flags: 0, r: 0, ct: 0, sender: null, seq: 0 };
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
 * The string at `at`, first compared with what the same slot held last time:
 * a subscription (slot: its sid) usually receives one URI from one sender, so
 * this costs one byte comparison instead of hashing for the interning cache.
 */
function memoStrAt(b: Buffer, at: number, end: number, slot: number): string | null {
  const t = b[at];
  if (t === undefined || t < 0xa0 || t > 0xbf || at >= end) return strAt(b, at, end);
  const len = t & 0x1f;
  const start = at + 1;
  if (start + len > end) return null;
  next = start + len;
  const base = slot * MEMO_MAX_BYTES;
  if (memoLength[slot] === len) {
    let i = 0;
    while (i < len && memoBytes[base + i] === b[start + i]) i++;
    if (i === len) return memoString[slot] as string;
  }
  const str = internUtf8(b, start, len);
  for (let i = 0; i < len; i++) memoBytes[base + i] = b[start + i] as number;
  memoLength[slot] = len;
  memoString[slot] = str;
  return str;
}

/**
 * Memo slots, for fixstr strings only (up to 31 bytes): two (URI, sender) for
 * each of 256 sid classes of MSG headers, then one URI for each of 256
 * connection classes of PUB headers.
 */
const MSG_MEMO_SLOTS = 512;
const PUB_MEMO_SLOTS = 256;
const MEMO_SLOTS = MSG_MEMO_SLOTS + PUB_MEMO_SLOTS;
const MEMO_MAX_BYTES = 31;
const memoBytes = new Uint8Array(MEMO_SLOTS * MEMO_MAX_BYTES);
const memoLength = new Int32Array(MEMO_SLOTS).fill(-1);
const memoString = new Array<string>(MEMO_SLOTS).fill('');

/** A MessagePack string at `at`, or null for any other type. */
function strAt(b: Buffer, at: number, end: number): string | null {
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
  return internUtf8(b, start, len);
}

const INTERN_SLOTS = 1024;
const INTERN_MAX_BYTES = 64;
const internBytes = new Uint8Array(INTERN_SLOTS * INTERN_MAX_BYTES);
const internLength = new Int32Array(INTERN_SLOTS).fill(-1);
const internString = new Array<string>(INTERN_SLOTS).fill('');

/**
 * The UTF-8 string in b[start, start+len). Strings up to 64 bytes go through
 * a direct-mapped cache keyed by their bytes (a collision just replaces the
 * slot), so the names a connection repeats are decoded once.
 */
export function internUtf8(b: Buffer, start: number, len: number): string {
  if (len > INTERN_MAX_BYTES) return b.toString('utf8', start, start + len);
  let h = len;
  for (let i = 0; i < len; i++) h = (Math.imul(h, 31) + (b[start + i] as number)) | 0;
  const slot = (h ^ (h >>> 13)) & (INTERN_SLOTS - 1);
  const base = slot * INTERN_MAX_BYTES;
  if (internLength[slot] === len) {
    let i = 0;
    while (i < len && internBytes[base + i] === b[start + i]) i++;
    if (i === len) return internString[slot] as string;
  }
  const s = b.toString('utf8', start, start + len);
  for (let i = 0; i < len; i++) internBytes[base + i] = b[start + i] as number;
  internLength[slot] = len;
  internString[slot] = s;
  return s;
}

/**
 * Reads the PUB header in b[start, end) into `out`: [uri, flags, r, ct],
 * [uri, flags, r, ct, sender] or [uri, flags, r, ct, sender|nil, seq].
 * False for anything else. `connection` (any number, e.g. the connection's
 * id) picks the memo slot its URI is compared with first.
 */
export function decodePubHeader(b: Buffer, start: number, end: number, out: PubFields, connection = 0): boolean {
  const head = b[start];
  if (head !== 0x94 && head !== 0x95 && head !== 0x96) return false;
  const uri = memoStrAt(b, start + 1, end, MSG_MEMO_SLOTS + (connection & (PUB_MEMO_SLOTS - 1)));
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
  return true;
}

/**
 * The MSG header a node decodes for every message:
 * [uint sid, string uri, string from, uint ct, uint replyConn, uint replyId, uint single, uint seq].
 * Null for anything else.
 */
export function decodeMsgHeader(b: Buffer, start = 0, end = b.length): unknown[] | null {
  if (b[start] !== 0x98) return null;
  const sid = uintAt(b, start + 1, end);
  if (sid === FAIL) return null;
  const slot = (sid & 0xff) << 1;
  const uri = memoStrAt(b, next, end, slot);
  if (uri === null) return null;
  const from = memoStrAt(b, next, end, slot | 1);
  if (from === null) return null;
  const ct = uintAt(b, next, end);
  if (ct === FAIL) return null;
  const rc = uintAt(b, next, end);
  if (rc === FAIL) return null;
  const ri = uintAt(b, next, end);
  if (ri === FAIL) return null;
  const single = uintAt(b, next, end);
  if (single === FAIL) return null;
  const seq = uintAt(b, next, end);
  if (seq === FAIL || next !== end) return null;
  return [sid, uri, from, ct, rc, ri, single, seq];
}
