import { connect, createServer, type Server, type Socket } from 'node:net';
import { NodesetError } from '../protocol/errors.js';

export interface ListenAddress {
  host: string;
  port: number;
}

/** Starts a TCP server; resolves with the server and the address it bound (port 0 picks one). */
export function listenTcp(
  address: ListenAddress,
  onConnection: (socket: Socket) => void,
): Promise<{ server: Server; host: string; port: number }> {
  const server = createServer({ noDelay: true }, onConnection);
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

/** Opens a TCP connection; rejects with CONNECTION_LOST when it fails or takes longer than `timeoutMs`. */
export function connectTcp(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new NodesetError('CONNECTION_LOST', `connecting to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
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
