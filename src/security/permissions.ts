/**
 * Permission rules: allow and deny patterns for publish and subscribe, and
 * how they apply to wildcard subscriptions.
 */
import { matchesPattern } from '../protocol/event-uri.js';

/** Allow and deny patterns (wildcard syntax) for one kind of operation. */
export interface Rules {
  allow: string[];
  deny: string[];
}

export const ALLOW_ALL: Rules = { allow: ['>'], deny: [] };

/** True when every event matching `pattern` also matches `cover`. */
export function covers(cover: string, pattern: string): boolean {
  const c = cover.split('.');
  const p = pattern.split('.');
  for (let i = 0; i < c.length; i++) {
    if (c[i] === '>') return p.length > i;
    if (i >= p.length || p[i] === '>') return false;
    if (c[i] !== '*' && c[i] !== p[i]) return false;
  }
  return c.length === p.length;
}

/** True when some event matches both patterns. */
export function intersects(a: string, b: string): boolean {
  const x = a.split('.');
  const y = b.split('.');
  for (let i = 0; i < x.length && i < y.length; i++) {
    if (x[i] === '>' || y[i] === '>') return true;
    if (x[i] !== '*' && y[i] !== '*' && x[i] !== y[i]) return false;
  }
  return x.length === y.length;
}

/** May an event with this (concrete) name be published? Deny wins over allow. */
export function mayPublish(rules: Rules, event: string): boolean {
  for (const d of rules.deny) if (matchesPattern(d, event)) return false;
  for (const a of rules.allow) if (matchesPattern(a, event)) return true;
  return false;
}

/**
 * May this subscription pattern be used? Allowed when an allow pattern covers
 * all it can match and no deny pattern covers it. A deny pattern that covers
 * only part of it (`orders.internal` under `orders.*`) is applied at delivery:
 * see denyFilter.
 */
export function maySubscribe(rules: Rules, pattern: string): boolean {
  for (const d of rules.deny) if (covers(d, pattern)) return false;
  for (const a of rules.allow) if (covers(a, pattern)) return true;
  return false;
}

/** The deny patterns that overlap a permitted subscription: events matching them are not delivered to it. */
export function denyFilter(rules: Rules, pattern: string): string[] | null {
  const overlapping = rules.deny.filter((d) => intersects(d, pattern));
  return overlapping.length === 0 ? null : overlapping;
}
