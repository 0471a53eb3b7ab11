/**
 * Payload encoding: JSON, binary and empty payloads and their content types.
 */
import { NodesetError } from './errors.js';
import { ContentType } from './frames.js';

const EMPTY = Buffer.alloc(0);

export interface EncodedPayload {
  ct: ContentType;
  bytes: Buffer;
}

/**
 * Encodes a message for the wire: bytes stay bytes (BINARY), `undefined`
 * is EMPTY, anything else is JSON.
 */
export function encodePayload(message: unknown): EncodedPayload {
  if (message === undefined) return { ct: ContentType.EMPTY, bytes: EMPTY };
  if (message instanceof Uint8Array) {
    const bytes = Buffer.isBuffer(message)
      ? message
      : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
    return { ct: ContentType.BINARY, bytes };
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(message);
  } catch (cause) {
    throw new NodesetError('VALIDATION', `message cannot be encoded as JSON: ${(cause as Error).message}`, { cause });
  }
  if (text === undefined) throw new NodesetError('VALIDATION', `a ${typeof message} cannot be sent as a message`);
  return { ct: ContentType.JSON, bytes: Buffer.from(text) };
}

/** Decodes payload bytes by content type. Throws BAD_FRAME on undecodable JSON. */
export function decodePayload(ct: number, bytes: Buffer): unknown {
  switch (ct) {
    case ContentType.JSON:
      try {
        return JSON.parse(bytes.toString('utf8'));
      } catch (cause) {
        throw new NodesetError('BAD_FRAME', 'payload is not valid JSON', { cause });
      }
    case ContentType.BINARY:
      return bytes;
    case ContentType.EMPTY:
      return undefined;
    default:
      throw new NodesetError('BAD_FRAME', `unknown content type ${ct}`);
  }
}
