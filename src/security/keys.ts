import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Key handling shared by every entry point that checks a secret: the
 * dispatcher's tokens, the manhole, and the HTTP bridge's signatures.
 * Secrets are stored hashed and compared in constant time.
 */
const HASH_PREFIX = 'sha256:';

/** The stored form of a token: `sha256:<hex>`. Tokens are random secrets, so a plain digest suffices. */
export function hashToken(token: string): string {
  return HASH_PREFIX + createHash('sha256').update(token, 'utf8').digest('hex');
}

export function isTokenHash(value: string): boolean {
  return /^sha256:[0-9a-f]{64}$/.test(value);
}

function digestOf(hash: string): Buffer {
  return Buffer.from(hash.slice(HASH_PREFIX.length), 'hex');
}

/**
 * Returns the index of the stored hash that `token` matches, or -1. Every
 * candidate is compared, in constant time, whatever matches first.
 */
export function findToken(token: string, hashes: readonly string[]): number {
  const digest = createHash('sha256').update(token, 'utf8').digest();
  let found = -1;
  for (let i = 0; i < hashes.length; i++) {
    if (timingSafeEqual(digest, digestOf(hashes[i] as string)) && found === -1) found = i;
  }
  return found;
}

/** HMAC-SHA256 of `data` under `key`, 32 bytes. */
export function hmacSha256(key: string | Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** SHA-256 of `data`, hex. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Decodes hex text that is exactly `bytes` bytes long (either case), or
 * null: no trailing characters, no odd digit, nothing a lenient decoder
 * would skip. Two spellings of one value decode to the same bytes.
 */
export function decodeHexStrict(text: string, bytes: number): Buffer | null {
  if (text.length !== bytes * 2 || !/^[0-9a-fA-F]*$/.test(text)) return null;
  return Buffer.from(text, 'hex');
}

/** Compares two byte strings in constant time (false on a length mismatch or when empty). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}
