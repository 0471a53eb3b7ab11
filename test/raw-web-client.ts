// Hand-driven HTTP and WebSocket clients over real sockets, for feeding the
// web bridge bytes no well-behaved client would send.
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

/** A raw TCP client that completes the WebSocket upgrade of `/ws`, then writes whatever bytes it is given. */
export async function rawUpgrade(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(
    'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  let text = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer) => {
      text += c.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      // Bytes past the head are the first frames: hand them back to the stream.
      if (text.length > end + 4) socket.unshift(Buffer.from(text.slice(end + 4), 'latin1'));
      if (text.startsWith('HTTP/1.1 101')) resolve();
      else reject(new Error(`no upgrade: ${text}`));
    };
    socket.on('data', onData);
  });
  return socket;
}

/** A masked frame (as clients must send): `opcode` with FIN set, any length. */
export function maskedFrame(opcode: number, payload: Uint8Array, mask = [1, 2, 3, 4]): Buffer {
  const body = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)));
  let head: Buffer;
  if (payload.length < 126) head = Buffer.from([0x80 | opcode, 0x80 | payload.length]);
  else if (payload.length < 65536) {
    head = Buffer.from([0x80 | opcode, 0x80 | 126, 0, 0]);
    head.writeUInt16BE(payload.length, 2);
  } else {
    head = Buffer.from([0x80 | opcode, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0]);
    head.writeUInt32BE(payload.length, 6);
  }
  return Buffer.concat([head, Buffer.from(mask), body]);
}

/** A masked text frame carrying `payload`. */
export function maskedText(payload: Uint8Array): Buffer {
  return maskedFrame(0x1, payload);
}

/** The frames a server sent (unmasked): text payloads and the close code, if any; stops at a torn frame. */
export function serverFrames(bytes: Buffer): { texts: string[]; closeCode: number | null } {
  const texts: string[] = [];
  let closeCode: number | null = null;
  let at = 0;
  while (at + 2 <= bytes.length) {
    const opcode = (bytes[at] as number) & 0x0f;
    let length = (bytes[at + 1] as number) & 0x7f;
    let start = at + 2;
    if (length === 126) {
      if (start + 2 > bytes.length) break;
      length = bytes.readUInt16BE(start);
      start += 2;
    } else if (length === 127) {
      if (start + 8 > bytes.length) break;
      length = Number(bytes.readBigUInt64BE(start));
      start += 8;
    }
    if (start + length > bytes.length) break;
    const payload = bytes.subarray(start, start + length);
    if (opcode === 0x1) texts.push(payload.toString('utf8'));
    if (opcode === 0x8) closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
    at = start + length;
  }
  return { texts, closeCode };
}

/** The close code the server sent before closing `socket`, or null. */
export async function closeCode(socket: Socket): Promise<number | null> {
  let bytes = Buffer.alloc(0);
  socket.on('data', (c: Buffer) => (bytes = Buffer.concat([bytes, c])));
  if (!socket.closed) await once(socket, 'close');
  return serverFrames(bytes).closeCode;
}
