import type { Logger } from 'pino';
import { Node, type NodeOptions } from '../node/node.js';
import { NodesetError } from '../protocol/errors.js';
import { parseEventUri } from '../protocol/event-uri.js';
import { type NodeCommandOptions, nodeConnectionOptions } from './common.js';

/** What every "cannot reach the dispatcher" message ends with. */
export const START_HINT = 'start one with: npx nodeset-dispatcher';

export interface ConnectOptions {
  /**
   * One-shot commands (publish, request) fail at the first refused
   * connection; long-running ones (subscribe, reply) say once that they wait,
   * and keep retrying.
   */
  wait: boolean;
  /** One-shot commands give up after this long even when the attempt hangs. */
  timeoutMs?: number;
  node?: Omit<NodeOptions, 'dispatcherUrl' | 'name' | 'token' | 'tls' | 'logger' | 'startTimeoutMs'>;
}

/**
 * Starts a node for a command. Failures to reach the dispatcher become one
 * line with a hint, never a stack trace; errors once connected are logged as
 * warnings.
 */
export function connectNode(opts: NodeCommandOptions, logger: Logger, how: ConnectOptions): Promise<Node> {
  const node = new Node({
    ...nodeConnectionOptions(opts),
    ...how.node,
    logger,
    startTimeoutMs: how.wait ? 0 : (how.timeoutMs ?? 5000),
  });
  let waiting = false;
  return new Promise<Node>((resolve, reject) => {
    node.on('error', (err) => {
      const code = (err as NodesetError).code;
      if (node.connected || code !== 'CONNECTION_LOST') {
        logger.warn({ err }, err.message);
        return;
      }
      if (!how.wait) {
        reject(new NodesetError('CONNECTION_LOST', `${err.message}; is a dispatcher running? ${START_HINT}`));
        void node.stop();
        return;
      }
      if (!waiting) {
        waiting = true;
        process.stderr.write(
          `waiting for the dispatcher at ${opts.dispatcherUrl.replace(/\/\/[^@/]*@/, '//')} (${err.message}); retrying; ${START_HINT}\n`,
        );
      }
    });
    node.on('connect', () => {
      if (waiting) process.stderr.write('connected to the dispatcher\n');
    });
    node.start().then(resolve, (err: unknown) => {
      void node.stop();
      reject(err);
    });
  });
}

/** Checks an event URI given on the command line: a bad one is a usage error (exit 2). */
export function checkUriOption(option: string, uri: string, wildcards: boolean): string {
  try {
    parseEventUri(uri, wildcards);
  } catch (err) {
    throw new NodesetError('BAD_OPTION', `${option}: ${(err as Error).message}`);
  }
  return uri;
}

/** A message typed on the command line: JSON when it parses as JSON, else the text itself (or always text with raw). */
export function parseMessage(text: string, raw: boolean): unknown {
  if (raw) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A message as printed: text as is, bytes as they are, anything else as JSON. */
export function formatRaw(message: unknown): string | Buffer {
  if (typeof message === 'string' || Buffer.isBuffer(message)) return message;
  return JSON.stringify(message ?? null);
}

/** A message inside a JSON line: bytes as base64. */
export function jsonFields(message: unknown): { message: unknown; encoding?: 'base64' } {
  if (Buffer.isBuffer(message)) return { message: message.toString('base64'), encoding: 'base64' };
  return { message: message ?? null };
}
