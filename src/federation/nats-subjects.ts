/**
 * The NATS subjects of the federation and the codecs of answers and
 * announcements: how a subject is named for a host, a pattern or an answer,
 * how a no-responders notice subject is parsed, and how answers and
 * announcements are packed (publishes: nats-wire.ts). Pure:
 * no connection, no timers (see docs/federation.md, "Subjects").
 *
 *   nodeset.h.<host>.<from>    publishes for one host from another (B/event, node@B/event)
 *   nodeset.all.<from>.<event> all-hosts publishes (*\/event); each dispatcher
 *                              subscribes only to the patterns its nodes want
 *   nodeset.r.<host>.<from>    answers (acks, replies, errors) for a host from another
 *   nodeset.n.<host>.<conn>.<r>.<to>
 *                              the NATS server's no-responders status for an
 *                              acked publish or request to <to>
 *   nodeset.n.<host>.p.<n>.<to>
 *                              the same for <n> plain publishes to <to> (lost)
 *   nodeset.q.<host>           who-subscribes queries (NATS request/reply)
 *   nodeset.id.<host>          "is a dispatcher of this name alive?" (request/reply)
 *   nodeset.dir                announcements and heartbeats of every dispatcher
 */
import type { Answer } from '../dispatcher/federation.js';
import { packr } from '../protocol/frames.js';
import type { Announcement } from './host-directory.js';

export const SUBJECT_PREFIX = 'nodeset';

/**
 * Host names in publish subjects are one token each: their dots (allowed in
 * host names) become `~` (not allowed in them), so a subject names its
 * destination and origin hosts unambiguously, and NATS permissions can let
 * a host publish only as itself (`nodeset.h.*.b`, `nodeset.all.b.>`).
 */
export function hostToken(host: string): string {
  return host.includes('.') ? host.replaceAll('.', '~') : host;
}

/**
 * The origin host a subject names (`nodeset.h.<host>.<from>`,
 * `nodeset.all.<from>.<event>`, `nodeset.r.<host>.<from>`); null for a
 * subject of none of these shapes.
 */
export function originOf(subject: string): string | null {
  const t = subject.split('.');
  if (t[0] !== SUBJECT_PREFIX) return null;
  const token =
    (t[1] === 'h' || t[1] === 'r') && t.length === 4 ? t[3] : t[1] === 'all' && t.length >= 4 ? t[2] : undefined;
  return token === undefined || token === '' ? null : token.replaceAll('~', '.');
}

export const subjects = {
  /** Publishes from `from` for `host`. */
  host: (host: string, from: string): string => `${SUBJECT_PREFIX}.h.${hostToken(host)}.${hostToken(from)}`,
  /** What this host subscribes to for its publishes: from any host. */
  hostIn: (host: string): string => `${SUBJECT_PREFIX}.h.${hostToken(host)}.*`,
  /** An all-hosts publish of `event` from `from`. */
  all: (from: string, event: string): string => `${SUBJECT_PREFIX}.all.${hostToken(from)}.${event}`,
  /** What a host subscribes to for an all-hosts pattern: from any host. */
  allIn: (pattern: string): string => `${SUBJECT_PREFIX}.all.*.${pattern}`,
  /** Answers (acks, replies, errors) for `host` from `from`. */
  answers: (host: string, from: string): string => `${SUBJECT_PREFIX}.r.${hostToken(host)}.${hostToken(from)}`,
  /** What this host subscribes to for its answers: from any host. */
  answersIn: (host: string): string => `${SUBJECT_PREFIX}.r.${hostToken(host)}.*`,
  /** Prefix of this host's no-responders notices (subscribed with `>`). */
  notices: (host: string): string => `${SUBJECT_PREFIX}.n.${host}.`,
  query: (host: string): string => `${SUBJECT_PREFIX}.q.${host}`,
  id: (host: string): string => `${SUBJECT_PREFIX}.id.${host}`,
  dir: `${SUBJECT_PREFIX}.dir`,
} as const;

/** The reply subject of an acked publish or request from `self` to `to`: the NATS server's no-responders status lands there. */
export function noticeSubject(self: string, conn: number, r: number, to: string): string {
  return `${subjects.notices(self)}${conn}.${r}.${to}`;
}

/** The reply subject of `count` plain publishes from `self` to `to`: a no-responders status there means they were lost. */
export function plainNoticeSubject(self: string, count: number, to: string): string {
  return `${subjects.notices(self)}p.${count}.${to}`;
}

/**
 * What a no-responders notice subject names: the host that was unreachable,
 * and the connection and request id it answers (null for plain publishes,
 * then `lost` says how many).
 */
export function parseNotice(
  prefix: string,
  subject: string,
): { answer: { conn: number; r: number } | null; lost: number; to: string } {
  const rest = subject.slice(prefix.length);
  if (rest.startsWith('p.')) {
    const [count, ...to] = rest.slice(2).split('.');
    const lost = Number(count);
    return { answer: null, lost: Number.isSafeInteger(lost) && lost > 0 ? lost : 1, to: to.join('.') };
  }
  const [conn, r, ...to] = rest.split('.');
  return { answer: { conn: Number(conn), r: Number(r) }, lost: 0, to: to.join('.') };
}

export function encodeAnswer(answer: Answer): Uint8Array {
  return packr.pack(answer);
}

export function decodeAnswer(data: Uint8Array): Answer {
  return packr.unpack(data) as Answer;
}

export function encodeAnnouncement(a: Announcement): Uint8Array {
  return packr.pack(a);
}

export function decodeAnnouncement(data: Uint8Array): Announcement {
  return packr.unpack(data) as Announcement;
}

/** The event of an all-hosts URI (`*\/event` → `event`). */
export function allHostsEvent(uri: string): string {
  return uri.slice(uri.indexOf('/') + 1);
}
