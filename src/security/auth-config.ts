/**
 * The auth file: identities, their hashed tokens, permissions and connection
 * limits.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { NodesetError } from '../protocol/errors.js';
import { checkEventName, isValidName } from '../protocol/event-uri.js';
import { findToken, isTokenHash } from './keys.js';
import { ALLOW_ALL, type Rules } from './permissions.js';

const pattern = z.string().refine(
  (p) => {
    try {
      checkEventName(p, p, true);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'not a valid event pattern' },
);

/** A node name, or a prefix ending in `*` (`worker-*`). */
const namePattern = z
  .string()
  .refine((p) => isValidName(p.endsWith('*') ? p.slice(0, -1) || 'x' : p), 'not a node name or name prefix (name*)');

const rules = z
  .object({
    allow: z.array(pattern).default(['>']),
    deny: z.array(pattern).default([]),
  })
  .strict();

const identity = z
  .object({
    name: z.string().refine(isValidName, 'identity names are 1 to 255 letters, digits and _.:-'),
    token: z.string().refine(isTokenHash, {
      message: 'must be a token hash "sha256:<64 hex digits>" (make one with nodeset-dispatcher --hash-token)',
    }),
    publish: rules.optional(),
    subscribe: rules.optional(),
    maxConnections: z.number().int().positive().optional(),
    names: z.array(namePattern).optional(),
    query: z.boolean().optional(),
  })
  .strict();

const authFile = z
  .object({
    identities: z.array(identity).min(1, 'at least one identity is needed'),
  })
  .strict();

export interface Identity {
  readonly name: string;
  readonly publish: Rules;
  readonly subscribe: Rules;
  /** Connections allowed at once for this identity (null: only the global limit). */
  readonly maxConnections: number | null;
  /**
   * Node names this identity may use (exact, or a prefix ending in `*`);
   * null: any name that no other identity lists.
   */
  readonly names: readonly string[] | null;
  /** May ask the dispatcher for its stats and its list of nodes (QUERY). */
  readonly query: boolean;
}

function matchesName(pattern: string, name: string): boolean {
  return pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : pattern === name;
}

/** Identities with hashed tokens and their permissions. */
export class AuthConfig {
  readonly identities: readonly Identity[];
  readonly #hashes: string[];

  constructor(input: unknown, source = 'auth config') {
    const parsed = authFile.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue?.path.length ? issue.path.join('.') : '(top level)';
      throw new NodesetError('BAD_OPTION', `${source}: ${where}: ${issue?.message ?? 'invalid'}`);
    }
    const names = new Set<string>();
    for (const i of parsed.data.identities) {
      if (names.has(i.name)) throw new NodesetError('BAD_OPTION', `${source}: identity ${i.name} appears twice`);
      names.add(i.name);
    }
    this.identities = parsed.data.identities.map((i) => ({
      name: i.name,
      publish: i.publish ?? ALLOW_ALL,
      subscribe: i.subscribe ?? ALLOW_ALL,
      maxConnections: i.maxConnections ?? null,
      names: i.names ?? null,
      query: i.query ?? false,
    }));
    this.#hashes = parsed.data.identities.map((i) => i.token);
  }

  /** Reads a YAML or JSON file (JSON is YAML). */
  static load(path: string): AuthConfig {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (cause) {
      throw new NodesetError('BAD_OPTION', `cannot read auth file ${path}: ${(cause as Error).message}`, { cause });
    }
    let data: unknown;
    try {
      data = parseYaml(text);
    } catch (cause) {
      throw new NodesetError('BAD_OPTION', `auth file ${path} is not valid YAML or JSON: ${(cause as Error).message}`, {
        cause,
      });
    }
    return new AuthConfig(data, `auth file ${path}`);
  }

  /**
   * Whether `identity` may use the node name `name`: one of its own names
   * when it lists any, else any name no other identity lists.
   */
  mayUseName(identity: Identity, name: string): boolean {
    if (identity.names !== null) return identity.names.some((p) => matchesName(p, name));
    for (const other of this.identities) {
      if (other !== identity && other.names?.some((p) => matchesName(p, name))) return false;
    }
    return true;
  }

  /** The identity a token belongs to, or null. */
  authenticate(token: unknown): Identity | null {
    if (typeof token !== 'string' || token.length === 0 || token.length > 4096) return null;
    const i = findToken(token, this.#hashes);
    return i === -1 ? null : (this.identities[i] as Identity);
  }
}
