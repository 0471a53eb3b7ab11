/**
 * The frame decoder: a state machine fed bytes in any chunks, with size
 * limits checked before buffering; plus the header-reading helpers frames
 * share.
 */
import { NodesetError } from './errors.js';
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  FRAME_FIXED_BYTES,
  FRAME_PREFIX_BYTES,
  MAX_HEADER_BYTES,
  unpackHeader,
} from './frames.js';

/** Receives what the decoder finds in the byte stream. */
export interface FrameSink {
  /**
   * One whole frame, in place: its header (raw MessagePack) is
   * buf[headerStart, payloadStart) and its payload buf[payloadStart, end).
   * The bytes are valid during the call only unless the sink keeps a view of
   * them (see headerOf/payloadOf); no view is made for a sink that does not
   * ask for one.
   */
  frame(kind: number, buf: Buffer, headerStart: number, payloadStart: number, end: number): void;
  /**
   * A frame the decoder refused. When `fatal` is false the stream is still
   * framed and decoding goes on; when true the stream cannot be trusted any
   * more and the decoder has stopped.
   */
  refused(error: NodesetError, fatal: boolean): void;
}

export interface DecoderOptions {
  /** Largest payload accepted, in bytes. */
  maxPayloadBytes?: number;
  /**
   * An oversize frame up to this many bytes is skipped without being
   * buffered and the stream goes on; a larger declared length is fatal.
   */
  maxSkipBytes?: number;
  /**
   * The chunks pushed are valid during push() only (their memory is reused
   * for the next read): the decoder copies the piece of a frame it must keep
   * into one buffer of its own, reused from frame to frame, and the frames it
   * hands over are valid during the sink's call only, whatever the sink asks.
   */
  transient?: boolean;
}

const EMPTY = Buffer.alloc(0);
/**
 * Transient mode: the smallest buffer for a piece of a frame, and the largest
 * kept once a read leaves no piece waiting (an idle connection holds no more).
 */
const MIN_ASSEMBLY_BYTES = 256;
const MAX_KEPT_ASSEMBLY_BYTES = 4 * 1024;

/**
 * Incremental frame decoder: a pure state machine fed with byte chunks of any
 * size (one byte at a time, or many frames at once). It never buffers more
 * than one frame of at most the configured limit.
 */
export class FrameDecoder {
  maxPayloadBytes: number;
  maxFrameBytes: number;
  readonly maxSkipBytes: number;
  #sink: FrameSink;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Bytes needed before the buffered chunks can yield a frame. */
  #needed = FRAME_PREFIX_BYTES;
  #skip = 0;
  #stopped = false;
  readonly #transient: boolean;
  /** Transient mode: the buffered piece of a frame, in #assembly[0, #buffered). */
  #assembly: Buffer = EMPTY;

  constructor(sink: FrameSink, options: DecoderOptions = {}) {
    this.#sink = sink;
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.maxFrameBytes = FRAME_FIXED_BYTES + MAX_HEADER_BYTES + this.maxPayloadBytes;
    this.maxSkipBytes = options.maxSkipBytes ?? Math.max(16 * 1024 * 1024, this.maxFrameBytes * 4);
    this.#transient = options.transient === true;
  }

  /** Changes the payload limit for the frames still to come (a peer's limit rises once it is known). */
  setMaxPayloadBytes(bytes: number): void {
    this.maxPayloadBytes = bytes;
    this.maxFrameBytes = FRAME_FIXED_BYTES + MAX_HEADER_BYTES + bytes;
  }

  /** Bytes held while waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Memory held for a piece of a frame: in transient mode, the size of the decoder's own buffer. */
  get heldBytes(): number {
    return this.#transient ? this.#assembly.length : this.#buffered;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Stops decoding; later pushes are ignored. */
  stop(): void {
    this.#stopped = true;
    this.#chunks = [];
    this.#assembly = EMPTY;
    this.#buffered = 0;
  }

  push(chunk: Buffer): void {
    if (this.#stopped) return;
    if (this.#skip > 0) {
      if (chunk.length <= this.#skip) {
        this.#skip -= chunk.length;
        return;
      }
      chunk = chunk.subarray(this.#skip);
      this.#skip = 0;
    }
    if (this.#buffered > 0) {
      const missing = this.#needed - this.#buffered;
      if (this.#transient) {
        const n = Math.min(missing, chunk.length);
        this.#keep(chunk, 0, n);
        if (n < missing) return;
        const head = this.#assembly.subarray(0, this.#needed);
        this.#buffered = 0;
        this.#decode(head);
        if (chunk.length > missing) this.push(chunk.subarray(missing));
        // Nothing waits: a large buffer is not kept for a connection that may send no other frame.
        if (this.#buffered === 0 && this.#assembly.length > MAX_KEPT_ASSEMBLY_BYTES) this.#assembly = EMPTY;
        return;
      }
      if (chunk.length < missing) {
        this.#chunks.push(chunk);
        this.#buffered += chunk.length;
        return;
      }
      // Join only the bytes the pending piece lacks; the rest of the chunk is decoded in place.
      this.#chunks.push(chunk.subarray(0, missing));
      const head = Buffer.concat(this.#chunks, this.#needed);
      this.#chunks = [];
      this.#buffered = 0;
      this.#decode(head);
      if (chunk.length > missing) this.push(chunk.subarray(missing));
      return;
    }
    this.#decode(chunk);
  }

  #decode(buf: Buffer): void {
    let off = 0;
    const end = buf.length;
    while (!this.#stopped) {
      const available = end - off;
      if (available < FRAME_PREFIX_BYTES) {
        this.#needed = FRAME_PREFIX_BYTES;
        break;
      }
      // Byte by byte: cheaper than the Buffer read helpers on this path.
      const len =
        (buf[off] as number) * 0x1000000 +
        (((buf[off + 1] as number) << 16) | ((buf[off + 2] as number) << 8) | (buf[off + 3] as number));
      if (len < FRAME_FIXED_BYTES) {
        this.#fail(new NodesetError('BAD_FRAME', `frame length ${len} is shorter than ${FRAME_FIXED_BYTES}`), true);
        return;
      }
      if (len > this.maxFrameBytes) {
        const error = new NodesetError(
          'TOO_LARGE',
          `frame of ${len} bytes is over the limit of ${this.maxFrameBytes} (payload limit ${this.maxPayloadBytes})`,
        );
        if (len > this.maxSkipBytes) {
          this.#fail(error, true);
          return;
        }
        const inBuffer = available - FRAME_PREFIX_BYTES;
        if (inBuffer >= len) {
          off += FRAME_PREFIX_BYTES + len;
        } else {
          this.#skip = len - inBuffer;
          off = end;
        }
        this.#sink.refused(error, false);
        continue;
      }
      if (available - FRAME_PREFIX_BYTES < len) {
        this.#needed = FRAME_PREFIX_BYTES + len;
        break;
      }
      const start = off + FRAME_PREFIX_BYTES;
      const frameEnd = start + len;
      off = frameEnd;
      const kind = buf[start] as number;
      const hlen = ((buf[start + 1] as number) << 8) | (buf[start + 2] as number);
      if (hlen > len - FRAME_FIXED_BYTES) {
        this.#sink.refused(new NodesetError('BAD_FRAME', `header length ${hlen} runs past the frame end`), false);
        continue;
      }
      const headerStart = start + FRAME_FIXED_BYTES;
      const payloadStart = headerStart + hlen;
      if (frameEnd - payloadStart > this.maxPayloadBytes) {
        this.#sink.refused(
          new NodesetError('TOO_LARGE', `payload of ${frameEnd - payloadStart} bytes is over ${this.maxPayloadBytes}`),
          false,
        );
        continue;
      }
      this.#sink.frame(kind, buf, headerStart, payloadStart, frameEnd);
    }
    if (!this.#stopped && off < end) {
      if (this.#transient) {
        this.#keep(buf, off, end);
      } else {
        const rest = buf.subarray(off);
        this.#chunks.push(rest);
        this.#buffered = rest.length;
      }
    }
  }

  /**
   * Transient mode: appends buf[from, to) to the buffered piece, in the
   * decoder's own buffer. That buffer grows with what arrives, to twice the
   * piece (at most the frame's size): a frame's declared length reserves
   * nothing, so a peer that sends a few bytes of a large frame makes the
   * decoder hold about what it sent. A new piece does not start in a large
   * buffer much bigger than it. `buf` may be a view of that buffer (the piece
   * left after decoding it).
   */
  #keep(buf: Buffer, from: number, to: number): void {
    const at = this.#buffered;
    const size = at + to - from;
    const room = this.#assembly.length;
    if (size > room || (at === 0 && room > MAX_KEPT_ASSEMBLY_BYTES && room > 2 * size)) {
      const grown = Math.min(Math.max(this.#needed, size), Math.max(2 * size, MAX_KEPT_ASSEMBLY_BYTES));
      const bigger = Buffer.allocUnsafeSlow(Math.max(grown, MIN_ASSEMBLY_BYTES));
      if (at > 0) this.#assembly.copy(bigger, 0, 0, at);
      buf.copy(bigger, at, from, to);
      this.#assembly = bigger;
    } else {
      buf.copy(this.#assembly, at, from, to); // (overlapping when buf is a view of #assembly: copy moves)
    }
    this.#buffered = size;
  }

  #fail(error: NodesetError, fatal: boolean): void {
    this.stop();
    this.#sink.refused(error, fatal);
  }
}

/** A view of a frame's header bytes, or null when it has none. */
export function headerOf(buf: Buffer, headerStart: number, payloadStart: number): Buffer | null {
  return headerStart === payloadStart ? null : buf.subarray(headerStart, payloadStart);
}

/** A view of a frame's payload bytes (a shared empty buffer when it has none). */
export function payloadOf(buf: Buffer, payloadStart: number, end: number): Buffer {
  return payloadStart === end ? EMPTY : buf.subarray(payloadStart, end);
}

/** Decodes a header, turning any MessagePack failure into BAD_FRAME. */
export function decodeHeader(bytes: Buffer | null): unknown {
  if (bytes === null) return null;
  try {
    return unpackHeader(bytes);
  } catch (cause) {
    throw new NodesetError('BAD_FRAME', 'frame header is not valid MessagePack', { cause });
  }
}

/** Narrowing helpers for validating decoded headers. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

export function isUint(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
}
