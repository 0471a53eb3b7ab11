/**
 * Message headers: string names to string values that travel with a
 * publish, apart from its payload (tracing context, correlation ids). They
 * are bounded so that they always fit in a frame header: at most
 * MAX_HEADER_ENTRIES entries and MAX_HEADERS_BYTES bytes of names and values.
 */
import { NodesetError } from './errors.js';

/** Headers of a message: names to values, both strings. */
export type MessageHeaders = Record<string, string>;

/** Entries a message may carry. */
export const MAX_HEADER_ENTRIES = 32;
/** UTF-8 bytes of all names and values together. */
export const MAX_HEADERS_BYTES = 4096;
/** Characters of one header name. */
export const MAX_HEADER_NAME_CHARS = 128;
/** Header names: HTTP token characters (RFC 9110), so the HTTP bridge can carry them too. */
const NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/** What a message without headers shows its handler (shared, frozen). */
export const NO_HEADERS: Readonly<MessageHeaders> = Object.freeze({});

/**
 * Checks headers given by a caller or read from the wire. Undefined, null and
 * an empty map are "no headers" (null). A malformed map is refused with
 * `code` (BAD_OPTION from a caller, BAD_FRAME from the wire); one over the
 * bounds with TOO_LARGE. Never truncated.
 */
export function checkHeaders(value: unknown, code: 'BAD_OPTION' | 'BAD_FRAME'): MessageHeaders | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
    throw new NodesetError(code, 'headers must be a map of string names to string values');
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw new NodesetError(code, 'headers must be a plain object of string names to string values');
  }
  const names = Object.keys(value);
  if (names.length === 0) return null;
  if (names.length > MAX_HEADER_ENTRIES) {
    throw new NodesetError('TOO_LARGE', `${names.length} headers, over the limit of ${MAX_HEADER_ENTRIES}`);
  }
  let bytes = 0;
  for (const name of names) {
    if (name.length > MAX_HEADER_NAME_CHARS || !NAME.test(name) || name === '__proto__') {
      throw new NodesetError(
        code,
        `header name ${JSON.stringify(name.slice(0, 64))} is not a token of 1 to ${MAX_HEADER_NAME_CHARS} characters`,
      );
    }
    const v = (value as Record<string, unknown>)[name];
    if (typeof v !== 'string') throw new NodesetError(code, `header ${name} must be a string, got ${typeName(v)}`);
    bytes += Buffer.byteLength(name) + Buffer.byteLength(v);
  }
  if (bytes > MAX_HEADERS_BYTES) {
    throw new NodesetError('TOO_LARGE', `headers are ${bytes} bytes, over the limit of ${MAX_HEADERS_BYTES}`);
  }
  return value as MessageHeaders;
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}
