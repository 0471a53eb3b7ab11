/**
 * The default pino logger of nodes and collections (level from
 * NODESET_LOGLEVEL).
 */
import pino, { type Logger } from 'pino';

let shared: Logger | null = null;

/**
 * The logger nodes use when none is given: JSON on stderr (stdout stays the
 * application's), level from NODESET_LOGLEVEL, default `warn`.
 */
export function defaultLogger(): Logger {
  shared ??= pino({ level: process.env.NODESET_LOGLEVEL ?? 'warn' }, pino.destination({ fd: 2, sync: true }));
  return shared;
}
