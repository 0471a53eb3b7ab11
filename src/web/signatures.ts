import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { NodesetError } from '../protocol/errors.js';
import { hmacSha256, signaturesEqual } from '../security/keys.js';

/** Headers of a signed request. */
export const KEY_HEADER = 'x-nodeset-key';
export const TIMESTAMP_HEADER = 'x-nodeset-timestamp';
export const SIGNATURE_HEADER = 'x-nodeset-signature';
/** A timestamp further than this from now is refused, in ms. */
export const DEFAULT_SIGNATURE_WINDOW_MS = 5 * 60 * 1000;
/** Signatures remembered to refuse replays within the window. */
const MAX_REMEMBERED_SIGNATURES = 100_000;

const keysFile = z
  .object({
    keys: z
      .array(
        z.object({ id: z.string().min(1), secret: z.string().min(16, 'secrets need at least 16 characters') }).strict(),
      )
      .min(1),
  })
  .strict();

/** The text a signature covers: timestamp, event(s) and message, one per line. */
export function signedText(timestamp: string, events: string[], message: string): string {
  return `${timestamp}\n${events.join(',')}\n${message}`;
}

/** Signs a request (for clients and tests): returns the three headers. */
export function signRequest(
  keyId: string,
  secret: string,
  events: string[],
  message: string,
  now = Date.now(),
): Record<string, string> {
  const timestamp = String(now);
  return {
    [KEY_HEADER]: keyId,
    [TIMESTAMP_HEADER]: timestamp,
    [SIGNATURE_HEADER]: hmacSha256(secret, signedText(timestamp, events, message)),
  };
}

/**
 * Shared keys for request signatures (HMAC-SHA256 over timestamp, events and
 * message; key id in a header), as the original's nodeset-web. Checks the
 * time window and refuses a signature seen before (replay).
 */
export class KeyRing {
  readonly windowMs: number;
  readonly #secrets: Map<string, string>;
  readonly #seen = new Map<string, number>();

  constructor(keys: { id: string; secret: string }[], windowMs = DEFAULT_SIGNATURE_WINDOW_MS) {
    this.#secrets = new Map(keys.map((k) => [k.id, k.secret]));
    this.windowMs = windowMs;
  }

  static load(path: string, windowMs?: number): KeyRing {
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
    return new KeyRing(parsed.data.keys, windowMs);
  }

  /** Throws PERMISSION_DENIED unless the headers carry a fresh, valid, unseen signature. */
  verify(
    headers: Record<string, string | string[] | undefined>,
    events: string[],
    message: string,
    now = Date.now(),
  ): void {
    const keyId = one(headers[KEY_HEADER]);
    const timestamp = one(headers[TIMESTAMP_HEADER]);
    const signature = one(headers[SIGNATURE_HEADER]);
    if (keyId === undefined || timestamp === undefined || signature === undefined) {
      throw new NodesetError(
        'PERMISSION_DENIED',
        `a signature is required (${KEY_HEADER}, ${TIMESTAMP_HEADER}, ${SIGNATURE_HEADER})`,
      );
    }
    const secret = this.#secrets.get(keyId);
    const at = Number(timestamp);
    if (secret === undefined) throw new NodesetError('PERMISSION_DENIED', `unknown key ${keyId}`);
    if (!Number.isFinite(at) || Math.abs(now - at) > this.windowMs) {
      throw new NodesetError('PERMISSION_DENIED', 'timestamp outside the signature window');
    }
    if (!signaturesEqual(signature, hmacSha256(secret, signedText(timestamp, events, message)))) {
      throw new NodesetError('PERMISSION_DENIED', 'bad signature');
    }
    this.#forgetOld(now);
    if (this.#seen.has(signature)) throw new NodesetError('PERMISSION_DENIED', 'replayed signature');
    // Bounded: past the cap the oldest entries go (they are the first to leave the window anyway).
    if (this.#seen.size >= MAX_REMEMBERED_SIGNATURES) {
      const oldest = this.#seen.keys().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest);
    }
    this.#seen.set(signature, at);
  }

  #forgetOld(now: number): void {
    for (const [sig, at] of this.#seen) if (Math.abs(now - at) > this.windowMs) this.#seen.delete(sig);
  }
}

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
