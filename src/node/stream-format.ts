/**
 * Formats of direct streams (raw bytes, newline-delimited JSON): how
 * StreamNode encodes and decodes stream data.
 */
import { Transform } from 'node:stream';

/**
 * How a stream's chunks become bytes and back, as the original's formatters.
 * `raw` sends bytes as they are; `json` sends one JSON value per line.
 */
export interface StreamFormat {
  readonly name: string;
  /** True when writers pass values (objects) rather than bytes. */
  readonly objectMode: boolean;
  encode(chunk: unknown): Buffer;
  /** A transform from received bytes to chunks; null: the bytes are the chunks. */
  decoder(): Transform | null;
}

export const RAW_FORMAT: StreamFormat = {
  name: 'raw',
  objectMode: false,
  encode: (chunk) => (Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array | string)),
  decoder: () => null,
};

/** Largest JSON line accepted by the json decoder, in bytes. */
export const MAX_JSON_LINE_BYTES = 16 * 1024 * 1024;

export const JSON_FORMAT: StreamFormat = {
  name: 'json',
  objectMode: true,
  encode: (chunk) => Buffer.from(`${JSON.stringify(chunk)}\n`),
  decoder: () => {
    let rest = '';
    return new Transform({
      readableObjectMode: true,
      transform(data: Buffer, _enc, done) {
        const lines = (rest + data.toString('utf8')).split('\n');
        rest = lines.pop() ?? '';
        if (rest.length > MAX_JSON_LINE_BYTES) {
          done(new Error(`JSON line longer than ${MAX_JSON_LINE_BYTES} bytes`));
          return;
        }
        try {
          for (const line of lines) if (line.length > 0) this.push(JSON.parse(line));
        } catch (err) {
          done(err as Error);
          return;
        }
        done();
      },
      flush(done) {
        try {
          if (rest.trim().length > 0) this.push(JSON.parse(rest));
          done();
        } catch (err) {
          done(err as Error);
        }
      },
    });
  },
};

export const BUILTIN_FORMATS: readonly StreamFormat[] = [RAW_FORMAT, JSON_FORMAT];
