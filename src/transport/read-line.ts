/**
 * Reads one bounded line from a socket (the stream handshake).
 */
import type { Socket } from 'node:net';

/**
 * Reads the first line of a connection in paused mode and hands it over
 * (without the newline); the bytes after it stay in the socket for whoever
 * reads next. A connection that sends more than `maxBytes` without a newline
 * is destroyed.
 */
export function readFirstLine(socket: Socket, maxBytes: number, onLine: (line: string) => void): void {
  let head = Buffer.alloc(0);
  const onReadable = () => {
    for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
      head = Buffer.concat([head, chunk]);
      const nl = head.indexOf(0x0a);
      if (nl === -1) {
        if (head.length > maxBytes) socket.destroy();
        continue;
      }
      socket.off('readable', onReadable);
      const rest = head.subarray(nl + 1);
      if (rest.length > 0) socket.unshift(rest);
      onLine(head.subarray(0, nl).toString('utf8'));
      return;
    }
  };
  socket.on('readable', onReadable);
}
