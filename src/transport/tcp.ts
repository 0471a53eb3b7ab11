/**
 * TCP and TLS sockets: listening, connecting with a timeout, and loopback
 * checks.
 */
import { connect, createServer, isIP, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { NodesetError } from '../protocol/errors.js';

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
): Promise<{ server: Server; host: string; port: number }> {
  let server: Server;
  if (tls === undefined) {
    server = createServer({ noDelay: true }, onConnection);
  } else {
    const mutual = tls.ca !== undefined;
    server = createTlsServer({
      cert: tls.cert,
      key: tls.key,
      ...(mutual ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}),
    });
    server.on('secureConnection', (socket: TLSSocket) => onConnection(socket));
    server.on('tlsClientError', (err: Error) => onTlsError?.(err));
  }
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
