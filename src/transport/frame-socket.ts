/**
 * A socket that speaks frames: coalesced writes with a pending-bytes count,
 * and decoded frames handed to a handler object.
 */
import type { Socket } from 'node:net';
import { type DecoderOptions, FrameDecoder, type FrameSink } from '../protocol/decoder.js';
import {
  FRAME_PREFIX_BYTES,
  frameSize,
  msgFrameSize,
  writeFrame,
  writeMsgFrame,
  writeMsgHead,
} from '../protocol/frames.js';
import { readBuffer, readSharedInto } from './shared-reads.js';
import { isSpareSize, keepSpare, spareSize, takeSpare } from './spare-buffers.js';

/** Past this many buffered bytes the outbound buffer is written at once. */
export const FLUSH_THRESHOLD_BYTES = 64 * 1024;
/**
 * A MSG payload at least this large is written to the socket from its own
 * memory (the received frame's bytes) instead of being copied into the
 * outbound buffer: the frame's head is copied, the payload goes along in the
 * same vectored write. Below it, one copy into one buffer is cheaper than a
 * write per part (see docs/performance.md for the measurement).
 */
export const ZERO_COPY_MIN_BYTES = 8 * 1024;
/**
 * A payload this large that must be copied (a MSG's that lies in the shared
 * read buffer, any other frame's) while frames wait for the socket gets a
 * buffer of its own size, written as a part, rather than room in the outbound
 * buffer: a power-of-two buffer around it could leave up to half of itself
 * unused while it waits. (When nothing waits, the outbound buffer is written
 * at once and comes back: the copy goes there.)
 */
const OWN_COPY_MIN_BYTES = 128 * 1024;
/** A quiet connection's first buffer: small, from Node's shared pool; busy ones grow it. */
const INITIAL_BUFFER_BYTES = 256;
const MAX_REUSED_BUFFER_BYTES = 1024 * 1024;
/** Written buffers a connection keeps track of until its socket has written them (more are left to the GC). */
const MAX_WRITTEN_KEPT = 64;
const EMPTY = Buffer.alloc(0);

export interface FrameSocketHandlers extends FrameSink {
  /** The socket closed (for any reason); called once. */
  closed(hadError: boolean, error: Error | undefined): void;
  /** Optional: called after each received chunk has been decoded. */
  received?(bytes: number): void;
  /** Optional: the socket's write buffer emptied. */
  drained?(): void;
}

const OWNER = Symbol('nodeset.frameSocket');
type OwnedSocket = Socket & { [OWNER]: FrameSocket };
/** Connections with frames waiting for this turn's write. */
const flushQueue: FrameSocket[] = [];

/**
 * A socket that speaks frames: incoming bytes go through a FrameDecoder,
 * outgoing frames are appended to one buffer that is written once per
 * microtask (or at once past FLUSH_THRESHOLD_BYTES), so a burst of frames
 * costs one socket write.
 */
export class FrameSocket {
  readonly socket: Socket;
  readonly decoder: FrameDecoder;
  bytesIn = 0;
  bytesOut = 0;
  /** Outbound bytes; allocated on the first send after each flush, so idle connections hold none. */
  #buf: Buffer = EMPTY;
  /** The buffer #buf is a view of (its front part was handed on at earlier flushes), or EMPTY. */
  #root: Buffer = EMPTY;
  #len = 0;
  /**
   * Parts of this flush already laid out in order: regions of #buf (up to
   * #sealed) and payloads sent from their own memory. Empty unless a payload
   * of ZERO_COPY_MIN_BYTES or more was queued.
   */
  #parts: Uint8Array[] = [];
  #sealed = 0;
  /** Bytes of the payloads in #parts (those not in #buf). */
  #partBytes = 0;
  /** MSG frames queued since the last flush. */
  #msgs = 0;
  /**
   * Flushed while the socket was past its high-water mark: kept here, in
   * order, and handed to the socket when it drains. The socket itself holds
   * little (its high-water mark and one write), always whole frames, so what
   * waits here can be discarded or overtaken at a frame boundary (cutAhead,
   * sendConstant).
   */
  #backlog: Uint8Array[] = [];
  #backlogBytes = 0;
  #backlogMsgs = 0;
  /** MSG frames in the writes the socket holds (counted whole until it drains). */
  #inSocketMsgs = 0;
  /** Outbound buffers whose every byte waits in the backlog: the socket gets them at its next 'drain'. */
  #backlogOwned: Buffer[] = [];
  /** Outbound buffers whose every byte the socket holds: spare again once it has written them. */
  #written: Buffer[] = [];
  /** end() was asked for while a backlog waited: the socket ends once the backlog is written. */
  #ending = false;
  /** The owner waits for everything queued to be written (wantDrained): `drained` is owed. */
  #drainOwed = false;
  #owedWritten: (() => void) | null = null;
  #lastSize = INITIAL_BUFFER_BYTES;
  #flushQueued = false;
  #closed = false;
  #lastError: Error | undefined;
  readonly #handlers: FrameSocketHandlers;
  /** TLS copies what it is given at its own pace: its buffers are never reused. */
  readonly #encrypted: boolean;

  constructor(socket: Socket, handlers: FrameSocketHandlers, options: DecoderOptions = {}) {
    this.socket = socket;
    this.#handlers = handlers;
    this.#encrypted = (socket as { encrypted?: boolean }).encrypted === true;
    socket.setNoDelay(true);
    // Shared listeners that find their FrameSocket on the socket: no closures per connection.
    (socket as OwnedSocket)[OWNER] = this;
    // An accepted connection moved to the shared read buffer (shared-reads.ts) hands over each
    // read directly; its bytes are reused after the call, and the decoder copies what it keeps.
    const shared = readSharedInto(socket, FrameSocket.#onData);
    this.decoder = new FrameDecoder(handlers, shared ? { ...options, transient: true } : options);
    if (!shared) socket.on('data', FrameSocket.#onData);
    socket.on('drain', FrameSocket.#onDrain);
    socket.on('error', FrameSocket.#onError);
    socket.on('close', FrameSocket.#onClose);
  }

  static #onData = function (this: Socket, chunk: Buffer): void {
    const fs = (this as OwnedSocket)[OWNER];
    fs.bytesIn += chunk.length;
    fs.decoder.push(chunk);
    fs.#handlers.received?.(chunk.length);
  };

  static #onDrain = function (this: Socket): void {
    const fs = (this as OwnedSocket)[OWNER];
    fs.#inSocketMsgs = 0;
    fs.#drainOwed = false;
    fs.#recycleWritten();
    if (fs.#backlog.length > 0) {
      fs.#writeBacklog();
      // Past the high-water mark again: 'drain' comes again when the backlog is through.
      if (this.writableNeedDrain) return;
    }
    fs.#handlers.drained?.();
  };

  static #onError = function (this: Socket, err: Error): void {
    (this as OwnedSocket)[OWNER].#lastError = err;
  };

  static #onClose = function (this: Socket, hadError: boolean): void {
    const fs = (this as OwnedSocket)[OWNER];
    fs.#closed = true;
    fs.decoder.stop();
    fs.#handlers.closed(hadError, fs.#lastError);
  };

  /** Writes every buffer queued during this turn (one microtask for all connections). */
  static #flushQueuedSockets(): void {
    let i = 0;
    try {
      for (; i < flushQueue.length; i++) {
        const fs = flushQueue[i] as FrameSocket;
        fs.#flushQueued = false;
        fs.flush();
      }
    } finally {
      // Should a write throw, the connections after it are queued again rather than forgotten.
      const rest = flushQueue.slice(i + 1);
      flushQueue.length = 0;
      for (const fs of rest) {
        fs.#flushQueued = false;
        fs.#scheduleFlush();
      }
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes accepted for sending but not yet handed to the kernel. */
  get pendingBytes(): number {
    return this.#len + this.#partBytes + this.#backlogBytes + this.socket.writableLength;
  }

  /** Bytes flushed (counted in bytesOut) that the kernel has not taken yet: the backlog and the socket's write. */
  get unwrittenBytes(): number {
    return this.#backlogBytes + this.socket.writableLength;
  }

  /**
   * MSG frames accepted for sending and not yet handed to the kernel. Exact
   * for what waits in this object; the write the socket holds counts whole
   * until it completes, so this may exceed the truth by that write's messages.
   */
  get pendingMsgs(): number {
    return this.#msgs + this.#backlogMsgs + (this.socket.writableLength > 0 ? this.#inSocketMsgs : 0);
  }

  /** Outbound memory this connection holds: its buffer, and those waiting to be written or to come back. */
  get heldBytes(): number {
    let n = this.#root.length;
    for (const buf of this.#written) n += buf.length;
    for (const buf of this.#backlogOwned) n += buf.length;
    return n;
  }

  /** Appends a frame to the outbound buffer (a large payload that will wait, into a buffer of its own: OWN_COPY_MIN_BYTES). */
  send(kind: number, header: Uint8Array | null, payload: Uint8Array | null = null): void {
    const size = frameSize(header?.length ?? 0, payload?.length ?? 0);
    if (payload === null || !this.#ownCopy(payload.length)) {
      const at = this.#reserve(size);
      this.#len = writeFrame(this.#buf, at, kind, header, payload);
    } else {
      const at = this.#reserve(size - payload.length);
      const end = writeFrame(this.#buf, at, kind, header, null);
      this.#buf.writeUInt32BE(size - FRAME_PREFIX_BYTES, at); // the length counts the payload that follows
      this.#parts.push(this.#buf.subarray(this.#sealed, end), Buffer.from(payload));
      this.#sealed = end;
      this.#len = end;
      this.#partBytes += payload.length;
    }
    this.#scheduleFlush();
  }

  /**
   * Appends a MSG frame built from a shared header tail (see packMsgTail).
   * The payload's bytes must not change afterwards: a large one is written
   * from its own memory (ZERO_COPY_MIN_BYTES), unless it lies in the shared
   * read buffer (copied then, as that memory is reused at the next read: into
   * the outbound buffer, or into one of its own, see OWN_COPY_MIN_BYTES).
   */
  sendMsg(sid: number, tail: Uint8Array, payload: Uint8Array): void {
    const size = msgFrameSize(tail, payload.length);
    const borrowed = readBuffer.borrowed;
    if (payload.length < ZERO_COPY_MIN_BYTES || (borrowed && !this.#ownCopy(payload.length))) {
      const at = this.#reserve(size); // first: it may replace #buf
      this.#len = writeMsgFrame(this.#buf, at, sid, tail, payload);
    } else {
      const at = this.#reserve(size - payload.length);
      const end = writeMsgHead(this.#buf, at, sid, tail, payload.length);
      this.#parts.push(this.#buf.subarray(this.#sealed, end), borrowed ? Buffer.from(payload) : payload);
      this.#sealed = end;
      this.#len = end;
      this.#partBytes += payload.length;
    }
    this.#msgs++;
    this.#scheduleFlush();
  }

  /**
   * Sends a frame that never changes (a heartbeat PING or PONG) ahead of
   * whatever waits here (right after what the socket holds, at a frame
   * boundary), so a heartbeat is not stuck behind a backlog, and a heartbeat
   * round over many quiet connections allocates no buffers.
   */
  sendAhead(frame: Buffer): void {
    if (this.#closed || this.socket.destroyed || this.socket.writableEnded) return;
    this.bytesOut += frame.length;
    this.socket.write(frame);
  }

  /** Sends a frame that never changes in order: written as it is when nothing is queued, else appended. */
  sendConstant(frame: Buffer): void {
    if (this.#len === 0 && this.#backlog.length === 0) this.sendAhead(frame);
    else this.sendRaw(frame);
  }

  /**
   * Asks for `drained` once everything queued now has been handed to the
   * kernel, even when the socket never goes past its high-water mark (so no
   * 'drain' event comes): a pushback hold taken on an unflushed buffer must
   * be released.
   */
  wantDrained(): void {
    this.#drainOwed = true;
  }

  /**
   * Discards every frame not yet handed to the socket (the write the socket
   * holds goes on), then sends `frame` (whole frames) next, and half-closes
   * once it is written: how a connection cut off is told why before anything
   * that was queued for it. Returns the messages and bytes discarded.
   */
  cutAhead(frame: Uint8Array): { msgs: number; bytes: number } {
    // What the socket holds is still written (it is ended, not destroyed): not lost here.
    const lost = { msgs: this.#msgs + this.#backlogMsgs, bytes: this.#len + this.#partBytes + this.#backlogBytes };
    this.#discard();
    if (!this.#closed && !this.socket.destroyed && !this.socket.writableEnded) {
      this.bytesOut += frame.length;
      this.socket.write(frame);
      this.socket.end();
    }
    return lost;
  }

  /** Whether a payload to copy gets a buffer of its own (see OWN_COPY_MIN_BYTES). */
  #ownCopy(bytes: number): boolean {
    return bytes >= OWN_COPY_MIN_BYTES && (this.#backlog.length > 0 || this.socket.writableNeedDrain);
  }

  /** Appends bytes that are already whole frames. */
  sendRaw(bytes: Uint8Array): void {
    const at = this.#reserve(bytes.length);
    this.#buf.set(bytes, at);
    this.#len = at + bytes.length;
    this.#scheduleFlush();
  }

  /** Hands the outbound buffer to the socket now, or to the backlog while the socket is still writing. */
  flush(): void {
    if (this.#len === 0) return; // (parts are never queued without bytes in the buffer)
    const socket = this.socket;
    // Closed, or ended with nothing left to write: a write now would fail and destroy the socket.
    if (this.#closed || socket.destroyed || (socket.writableEnded && this.#backlog.length === 0)) {
      this.#discard();
      return;
    }
    const buf = this.#buf;
    const len = this.#len;
    const msgs = this.#msgs;
    this.bytesOut += len + this.#partBytes;
    // The next buffer is sized on what this flush carried, so a busy connection gets room
    // for a whole burst at once and a quiet one gets a small buffer again.
    this.#lastSize = Math.min(2 * len, MAX_REUSED_BUFFER_BYTES);
    this.#buf = EMPTY;
    this.#len = 0;
    this.#msgs = 0;
    if (socket.writableNeedDrain || this.#backlog.length > 0) {
      // The socket is still writing past its high-water mark: this waits, in order, for its 'drain'.
      // What waits is views of the buffer; its rest takes the next frames, so what waits holds
      // about the memory it counts, and nothing is copied.
      const backlog = this.#backlog;
      if (this.#parts.length === 0) {
        backlog.push(buf.subarray(0, len));
      } else {
        for (const part of this.#parts) backlog.push(part);
        if (len > this.#sealed) backlog.push(buf.subarray(this.#sealed, len));
      }
      if (buf.length - len >= INITIAL_BUFFER_BYTES) this.#buf = buf.subarray(len);
      else this.#retire(true);
      this.#backlogBytes += len + this.#partBytes;
      this.#backlogMsgs += msgs;
      this.#resetParts();
      return;
    }
    if (socket.writableLength === 0) {
      this.#inSocketMsgs = 0;
      this.#recycleWritten();
    }
    this.#inSocketMsgs += msgs;
    if (this.#parts.length === 0) {
      socket.write(buf.subarray(0, len));
    } else {
      // One vectored write for the buffer's regions and the payloads between them.
      const parts = this.#parts;
      socket.cork();
      for (let i = 0; i < parts.length; i++) socket.write(parts[i] as Uint8Array);
      if (len > this.#sealed) socket.write(buf.subarray(this.#sealed, len));
      socket.uncork();
      this.#resetParts();
    }
    // The next frames go to another buffer; this one is spare once the socket has written it.
    this.#retire(false);
    if (socket.writableLength === 0) {
      if (this.#drainOwed) {
        this.#drainOwed = false;
        process.nextTick(FrameSocket.#owedDrained, this);
      }
    } else if (this.#drainOwed && !socket.writableNeedDrain) {
      this.#awaitWritten();
    }
  }

  /**
   * No more frames go into #root, the buffer #buf was cut from. It is spare
   * once every view of it handed on has been written: at once when the socket
   * holds nothing (the kernel took it all), else once the socket has written
   * what it holds, or (`waits`: views of it wait in the backlog) after that.
   * TLS copies what it is given at its own pace: its buffers are never reused.
   */
  #retire(waits: boolean): void {
    const root = this.#root;
    this.#root = EMPTY;
    if (!isSpareSize(root.length) || this.#encrypted) return;
    if (waits || this.#backlog.length > 0) this.#backlogOwned.push(root);
    else if (this.socket.writableLength === 0) keepSpare(root);
    else if (this.#written.length < MAX_WRITTEN_KEPT) this.#written.push(root);
  }

  /** Everything handed to the socket before was written: the buffers it held are spare again. */
  #recycleWritten(): void {
    if (this.#written.length === 0) return;
    for (const buf of this.#written) keepSpare(buf);
    this.#written = [];
  }

  /** No 'drain' will come for a write under the high-water mark: learn of its end from the socket. */
  #awaitWritten(): void {
    this.#owedWritten ??= () => {
      if (this.#drainOwed && this.#len === 0 && this.#backlog.length === 0 && this.socket.writableLength === 0) {
        this.#drainOwed = false;
        this.#handlers.drained?.();
      }
    };
    this.socket.write(EMPTY, this.#owedWritten);
  }

  static #owedDrained(fs: FrameSocket): void {
    fs.#handlers.drained?.();
  }

  /**
   * Gives back what a connection with nothing queued holds: the rest of a
   * buffer whose frames went out through the backlog (kept for the next
   * frames, it may be large), and buffers the socket has written but that no
   * 'drain' returned. For an idle connection, called now and then (the
   * dispatcher's heartbeat sweep).
   */
  trim(): void {
    if (this.#len > 0 || this.#backlog.length > 0) return;
    if (this.socket.writableLength === 0) this.#recycleWritten();
    if (this.#buf.length === 0) return;
    this.#buf = EMPTY;
    this.#retire(false);
  }

  /** Flushes, then half-closes the socket once everything is written. */
  end(): void {
    this.flush();
    if (this.socket.destroyed) return;
    if (this.#backlog.length > 0) this.#ending = true;
    else this.socket.end();
  }

  /** Closes at once, discarding anything unsent. */
  destroy(error?: Error): void {
    this.#discard();
    this.socket.destroy(error);
  }

  /** The socket drained: everything that waited goes in one vectored write. */
  #writeBacklog(): void {
    const socket = this.socket;
    const backlog = this.#backlog;
    this.#inSocketMsgs = this.#backlogMsgs;
    this.#backlog = [];
    this.#backlogBytes = 0;
    this.#backlogMsgs = 0;
    if (this.#backlogOwned.length > 0) {
      for (const buf of this.#backlogOwned) this.#written.push(buf);
      this.#backlogOwned = [];
    }
    socket.cork();
    for (let i = 0; i < backlog.length; i++) socket.write(backlog[i] as Uint8Array);
    socket.uncork();
    if (this.#ending) socket.end();
  }

  #resetParts(): void {
    if (this.#parts.length > 0) {
      this.#parts = [];
      this.#sealed = 0;
      this.#partBytes = 0;
    }
  }

  #discard(): void {
    this.#len = 0;
    this.#msgs = 0;
    this.#resetParts();
    if (this.#backlog.length > 0) {
      // Counted in bytesOut when flushed, never written.
      this.bytesOut -= this.#backlogBytes;
      this.#backlog = [];
      this.#backlogBytes = 0;
      this.#backlogMsgs = 0;
      this.#backlogOwned = [];
    }
  }

  #reserve(size: number): number {
    const need = this.#len + size;
    if (need > this.#buf.length) {
      // Grow rather than flush: the buffer is written at FLUSH_THRESHOLD_BYTES
      // (see #scheduleFlush), so writes stay large. Busy connections get back
      // twice what their last flush carried (up to 1 MiB).
      // While a backlog waits, a buffer holds many flushes (an eighth of the backlog), so the rest
      // left unused when one is full is small beside what waits.
      const size = Math.max(
        need,
        this.#buf.length * 2,
        this.#lastSize,
        INITIAL_BUFFER_BYTES,
        Math.min(this.#backlogBytes >> 3, MAX_REUSED_BUFFER_BYTES),
      );
      // Large ones in powers of two, so that a written one fits the next flush of about its size.
      const bigger = takeSpare(size) ?? Buffer.allocUnsafe(spareSize(size));
      this.#buf.copy(bigger, 0, 0, this.#len);
      if (this.#parts.length > 0) {
        this.#root = EMPTY; // views of it wait in #parts: left to the garbage collector
      } else if (this.#buf === this.#root) {
        // Nothing of it was handed on: spare at once.
        if (!this.#encrypted) keepSpare(this.#root);
        this.#root = EMPTY;
      } else {
        this.#retire(false);
      }
      this.#buf = bigger;
      this.#root = bigger;
    }
    return this.#len;
  }

  #scheduleFlush(): void {
    if (this.#len + this.#partBytes >= FLUSH_THRESHOLD_BYTES) {
      this.flush();
    } else if (!this.#flushQueued) {
      this.#flushQueued = true;
      if (flushQueue.length === 0) queueMicrotask(FrameSocket.#flushQueuedSockets);
      flushQueue.push(this);
    }
  }
}
