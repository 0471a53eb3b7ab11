import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { NodesetError } from '../protocol/errors.js';
import { bytesEqual, decodeHexStrict, hmacSha256, sha256Hex } from '../security/keys.js';
import { ReplayCache } from './replay-cache.js';

/** Headers of a signed request. */
export const KEY_HEADER = 'x-nodeset-key';
export const TIMESTAMP_HEADER = 'x-nodeset-timestamp';
export const SIGNATURE_HEADER = 'x-nodeset-signature';
/** A timestamp further than this from now is refused, in ms. */
export const DEFAULT_SIGNATURE_WINDOW_MS = 5 * 60 * 1000;
/**
 * Signatures remembered at most to refuse replays: every signature accepted
 * in the last two windows (a timestamp may be early or late by a window).
 * About 100 bytes each; past it new signed requests are refused (LIMIT_EXCEEDED).
 */
export const DEFAULT_MAX_REMEMBERED_SIGNATURES = 1_000_000;
/** First line of the signed text: names the scheme, so a future one cannot be confused with it. */
const SCHEME = 'nodeset-hmac-sha256-v2';
const MAC_BYTES = 32;
const TIMESTAMP_RE = /^[0-9]{1,15}$/;

const keysFile = z
  .object({
    keys: z
      .array(
        z
          .object({
            id: z.string().regex(/^[\x21-\x7e]+$/, 'key ids are printable ASCII without spaces'),
            secret: z.string().min(16, 'secrets need at least 16 characters'),
          })
          .strict(),
      )
      .min(1),
  })
  .strict();

/** What a signature covers besides its key and time: the request itself. */
export interface SignedRequest {
  /** HTTP method, e.g. `POST`. */
  method: string;
  /** The request target exactly as sent: path and query, e.g. `/subscribe?event=orders.*`. */
  target: string;
  /** The body bytes as sent; none for a request without a body. */
  body?: string | Uint8Array;
}

/**
 * The text a signature covers, one field per line (no field can hold a
 * line break): scheme, key id, timestamp, method, target, SHA-256 of the body.
 */
export function signedText(keyId: string, timestamp: string, request: SignedRequest): string {
  return [SCHEME, keyId, timestamp, request.method.toUpperCase(), request.target, sha256Hex(request.body ?? '')].join(
    '\n',
  );
}

/** Signs a request (for clients and tests): returns the three headers to send with it. */
export function signRequest(
  keyId: string,
  secret: string,
  request: SignedRequest,
  now = Date.now(),
): Record<string, string> {
  const timestamp = String(now);
  return {
    [KEY_HEADER]: keyId,
    [TIMESTAMP_HEADER]: timestamp,
    [SIGNATURE_HEADER]: hmacSha256(secret, signedText(keyId, timestamp, request)).toString('hex'),
  };
}

export interface KeyRingOptions {
  /** A timestamp further than this from now is refused, in ms. Default 5 minutes. */
  windowMs?: number;
  /** Signatures remembered at most to refuse replays. Default 1,000,000. */
  maxRemembered?: number;
}

/**
 * Shared keys for request signatures (HMAC-SHA256 over the method, target
 * and body of the request, the key id and a timestamp), as the original's
 * nodeset-web. Checks the time window and refuses a signature seen before.
 */
export class KeyRing {
  readonly windowMs: number;
  readonly #secrets: Map<string, string>;
  readonly #seen: ReplayCache;

  constructor(keys: { id: string; secret: string }[], options: KeyRingOptions = {}) {
    this.windowMs = options.windowMs ?? DEFAULT_SIGNATURE_WINDOW_MS;
    const max = options.maxRemembered ?? DEFAULT_MAX_REMEMBERED_SIGNATURES;
    if (!Number.isInteger(this.windowMs) || this.windowMs < 1) {
      throw new NodesetError('BAD_OPTION', `signature window must be an integer >= 1 ms, got ${this.windowMs}`);
    }
    if (!Number.isInteger(max) || max < 1) {
      throw new NodesetError('BAD_OPTION', `signatures remembered must be an integer >= 1, got ${max}`);
    }
    this.#secrets = new Map(keys.map((k) => [k.id, k.secret]));
    this.#seen = new ReplayCache(2 * this.windowMs, max);
  }

  static load(path: string, options: KeyRingOptions = {}): KeyRing {
    let data: unknown;
    try {
      data = parseYaml(readFileSync(path, 'utf8'));
    } catch (cause) {
      throw new NodesetError('BAD_OPTION', `keys file ${path}: ${(cause as Error).message}`, { cause });
    }
    const parsed = keysFile.safeParse(data);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new NodesetError(
        'BAD_OPTION',
        `keys file ${path}: ${issue?.path.join('.') || '(top level)'}: ${issue?.message}`,
      );
    }
    return new KeyRing(parsed.data.keys, options);
  }

  /** Signatures remembered now (accepted within the last two windows). */
  get remembered(): number {
    return this.#seen.size;
  }

  /**
   * Throws PERMISSION_DENIED unless the headers carry a fresh, valid, unseen
   * signature of `request`; LIMIT_EXCEEDED when too many signatures are
   * remembered to take one more without forgetting one still in its window.
   */
  verify(headers: Record<string, string | string[] | undefined>, request: SignedRequest, now = Date.now()): void {
    const keyId = one(headers, KEY_HEADER);
    const timestamp = one(headers, TIMESTAMP_HEADER);
    const signature = one(headers, SIGNATURE_HEADER);
    if (keyId === undefined || timestamp === undefined || signature === undefined) {
      throw new NodesetError(
        'PERMISSION_DENIED',
        `a signature is required (${KEY_HEADER}, ${TIMESTAMP_HEADER}, ${SIGNATURE_HEADER})`,
      );
    }
    const secret = this.#secrets.get(keyId);
    if (secret === undefined) throw new NodesetError('PERMISSION_DENIED', `unknown key ${JSON.stringify(keyId)}`);
    if (!TIMESTAMP_RE.test(timestamp)) {
      throw new NodesetError('PERMISSION_DENIED', `${TIMESTAMP_HEADER} must be ms since the epoch, digits only`);
    }
    const at = Number(timestamp);
    if (Math.abs(now - at) > this.windowMs) {
      throw new NodesetError('PERMISSION_DENIED', 'timestamp outside the signature window');
    }
    const given = decodeHexStrict(signature, MAC_BYTES);
    if (given === null) throw new NodesetError('PERMISSION_DENIED', `${SIGNATURE_HEADER} must be 64 hex digits`);
    const expected = hmacSha256(secret, signedText(keyId, timestamp, request));
    if (!bytesEqual(given, expected)) throw new NodesetError('PERMISSION_DENIED', 'bad signature');
    // Remembered by its bytes: another spelling of the same signature is the same entry.
    switch (this.#seen.remember(expected.toString('latin1'), at + this.windowMs, now)) {
      case 'replay':
        throw new NodesetError('PERMISSION_DENIED', 'replayed signature');
      case 'full':
        throw new NodesetError(
          'LIMIT_EXCEEDED',
          `too many signed requests within the signature window (${this.#seen.capacity} remembered); try again later`,
        );
    }
  }
}

/** A header given once; undefined when missing or repeated. */
function one(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name];
  if (Array.isArray(v)) return v.length === 1 ? v[0] : undefined;
  return v;
}
