import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { decodeHeader, FrameDecoder, headerOf } from '../src/protocol/decoder.js';
import { encodeFrame, FrameKind, PROTOCOL_VERSION } from '../src/protocol/frames.js';

export interface RawFrame {
  kind: number;
  header: unknown;
  payload: Buffer;
}

/** A MSG frame carrying a message: not a publisher's announce (MSG `direct` = 2, no payload). */
export function isMessage(f: RawFrame): boolean {
  return f.kind === FrameKind.MSG && (f.header as unknown[])[6] !== 2;
}

/** A hand-driven protocol client over a real socket, for feeding the dispatcher bad input. */
export class RawClient {
  readonly socket: Socket;
  readonly frames: RawFrame[] = [];
  closed = false;
  /** Answers the dispatcher's PINGs (a client that never does is dropped once it reads nothing more). */
  answerPings = true;
  #waiters: { pred: (f: RawFrame) => boolean; resolve(f: RawFrame): void }[] = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    const decoder = new FrameDecoder(
      {
        frame: (kind, buf, headerStart, payloadStart, end) => {
          const header = decodeHeader(headerOf(buf, headerStart, payloadStart));
          const f = { kind, header, payload: Buffer.from(buf.subarray(payloadStart, end)) };
          if (kind === FrameKind.PING && this.answerPings) socket.write(encodeFrame(FrameKind.PONG));
          this.frames.push(f);
          this.#waiters = this.#waiters.filter((w) => {
            if (!w.pred(f)) return true;
            w.resolve(f);
            return false;
          });
        },
        refused: () => {},
      },
      { maxPayloadBytes: 64 * 1024 * 1024 },
    );
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
    });
  }

  static async connect(port: number, hello: false | string = 'raw'): Promise<RawClient> {
    const socket = connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    const client = new RawClient(socket);
    if (hello !== false) {
      client.send(encodeFrame(FrameKind.HELLO, { v: PROTOCOL_VERSION, name: hello }));
      await client.next((f) => f.kind === FrameKind.WELCOME);
    }
    return client;
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The first frame (already received or future) matching `pred`. */
  next(pred: (f: RawFrame) => boolean, timeoutMs = 5000): Promise<RawFrame> {
    const seen = this.frames.find(pred);
    if (seen !== undefined) {
      this.frames.splice(this.frames.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no matching frame in time')), timeoutMs);
      this.#waiters.push({
        pred,
        resolve: (f) => {
          clearTimeout(timer);
          this.frames.splice(this.frames.indexOf(f), 1);
          resolve(f);
        },
      });
    });
  }

  nextError(timeoutMs = 5000): Promise<{ code: string; message: string; r?: number; fatal?: boolean }> {
    return this.next((f) => f.kind === FrameKind.ERROR, timeoutMs).then((f) => f.header as never);
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    if (this.closed) return;
    const timer = setTimeout(() => this.socket.destroy(), timeoutMs);
    await once(this.socket, 'close');
    clearTimeout(timer);
  }

  destroy(): void {
    this.socket.destroy();
  }
}
