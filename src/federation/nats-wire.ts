/**
 * How a publish crosses hosts on NATS (see docs/federation.md, "Wire
 * format"). Pure: no connection, no timers.
 *
 * A single publish travels as one NATS message: its metadata in NATS
 * headers (`Nodeset-Uri`, `Nodeset-From`, …), its payload as the NATS
 * message's data, byte for byte. Acked publishes, requests, large payloads
 * and a publish alone in its turn go this way.
 *
 * Plain publishes made in one turn of the event loop towards the same NATS
 * subject travel together as a batch: headers `Nodeset-Batch` (the count)
 * and `Nodeset-Host` (the origin), and as data a run of records, each
 *
 *     u32 length of the rest of the record, u8 mark, then by mark
 *     0 (full): f64 seq, u16 flags, u16 uri bytes, u16 from bytes, u32 ct,
 *       u32 stream id, u32 extra bytes, uri (UTF-8), from (UTF-8),
 *       extra (MessagePack {gh?: [[group, host], …], hd?});
 *     1 (same): f64 seq;
 *     2 (next): nothing;
 *     then the payload
 *
 * (little-endian). `same` records have the metadata of the record before
 * them in the batch (a stream of publishes to one URI), which is not
 * repeated; `next` ones also have its sequence number plus one. The payload bytes are copied in as they are, never
 * re-encoded. A reader also compares a batch's first metadata with the
 * last it read, so a stream decodes its strings and packs its MSG header
 * once, not once per batch.
 */
import { type MsgHdrs, headers as natsHeaders } from 'nats';
import type { Arrival, Envelope } from '../dispatcher/federation.js';
import { NodesetError } from '../protocol/errors.js';
import { isValidName } from '../protocol/event-uri.js';
import { packr } from '../protocol/frames.js';

/** The version of this wire format, announced on the directory: hosts announcing another are left out. */
export const WIRE_VERSION = 2;

/** NATS header names of a cross-host publish. */
export const H = {
  batch: 'Nodeset-Batch',
  host: 'Nodeset-Host',
  id: 'Nodeset-Id',
  uri: 'Nodeset-Uri',
  from: 'Nodeset-From',
  ct: 'Nodeset-Ct',
  flags: 'Nodeset-Flags',
  seq: 'Nodeset-Seq',
  stream: 'Nodeset-Stream',
  conn: 'Nodeset-Conn',
  r: 'Nodeset-R',
  groups: 'Nodeset-Groups',
  headers: 'Nodeset-Headers',
} as const;

/** Record marks. */
const FULL = 0;
const SAME = 1;
const NEXT = 2;
/** Bytes of a `next` record before its payload: length, mark. */
const MARKED = 5;
/** Bytes of a `same` record before its payload: length, mark, seq. */
const SHORT = MARKED + 8;
/** Bytes of a full record before its strings. */
const FIXED = SHORT + 18;
/** A batch is sent once it holds this many bytes. */
export const BATCH_MAX_BYTES = 64 * 1024;
/** Payloads this large go alone, with their metadata in NATS headers (no copy into a batch). */
export const SINGLE_MIN_BYTES = 8 * 1024;
/** Size of the buffers batches are written into (several small batches share one). */
const CHUNK_BYTES = 256 * 1024;

const U32_MAX = 0xffffffff;
const isU32 = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= U32_MAX;
const isSeq = isU32; // a MSG carries it in 32 bits

/**
 * Batches plain publishes for one NATS subject at a time. Records are
 * written into shared chunks; a taken batch is a view of its chunk that is
 * never written again (NATS keeps the view until its next socket write).
 */
export class BatchWriter {
  #chunk = Buffer.allocUnsafe(0);
  #start = 0;
  #pos = 0;
  #count = 0;
  #lastUri = '';
  #lastUriBytes = 0;
  #lastFrom = '';
  #lastFromBytes = 0;
  /** The metadata of the batch's last record, for `same` (null: none, or it had extra fields). */
  #last: Envelope | null = null;
  /** The batch's last sequence number, for `next`. */
  #lastSeq = -1;

  get count(): number {
    return this.#count;
  }

  get bytes(): number {
    return this.#pos - this.#start;
  }

  /**
   * Appends one publish, unless the batch holds some already and would pass
   * `max` bytes with it: then returns false and writes nothing.
   */
  add(m: Envelope, max: number): boolean {
    const last = this.#last;
    const same =
      last !== null &&
      m.uri === last.uri &&
      m.from === last.from &&
      m.ct === last.ct &&
      m.flags === last.flags &&
      m.st === last.st &&
      m.gh === undefined &&
      m.hd === undefined;
    if (same) {
      const next = m.seq === this.#lastSeq + 1;
      const size = (next ? MARKED : SHORT) + m.payload.length;
      if (this.#pos - this.#start + size > max) return false;
      this.#room(size);
      const b = this.#chunk;
      const at = this.#pos;
      const n = size - 4;
      b[at] = n;
      b[at + 1] = n >>> 8;
      b[at + 2] = n >>> 16;
      b[at + 3] = n >>> 24;
      if (next) {
        b[at + 4] = NEXT;
      } else {
        b[at + 4] = SAME;
        b.writeDoubleLE(m.seq, at + MARKED);
      }
      b.set(m.payload, at + size - m.payload.length);
      this.#pos = at + size;
      this.#count++;
      this.#lastSeq = m.seq;
      return true;
    }
    const uriBytes = m.uri === this.#lastUri ? this.#lastUriBytes : Buffer.byteLength(m.uri);
    const fromBytes = m.from === this.#lastFrom ? this.#lastFromBytes : Buffer.byteLength(m.from);
    this.#lastUri = m.uri;
    this.#lastUriBytes = uriBytes;
    this.#lastFrom = m.from;
    this.#lastFromBytes = fromBytes;
    // Queue group hosts as pairs: MessagePack decoders rename a `__proto__` key, a valid group name.
    const extra =
      m.gh === undefined && m.hd === undefined
        ? null
        : packr.pack({ gh: m.gh === undefined ? undefined : Object.entries(m.gh), hd: m.hd });
    const extraBytes = extra === null ? 0 : extra.length;
    const size = FIXED + uriBytes + fromBytes + extraBytes + m.payload.length;
    if (this.#count > 0 && this.#pos - this.#start + size > max) return false;
    this.#room(size);
    const b = this.#chunk;
    let at = this.#pos;
    b.writeUInt32LE(size - 4, at);
    b[at + 4] = FULL;
    b.writeDoubleLE(m.seq, at + MARKED);
    b.writeUInt16LE(m.flags, at + 13);
    b.writeUInt16LE(uriBytes, at + 15);
    b.writeUInt16LE(fromBytes, at + 17);
    b.writeUInt32LE(m.ct, at + 19);
    b.writeUInt32LE(m.st ?? 0, at + 23);
    b.writeUInt32LE(extraBytes, at + 27);
    at += FIXED;
    at += b.write(m.uri, at, uriBytes, 'utf8');
    at += b.write(m.from, at, fromBytes, 'utf8');
    if (extra !== null) at += extra.copy(b, at);
    b.set(m.payload, at);
    this.#pos = at + m.payload.length;
    this.#count++;
    this.#last = extra === null ? m : null;
    this.#lastSeq = m.seq;
    return true;
  }

  /** The batch so far, and a fresh one begun. */
  take(): Buffer {
    const batch = this.#chunk.subarray(this.#start, this.#pos);
    this.#start = this.#pos;
    this.#count = 0;
    this.#last = null;
    return batch;
  }

  #room(size: number): void {
    if (this.#pos + size <= this.#chunk.length) return;
    const open = this.#chunk.subarray(this.#start, this.#pos);
    const next = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, open.length + size));
    open.copy(next, 0);
    this.#chunk = next;
    this.#start = 0;
    this.#pos = open.length;
  }
}

/**
 * Reads batches. It keeps the last record's metadata: a record with the
 * same metadata (a stream of publishes to one URI) gets the same Arrival
 * object, so its strings are decoded and its MSG header packed once.
 */
export class BatchReader {
  #lastMeta = Buffer.alloc(0);
  #last: Arrival | null = null;
  #lastHost = '';

  /**
   * Calls `each` for every record of a batch from `host`; returns how many.
   * Throws BAD_FRAME at the first malformed record (the records before it
   * were delivered).
   */
  read(data: Uint8Array, host: string, each: (meta: Arrival, seq: number, payload: Buffer) => void): number {
    const b = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (host !== this.#lastHost) {
      this.#last = null;
      this.#lastHost = host;
    }
    let at = 0;
    let n = 0;
    /** The metadata of the batch's record before (a `same` record reuses it). */
    let meta: Arrival | null = null;
    let seq = -1;
    while (at < b.length) {
      if (b.length - at < MARKED) throw bad(`a record is cut short at byte ${at}`);
      const end = at + 4 + b.readUInt32LE(at);
      const mark = b[at + 4];
      let payloadAt = at + SHORT;
      if (mark === NEXT) {
        if (meta === null) throw bad(`record ${n} follows a record the batch does not have`);
        payloadAt = at + MARKED;
        seq++;
        if (seq > U32_MAX) throw bad(`record ${n} has a bad sequence number`);
      } else {
        if (mark !== SAME && mark !== FULL) throw bad(`record ${n} has an unknown mark ${mark}`);
        if (end < at + SHORT || end > b.length) throw bad(`record ${n} overruns the batch`);
        seq = b.readDoubleLE(at + MARKED);
        if (!isSeq(seq)) throw bad(`record ${n} has a bad sequence number`);
      }
      if (end > b.length || end < payloadAt) throw bad(`record ${n} overruns the batch`);
      if (mark === SAME) {
        if (meta === null) throw bad(`record ${n} repeats metadata the batch does not have`);
      } else if (mark === FULL) {
        if (end < at + FIXED) throw bad(`record ${n} is cut short`);
        const uriBytes = b.readUInt16LE(at + 15);
        const fromBytes = b.readUInt16LE(at + 17);
        const extraBytes = b.readUInt32LE(at + 27);
        payloadAt = at + FIXED + uriBytes + fromBytes + extraBytes;
        if (payloadAt > end) throw bad(`record ${n} overruns the batch`);
        meta = this.#last;
        // A stream goes on from the batch before: same metadata bytes, same Arrival.
        const metaAt = at + SHORT;
        if (meta === null || b.compare(this.#lastMeta, 0, this.#lastMeta.length, metaAt, payloadAt) !== 0) {
          meta = this.#decodeMeta(b, at, uriBytes, fromBytes, extraBytes, host);
          this.#last = meta;
          this.#lastMeta = Buffer.from(b.subarray(metaAt, payloadAt));
        }
      }
      if (meta === null) throw bad(`record ${n} has no metadata`);
      each(meta, seq, b.subarray(payloadAt, end));
      n++;
      at = end;
    }
    return n;
  }

  #decodeMeta(b: Buffer, at: number, uriBytes: number, fromBytes: number, extraBytes: number, host: string): Arrival {
    const s = at + FIXED;
    const from = b.toString('utf8', s + uriBytes, s + uriBytes + fromBytes);
    if (!isValidName(from)) throw bad('a record names no valid publishing node');
    const meta: Arrival = {
      uri: b.toString('utf8', s, s + uriBytes),
      from,
      host,
      ct: b.readUInt32LE(at + 19),
      flags: b.readUInt16LE(at + 13),
      st: b.readUInt32LE(at + 23),
    };
    if (extraBytes > 0) {
      let extra: unknown;
      try {
        extra = packr.unpack(b.subarray(s + uriBytes + fromBytes, s + uriBytes + fromBytes + extraBytes));
      } catch {
        throw bad('a record has unreadable extra fields');
      }
      const { gh, hd } = (extra ?? {}) as { gh?: unknown; hd?: unknown };
      if (gh !== undefined && gh !== null) meta.gh = groupPairs(gh);
      if (hd !== undefined && hd !== null) meta.hd = hd as Record<string, string>;
    }
    return meta;
  }
}

/** NATS headers for a publish sent alone (its payload is the NATS message's data). */
export function singleHeaders(m: Envelope, id: string | null): MsgHdrs {
  const h = natsHeaders();
  h.set(H.host, m.host);
  h.set(H.uri, m.uri);
  h.set(H.from, m.from);
  h.set(H.ct, String(m.ct));
  h.set(H.flags, String(m.flags));
  h.set(H.seq, String(m.seq));
  h.set(H.stream, String(m.st ?? 0));
  if (m.conn !== undefined) h.set(H.conn, String(m.conn));
  if (m.r !== undefined) h.set(H.r, String(m.r));
  if (m.gh !== undefined) h.set(H.groups, JSON.stringify(m.gh));
  if (m.hd !== undefined) h.set(H.headers, JSON.stringify(m.hd));
  if (id !== null) h.set(H.id, id);
  return h;
}

/** NATS headers of a batch. */
export function batchHeaders(host: string, count: number, id: string | null): MsgHdrs {
  const h = natsHeaders();
  h.set(H.host, host);
  h.set(H.batch, String(count));
  if (id !== null) h.set(H.id, id);
  return h;
}

/** The metadata of a publish sent alone, from its NATS headers; throws BAD_FRAME when any is missing or malformed. */
export function readSingle(h: MsgHdrs): { meta: Arrival; seq: number } {
  const str = (name: string): string => {
    const v = h.get(name);
    if (v === '') throw bad(`header ${name} is missing`);
    return v;
  };
  const num = (name: string, check: (n: unknown) => n is number): number => {
    const n = Number(str(name));
    if (!check(n)) throw bad(`header ${name} is not a valid number`);
    return n;
  };
  const meta: Arrival = {
    uri: str(H.uri),
    from: name(h, H.from),
    host: name(h, H.host),
    ct: num(H.ct, isU32),
    flags: num(H.flags, isU32),
    st: num(H.stream, isU32),
  };
  if (h.has(H.conn) || h.has(H.r)) {
    meta.conn = num(H.conn, isU32);
    meta.r = num(H.r, isU32);
  }
  if (h.has(H.groups)) meta.gh = checkGroups(json(h.get(H.groups), H.groups));
  if (h.has(H.headers)) meta.hd = json(h.get(H.headers), H.headers) as Record<string, string>;
  return { meta, seq: num(H.seq, isSeq) };
}

/** The origin host of a batch, from its headers; BAD_FRAME when it names none. */
export function batchHost(h: MsgHdrs): string {
  return name(h, H.host);
}

/** A node or host name from a header; BAD_FRAME when missing or not a valid name. */
function name(h: MsgHdrs, header: string): string {
  const v = h.get(header);
  if (!isValidName(v)) throw bad(`header ${header} ${v === '' ? 'is missing' : 'is not a valid name'}`);
  return v;
}

function json(text: string, name: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw bad(`header ${name} is not JSON`);
  }
}

/** A queue group → host map, checked. */
function checkGroups(v: unknown): Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('queue group hosts must be a map');
  for (const host of Object.values(v)) if (typeof host !== 'string') throw bad('queue group hosts must be names');
  return v as Record<string, string>;
}

/** A queue group → host map from [group, host] pairs, checked. */
function groupPairs(v: unknown): Record<string, string> {
  if (!Array.isArray(v)) throw bad('queue group hosts must be pairs');
  const gh: Record<string, string> = Object.create(null);
  for (const pair of v) {
    if (!Array.isArray(pair) || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
      throw bad('queue group hosts must be pairs of names');
    }
    gh[pair[0]] = pair[1];
  }
  return gh;
}

function bad(message: string): NodesetError {
  return new NodesetError('BAD_FRAME', `cross-host message: ${message}`);
}
