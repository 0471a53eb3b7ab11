/**
 * TCP and TLS sockets: listening, connecting with a timeout, and loopback
 * checks.
 */
import { connect, createServer, isIP, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { NodesetError } from '../protocol/errors.js';
import { adoptAccepted } from './shared-reads.js';

export interface ListenAddress {
  host: string;
  port: number;
}

/** Server-side TLS: a certificate and key; with `ca`, clients must present a certificate it signed. */
export interface TlsServerOptions {
  cert: string | Buffer;
  key: string | Buffer;
  ca?: string | Buffer;
}

/** Client-side TLS: the CA to trust, and a certificate for mutual TLS. */
export interface TlsClientOptions {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Default true: refuse servers whose certificate does not verify. */
  rejectUnauthorized?: boolean;
}

/** Bounds that apply from the moment a connection is accepted, before any TLS handshake. */
export interface AcceptLimits {
  /** Sockets open at once, TLS handshakes in progress included; past it new ones are closed at once. */
  maxConnections?: number;
  /** A TLS handshake not done within this time is cut off, in ms. */
  tlsHandshakeTimeoutMs?: number;
  /** A connection was closed at once because maxConnections sockets were open. */
  onRefused?: () => void;
  /**
   * Plain TCP: accepted connections read into one shared buffer
   * (shared-reads.ts); their bytes are valid during each read only. For
   * servers whose readers copy what they keep (FrameSocket does).
   */
  sharedReads?: boolean;
}

/**
 * Starts a TCP (or TLS) server; resolves with the server and the address it
 * bound (port 0 picks one). With TLS, `onConnection` gets sockets whose
 * handshake succeeded; failed handshakes go to `onTlsError`.
 */
export function listenTcp(
  address: ListenAddress,
  onConnection: (socket: Socket) => void,
  tls?: TlsServerOptions,
  onTlsError?: (error: Error) => void,
  limits: AcceptLimits = {},
): Promise<{ server: Server; host: string; port: number }> {
  let server: Server;
  if (tls === undefined) {
    server =
      limits.sharedReads === true
        ? createServer({ noDelay: true, pauseOnConnect: true }, (raw) => onConnection(adoptAccepted(raw)))
        : createServer({ noDelay: true }, onConnection);
  } else {
    const mutual = tls.ca !== undefined;
    server = createTlsServer({
      cert: tls.cert,
      key: tls.key,
      ...(mutual ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}),
      ...(limits.tlsHandshakeTimeoutMs === undefined ? {} : { handshakeTimeout: limits.tlsHandshakeTimeoutMs }),
    });
    // A socket that never finishes (or never starts) its TLS handshake is cut off after
    // tlsHandshakeTimeoutMs: Node's own handshakeTimeout only runs once a handshake has begun.
    const handshaking = new Map<string, NodeJS.Timeout>();
    const keyOf = (s: Socket) => `${s.remoteAddress}:${s.remotePort}`;
    const limit = limits.tlsHandshakeTimeoutMs;
    if (limit !== undefined) {
      server.on('connection', (raw: Socket) => {
        const key = keyOf(raw);
        handshaking.set(
          key,
          setTimeout(() => {
            handshaking.delete(key);
            raw.destroy();
          }, limit),
        );
        raw.once('close', () => {
          clearTimeout(handshaking.get(key));
          handshaking.delete(key);
        });
      });
    }
    server.on('secureConnection', (socket: TLSSocket) => {
      const key = keyOf(socket);
      clearTimeout(handshaking.get(key));
      handshaking.delete(key);
      onConnection(socket);
    });
    server.on('tlsClientError', (err: Error) => onTlsError?.(err));
  }
  // Counted by the server itself, so sockets still in their TLS handshake count too.
  if (limits.maxConnections !== undefined) server.maxConnections = limits.maxConnections;
  if (limits.onRefused !== undefined) server.on('drop', limits.onRefused);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      const bound = server.address();
      if (bound === null || typeof bound === 'string') {
        reject(new Error('server bound to a non-TCP address'));
        return;
      }
      resolve({ server, host: bound.address, port: bound.port });
    });
  });
}

/**
 * Opens a TCP (or, with `tls`, TLS) connection; rejects with CONNECTION_LOST
 * when it fails or takes longer than `timeoutMs`.
 */
export function connectTcp(host: string, port: number, timeoutMs: number, tls?: TlsClientOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket =
      tls === undefined
        ? connect({ host, port, noDelay: true })
        : tlsConnect({
            host,
            port,
            ca: tls.ca,
            cert: tls.cert,
            key: tls.key,
            rejectUnauthorized: tls.rejectUnauthorized ?? true,
            ...(isIP(host) === 0 ? { servername: host } : {}),
          });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new NodesetError('CONNECTION_LOST', `connecting to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once(tls === undefined ? 'connect' : 'secureConnect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new NodesetError('CONNECTION_LOST', `cannot connect to ${host}:${port}: ${err.message}`, { cause: err }));
    });
  });
}

/** True for addresses that only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.') || host === '::ffff:127.0.0.1';
}
