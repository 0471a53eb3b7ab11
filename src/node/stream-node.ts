/**
 * StreamNode: direct node-to-node streams. Receivers announce a stream
 * address with their subscription; senders look it up and connect to each
 * receiver.
 */
import type { Server, Socket } from 'node:net';
import { type Readable, Writable } from 'node:stream';
import { NodesetError } from '../protocol/errors.js';
import type { SubscriberInfo } from '../protocol/frames.js';
import { readFirstLine } from '../transport/read-line.js';
import { connectTcp, listenTcp, type TlsClientOptions, type TlsServerOptions } from '../transport/tcp.js';
import { Node, type NodeOptions, type StartOptions } from './node.js';
import { BUILTIN_FORMATS, type StreamFormat } from './stream-format.js';

export const STREAM_PROTOCOL_VERSION = 1;
/** Largest handshake line a receiver reads before giving up on a connection. */
const MAX_HANDSHAKE_BYTES = 4096;

export interface StreamNodeOptions extends NodeOptions {
  /** Address the stream listener binds. Default 127.0.0.1. */
  streamHost?: string;
  /** Port of the stream listener; 0 (default) picks a free one. */
  streamPort?: number;
  /** Host announced to senders; default: streamHost (127.0.0.1 when bound to every address). */
  advertiseHost?: string;
  /** Extra formats, beside `raw` and `json`. */
  formats?: StreamFormat[];
  /**
   * TLS for direct streams. With `cert` and `key` this node's stream listener
   * speaks TLS (and with `ca` requires client certificates); `ca`, `cert` and
   * `key` are also what it uses to connect to receivers that announce TLS.
   */
  streamTls?: Partial<TlsServerOptions> & TlsClientOptions;
}

export interface IncomingStreamInfo {
  /** Stream name (the URI subscribed to). */
  stream: string;
  /** The sending node's name. */
  from: string;
  format: string;
}

export type StreamHandler = (readable: Readable, info: IncomingStreamInfo) => void;

export interface OpenStreamOptions {
  /** `raw` (default), `json`, or a format registered on the receivers. */
  format?: string | StreamFormat;
  /** How often to look for new receivers, in ms (0: never). Default 5000. */
  refreshIntervalMs?: number;
  /** Bytes buffered in the sender before write() returns false. Default 64 KiB. */
  highWaterMark?: number;
}

export interface StreamPeer {
  node: string;
  address: string;
}

interface PeerConn extends StreamPeer {
  socket: Socket;
}

/**
 * A node that exchanges bulk data directly with its peers. Receivers listen
 * on a port of their own and announce it when they subscribe to a stream
 * name; a sender asks the dispatcher who subscribes and connects to them
 * directly, so the data never passes through the dispatcher.
 */
export class StreamNode extends Node {
  readonly #streamHost: string;
  readonly #streamPort: number;
  readonly #advertiseHost: string | undefined;
  readonly #streamTls: (Partial<TlsServerOptions> & TlsClientOptions) | null;
  readonly #formats = new Map<string, StreamFormat>();
  readonly #handlers = new Map<string, StreamHandler>();
  readonly #incoming = new Set<Socket>();
  readonly #outgoing = new Set<OutgoingStream>();
  #server: Server | null = null;
  #address: string | null = null;

  constructor(options: StreamNodeOptions = {}) {
    super(options);
    this.#streamHost = options.streamHost ?? '127.0.0.1';
    this.#streamPort = options.streamPort ?? 0;
    this.#advertiseHost = options.advertiseHost;
    this.#streamTls = options.streamTls ?? null;
    for (const f of [...BUILTIN_FORMATS, ...(options.formats ?? [])]) this.#formats.set(f.name, f);
  }

  /** TLS settings for connecting to receivers that announce `tls:` addresses. */
  get streamClientTls(): TlsClientOptions {
    const t = this.#streamTls;
    return t === null ? {} : { ca: t.ca, cert: t.cert, key: t.key, rejectUnauthorized: t.rejectUnauthorized };
  }

  /** `[tls:]host:port` where this node accepts streams, once started. */
  get streamAddress(): string | null {
    return this.#address;
  }

  override async start(options: StartOptions = {}): Promise<this> {
    if (this.#server === null) {
      const t = this.#streamTls;
      const serverTls =
        t?.cert !== undefined && t.key !== undefined ? { cert: t.cert, key: t.key, ca: t.ca } : undefined;
      const { server, port } = await listenTcp(
        { host: this.#streamHost, port: this.#streamPort },
        (s) => this.#accept(s),
        serverTls,
        (err) => this.logger.warn({ err: err.message }, 'stream TLS handshake failed'),
      );
      this.#server = server;
      const wildcard = this.#streamHost === '0.0.0.0' || this.#streamHost === '::';
      const host = this.#advertiseHost ?? (wildcard ? '127.0.0.1' : this.#streamHost);
      this.#address = `${serverTls ? 'tls:' : ''}${host.includes(':') ? `[${host}]` : host}:${port}`;
    }
    return super.start(options);
  }

  override async stop(): Promise<void> {
    for (const s of this.#outgoing) s.destroy();
    for (const s of this.#incoming) s.destroy();
    const server = this.#server;
    this.#server = null;
    if (server !== null) await new Promise((resolve) => server.close(resolve));
    await super.stop();
  }

  /**
   * Accepts streams sent to `name`: announces this node's stream address with
   * the subscription. `handler` gets a Readable per incoming stream (or listen
   * for the `stream` event).
   */
  async subscribeStream(name: string, handler: StreamHandler): Promise<void> {
    if (this.#address === null)
      throw new NodesetError('NOT_CONNECTED', 'start the StreamNode before subscribing to streams');
    this.#handlers.set(name, handler);
    await this.subscribeWith(name, () => undefined, {}, this.#address);
  }

  /**
   * Opens a stream to every node that subscribes to `name`, connecting to
   * each directly. Rejects with NO_RESPONDERS when there is none.
   */
  async stream(name: string, options: OpenStreamOptions = {}): Promise<OutgoingStream> {
    const format = typeof options.format === 'object' ? options.format : this.#formats.get(options.format ?? 'raw');
    if (format === undefined) throw new NodesetError('BAD_OPTION', `unknown stream format ${String(options.format)}`);
    const stream = new OutgoingStream(this, name, format, options);
    this.#outgoing.add(stream);
    stream.once('close', () => this.#outgoing.delete(stream));
    await stream.refresh();
    if (stream.peers.length === 0) {
      stream.destroy();
      throw new NodesetError('NO_RESPONDERS', `no node accepts streams for ${name}`);
    }
    return stream;
  }

  #accept(socket: Socket): void {
    this.#incoming.add(socket);
    socket.on('close', () => this.#incoming.delete(socket));
    socket.on('error', (err) => this.logger.debug({ err: err.message }, 'incoming stream error'));
    readFirstLine(socket, MAX_HANDSHAKE_BYTES, (line) => this.#opened(socket, line));
  }

  #opened(socket: Socket, line: string): void {
    let hello: { v?: unknown; stream?: unknown; from?: unknown; format?: unknown };
    try {
      hello = JSON.parse(line);
    } catch {
      socket.destroy();
      return;
    }
    const handler = typeof hello.stream === 'string' ? this.#handlers.get(hello.stream) : undefined;
    const format = this.#formats.get(typeof hello.format === 'string' ? hello.format : 'raw');
    if (hello.v !== STREAM_PROTOCOL_VERSION || handler === undefined || format === undefined) {
      this.logger.warn({ hello }, 'refused an incoming stream');
      socket.destroy();
      return;
    }
    const info: IncomingStreamInfo = {
      stream: hello.stream as string,
      from: typeof hello.from === 'string' ? hello.from : '?',
      format: format.name,
    };
    const decoder = format.decoder();
    let readable: Readable = socket;
    if (decoder !== null) {
      readable = socket.pipe(decoder);
      socket.on('close', () => decoder.end());
    }
    try {
      handler(readable, info);
    } catch (err) {
      this.logger.error({ err, stream: info.stream }, 'stream handler failed');
      socket.destroy();
    }
  }
}

/**
 * The sending side of a stream: a Writable that writes every chunk to every
 * receiver's direct connection. write() returns false while any receiver is
 * behind, and 'drain' follows when all have caught up, so the sender's memory
 * stays within the high-water mark plus one chunk per receiver.
 * Events: `peer` (a receiver joined), `peer-lost` (a receiver went away).
 */
export class OutgoingStream extends Writable {
  readonly name: string;
  readonly format: StreamFormat;
  /** Bytes written while no receiver was connected. */
  unroutedBytes = 0;
  readonly #node: StreamNode;
  readonly #peers = new Map<string, PeerConn>();
  readonly #connecting = new Set<string>();
  #timer: NodeJS.Timeout | null = null;

  constructor(node: StreamNode, name: string, format: StreamFormat, options: OpenStreamOptions) {
    super({
      objectMode: format.objectMode,
      highWaterMark: options.highWaterMark ?? (format.objectMode ? 64 : 64 * 1024),
    });
    this.#node = node;
    this.name = name;
    this.format = format;
    const every = options.refreshIntervalMs ?? 5000;
    if (every > 0) {
      this.#timer = setInterval(() => {
        this.refresh().catch((err: Error) => node.logger.debug({ err: err.message }, 'stream refresh failed'));
      }, every);
    }
  }

  /** The receivers currently connected. */
  get peers(): StreamPeer[] {
    return [...this.#peers.values()].map((p) => ({ node: p.node, address: p.address }));
  }

  /** Bytes held by this sender: the Writable's buffer plus each receiver connection's queue. */
  get bufferedBytes(): number {
    let n = this.writableLength;
    for (const p of this.#peers.values()) n += p.socket.writableLength;
    return n;
  }

  /** Asks the dispatcher for the current receivers and connects to new ones. */
  async refresh(): Promise<void> {
    if (this.destroyed || this.writableFinished) return;
    const subs = (await this.#node.subscribers(this.name)) as SubscriberInfo[];
    const wanted = new Map<string, string>();
    for (const s of subs) if (s.stream !== null) wanted.set(s.stream, s.nodes[0] ?? s.node);
    await Promise.all(
      [...wanted].filter(([addr]) => !this.#peers.has(addr)).map(([addr, node]) => this.#connect(addr, node)),
    );
  }

  async #connect(address: string, node: string): Promise<void> {
    if (this.#connecting.has(address)) return;
    this.#connecting.add(address);
    try {
      const m = /^(tls:)?\[?(.*?)\]?:(\d+)$/.exec(address);
      if (m === null) return;
      const tls = m[1] === undefined ? undefined : this.#node.streamClientTls;
      const socket = await connectTcp(m[2] as string, Number(m[3]), 5000, tls);
      if (this.destroyed) {
        socket.destroy();
        return;
      }
      // The receiver knows the stream by its event name, without the `host/` or `node@host/` part.
      const stream = this.name.slice(this.name.indexOf('/') + 1);
      const hello = { v: STREAM_PROTOCOL_VERSION, stream, from: this.#node.name, format: this.format.name };
      socket.write(`${JSON.stringify(hello)}\n`);
      const peer: PeerConn = { node, address, socket };
      this.#peers.set(address, peer);
      socket.on('error', () => {});
      socket.on('close', () => {
        if (this.#peers.get(address) !== peer) return;
        this.#peers.delete(address);
        this.emit('peer-lost', { node, address });
        socket.emit('drain'); // release a write waiting on this receiver
      });
      this.emit('peer', { node, address });
    } catch (err) {
      this.#node.logger.warn({ err: (err as Error).message, address }, 'cannot reach stream receiver');
    } finally {
      this.#connecting.delete(address);
    }
  }

  override _write(chunk: unknown, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    let data: Buffer;
    try {
      data = this.format.encode(chunk);
    } catch (err) {
      callback(err as Error);
      return;
    }
    if (this.#peers.size === 0) {
      this.unroutedBytes += data.length;
      callback();
      return;
    }
    let waiting = 0;
    const release = () => {
      if (--waiting === 0) callback();
    };
    for (const peer of this.#peers.values()) {
      if (!peer.socket.write(data)) {
        waiting++;
        peer.socket.once('drain', release);
      }
    }
    if (waiting === 0) callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#stopTimer();
    const closing = [...this.#peers.values()].map(
      (p) => new Promise<void>((resolve) => (p.socket.closed ? resolve() : p.socket.once('close', () => resolve()))),
    );
    for (const p of this.#peers.values()) p.socket.end();
    Promise.all(closing).then(() => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#stopTimer();
    for (const p of this.#peers.values()) p.socket.destroy();
    this.#peers.clear();
    callback(error);
  }

  #stopTimer(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}
