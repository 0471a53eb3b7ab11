/**
 * Event URIs (`[node@][host/]event`), event names and wildcards, and the one
 * name grammar of nodes, hosts and groups.
 */
import { NodesetError } from './errors.js';

/**
 * Event URIs, as in the original framework:
 *   `event`             any node on this host
 *   `host/event`        the dispatcher of `host` (`*` = every host)
 *   `node@host/event`   the node named `node` on `host`
 * Event names are dot-separated tokens. In subscriptions `*` matches exactly
 * one token and `>` (last token only) matches one or more trailing tokens.
 */
export interface EventUri {
  /** Target node name, or null for any node. */
  readonly node: string | null;
  /** Target host name (`*` for every host), or null for the local host. */
  readonly host: string | null;
  /** The event name (may hold wildcards when parsed as a subscription). */
  readonly event: string;
  /** True when the event name holds `*` or `>` tokens. */
  readonly wildcard: boolean;
}

export const MAX_URI_LENGTH = 1024;
export const ALL_HOSTS = '*';

const NAME_RE = /^[A-Za-z0-9_.:-]+$/;
// A token may hold anything printable except the separators and wildcards.
const TOKEN_RE = /^[^\s./@*>]+$/;

function bad(uri: string, why: string): NodesetError {
  return new NodesetError('BAD_URI', `bad event URI ${JSON.stringify(uri)}: ${why}`);
}

/** Validates an event name; returns true when it holds wildcard tokens. */
export function checkEventName(uri: string, event: string, allowWildcards: boolean): boolean {
  if (event.length === 0) throw bad(uri, 'empty event name');
  const tokens = event.split('.');
  let wildcard = false;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as string;
    if (token === '*' || token === '>') {
      if (!allowWildcards) throw bad(uri, 'wildcards are only allowed in subscriptions');
      if (token === '>' && i !== tokens.length - 1) throw bad(uri, "'>' must be the last token");
      wildcard = true;
    } else if (!TOKEN_RE.test(token)) {
      throw bad(uri, token === '' ? 'empty token' : `invalid token ${JSON.stringify(token)}`);
    }
  }
  return wildcard;
}

/**
 * Parses an event URI. `allowWildcards` is true for subscriptions and false
 * for publishes. Throws a NodesetError with code BAD_URI on any malformed URI.
 */
export function parseEventUri(uri: unknown, allowWildcards: boolean): EventUri {
  if (typeof uri !== 'string') throw new NodesetError('BAD_URI', 'event URI must be a string');
  if (uri.length === 0) throw bad(uri, 'empty');
  if (uri.length > MAX_URI_LENGTH) throw bad(uri.slice(0, 40), `longer than ${MAX_URI_LENGTH} characters`);

  const slash = uri.indexOf('/');
  if (slash === -1) {
    if (uri.includes('@')) throw bad(uri, "'node@host' needs an event: use 'node@host/event'");
    return { node: null, host: null, event: uri, wildcard: checkEventName(uri, uri, allowWildcards) };
  }

  const target = uri.slice(0, slash);
  const event = uri.slice(slash + 1);
  if (event.includes('/')) throw bad(uri, "more than one '/'");
  const at = target.indexOf('@');
  const node = at === -1 ? null : target.slice(0, at);
  const host = at === -1 ? target : target.slice(at + 1);
  if (node !== null && !NAME_RE.test(node)) throw bad(uri, 'invalid node name');
  if (host !== ALL_HOSTS && !NAME_RE.test(host)) throw bad(uri, 'invalid host name');
  if (node !== null && host === ALL_HOSTS) throw bad(uri, "a node target needs a host, not '*'");
  return { node, host, event, wildcard: checkEventName(uri, event, allowWildcards) };
}

/** Formats the parts of an event URI back to its text form. */
export function formatEventUri(parts: Pick<EventUri, 'node' | 'host' | 'event'>): string {
  if (parts.host === null) return parts.event;
  return parts.node === null ? `${parts.host}/${parts.event}` : `${parts.node}@${parts.host}/${parts.event}`;
}

/** True when a concrete event name matches a subscription pattern. */
export function matchesPattern(pattern: string, event: string): boolean {
  if (pattern === event) return true;
  const p = pattern.split('.');
  const e = event.split('.');
  for (let i = 0; i < p.length; i++) {
    const token = p[i];
    if (token === '>') return e.length > i;
    if (i >= e.length) return false;
    if (token !== '*' && token !== e[i]) return false;
  }
  return p.length === e.length;
}

/** True for names usable as node or host names. */
export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && name.length > 0 && name.length <= 255 && NAME_RE.test(name);
}
