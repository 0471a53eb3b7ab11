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

/** HMAC-SHA256 of `data` under `key`, hex. */
export function hmacSha256(key: string | Buffer, data: string | Buffer): string {
  return createHmac('sha256', key).update(data).digest('hex');
}

/** Compares two hex signatures in constant time (false on any length mismatch). */
export function signaturesEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}
