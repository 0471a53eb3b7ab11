import { readFileSync } from 'node:fs';
import { NodesetError } from '../protocol/errors.js';

/**
 * Secrets of the monitor and the manhole come from the environment or from a
 * file, never from a flag: a command line is visible to every user of the
 * machine (`ps`, /proc/PID/cmdline).
 */

/** The environment variable that carries the monitor token (for the dispatcher and nodeset-monitor alike). */
export const MONITOR_TOKEN_ENV = 'NODESET_MONITOR_TOKEN';

/** The first line of a secret file, trimmed. A missing, unreadable or empty file stops the command. */
export function readSecretFile(option: string, path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new NodesetError('BAD_OPTION', `${option}: cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  const line = (text.split(/\r?\n/, 1)[0] ?? '').trim();
  if (line === '') throw new NodesetError('BAD_OPTION', `${option}: ${path} is empty`);
  return line;
}

/**
 * The secret in the file named by `option` when one is given, else the value
 * of the environment variable `env`; undefined when neither is set. Both at
 * once is a conflict, not a precedence rule to remember.
 */
export function secretFromFileOrEnv(option: string, file: string | undefined, env: string): string | undefined {
  const fromEnv = process.env[env];
  const hasEnv = fromEnv !== undefined && fromEnv !== '';
  if (file !== undefined && hasEnv) {
    throw new NodesetError('BAD_OPTION', `give the secret once: ${option} or ${env}, not both`);
  }
  if (file !== undefined) return readSecretFile(option, file);
  return hasEnv ? fromEnv : undefined;
}
