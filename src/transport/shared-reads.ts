/**
 * Reads of accepted connections into one buffer shared by all of them,
 * instead of a fresh buffer for every read.
 *
 * Node.js gives every socket read a new buffer of its own. On a busy
 * dispatcher that is tens of megabytes a second of short-lived memory outside
 * the JavaScript heap, and every 64 MB of it costs a full garbage collection;
 * the kernel also faults in fresh pages for each one. A socket created with
 * `onread` reads into a buffer it is given instead, but Node.js offers that
 * only for sockets it creates, so an accepted connection's handle is moved
 * to such a socket (adoptAccepted). Where that is not possible (TLS, another
 * Node.js), the socket is used as it is.
 *
 * The bytes a reader is handed are valid during its call only: the next read,
 * on any connection, writes over them. `readBuffer.borrowed` is true during
 * the call, and code that keeps received bytes past it (a write that may wait,
 * a publish handed to another library) keeps a copy instead (`keepable`).
 */
import { Socket } from 'node:net';

/** Size of the shared read buffer: the most one read takes from a socket. */
export const SHARED_READ_BYTES = 256 * 1024;

type Reader = (this: Socket, chunk: Buffer) => void;
const READER = Symbol('nodeset.sharedReader');
const ADOPTED = Symbol('nodeset.adopted');
type Adopted = Socket & { [READER]?: Reader; [ADOPTED]?: true };

/** True while a reader runs on bytes of the shared buffer. */
export const readBuffer = { borrowed: false };

let shared: Buffer | null = null;
function sharedBuffer(): Buffer {
  shared ??= Buffer.allocUnsafeSlow(SHARED_READ_BYTES);
  return shared;
}

/** Received bytes as they are when they may be kept, else (in the shared buffer) a copy. */
export function keepable<T extends Buffer | null>(bytes: T): T {
  return readBuffer.borrowed && bytes !== null && bytes.length > 0 ? (Buffer.from(bytes) as T) : bytes;
}

function onSharedRead(this: Adopted, nread: number, buf: Buffer): void {
  const reader = this[READER];
  if (reader === undefined) {
    // Bytes that nobody would read are not dropped silently: the connection goes.
    this.destroy(new Error('a shared-buffer connection read before it had a reader'));
    return;
  }
  readBuffer.borrowed = true;
  try {
    reader.call(this, buf.subarray(0, nread));
  } finally {
    readBuffer.borrowed = false;
  }
}

interface HandleOwner {
  _handle?: { useUserBuffer?: unknown } | null;
}

interface ServerLink {
  _server: unknown;
  server: unknown;
}

/**
 * Moves a connection accepted with `pauseOnConnect` to a socket that reads
 * into the shared buffer. The returned socket is paused until a reader is set
 * (readSharedInto). When the handle cannot be moved, the accepted socket is
 * returned, resumed.
 */
export function adoptAccepted(raw: Socket): Socket {
  const owner = raw as unknown as HandleOwner;
  const handle = owner._handle;
  if (handle === undefined || handle === null || typeof handle.useUserBuffer !== 'function') {
    raw.resume();
    return raw;
  }
  owner._handle = null;
  const socket = new Socket({
    handle,
    pauseOnCreate: true,
    onread: { buffer: sharedBuffer, callback: onSharedRead },
  } as unknown as ConstructorParameters<typeof Socket>[0]) as Adopted;
  socket[ADOPTED] = true;
  // The server counts the connection through the socket it made (maxConnections, close()
  // waiting for its connections): the count moves to the new socket, which gives it back when
  // it is destroyed, and the old one, holding nothing now, goes.
  const counted = socket as unknown as ServerLink;
  const old = raw as unknown as ServerLink;
  counted._server = old._server;
  counted.server = old.server;
  old._server = null;
  old.server = null;
  raw.destroy();
  return socket;
}

/**
 * Hands every read of an adopted socket to `reader` (called with the socket as
 * `this`) and starts reading. False for any other socket: its bytes come as
 * 'data' events, in buffers of their own.
 */
export function readSharedInto(socket: Socket, reader: Reader): boolean {
  const s = socket as Adopted;
  if (s[ADOPTED] !== true) return false;
  s[READER] = reader;
  socket.resume();
  return true;
}
