import type { Server, Socket } from 'node:net';
import { start as startRepl } from 'node:repl';
import { type Command, Option } from 'commander';
import type { Logger } from 'pino';
import { NodesetError } from '../protocol/errors.js';
import { FailureBackoff, type FailureBackoffOptions } from '../security/failure-backoff.js';
import { findToken, hashToken } from '../security/keys.js';
import { readFirstLine } from '../transport/read-line.js';
import { listenTcp } from '../transport/tcp.js';
import { intOption } from './config.js';
import { secretFromFileOrEnv } from './secrets.js';

export interface ManholeOptions {
  manhole?: number;
  manholeTokenFile?: string;
  /** Only ever accepted from NODESET_MANHOLE_TOKEN; the flag form is refused. */
  manholeToken?: string;
}

/** The environment variable that carries the manhole token. */
export const MANHOLE_TOKEN_ENV = 'NODESET_MANHOLE_TOKEN';
/** Shortest manhole token accepted. */
const MIN_TOKEN_LENGTH = 8;
/** Longest token line read before a manhole client is cut off. */
const MAX_TOKEN_LINE = 1024;
/** A manhole client must send its token within this time, in ms. */
const TOKEN_TIMEOUT_MS = 10_000;
/** Connections at once that have not yet sent a token; more are turned away. */
const MAX_PENDING_CLIENTS = 16;
/** Back-off per address after a wrong token: 500 ms, doubling to 30 s; forgotten after 10 min without failures. */
export const MANHOLE_BACKOFF: FailureBackoffOptions = {
  baseMs: 500,
  maxMs: 30_000,
  forgetMs: 10 * 60_000,
  maxAddresses: 1024,
};

const FLAG_REFUSED =
  '--manhole-token is not accepted: a token on the command line or in a config file can be read by other users ' +
  `of the machine. Set ${MANHOLE_TOKEN_ENV}, or put the token in a file readable only by this service and give ` +
  '--manhole-token-file FILE.';

/** Adds --manhole and --manhole-token-file to a long-running command. */
export function withManholeOptions(command: Command): Command {
  return (
    command
      .option(
        '--manhole <port>',
        `open a REPL into this process on 127.0.0.1:PORT (0: any free port); token from ${MANHOLE_TOKEN_ENV} or --manhole-token-file`,
        intOption('--manhole', 0),
      )
      .option('--manhole-token-file <file>', 'file holding the token a manhole client must send first (first line)')
      // Kept only to refuse it with a reason; NODESET_MANHOLE_TOKEN fills it from the environment.
      .addOption(new Option('--manhole-token <token>').hideHelp())
      .hook('preAction', (_command, action) => {
        if (action.getOptionValueSource('manholeToken') === 'cli') throw new NodesetError('BAD_OPTION', FLAG_REFUSED);
      })
  );
}

/** What the manhole has refused, for logs and /metrics. */
export interface ManholeStats {
  /** Wrong tokens (each one checked). */
  authFailures: number;
  /** Attempts turned away unchecked: from an address in back-off, or over the limit of waiting connections. */
  throttled: number;
}

export interface Manhole {
  readonly port: number;
  readonly stats: ManholeStats;
  close(): Promise<void>;
}

/**
 * The manhole token: from the file named by --manhole-token-file, or
 * NODESET_MANHOLE_TOKEN; never from a flag or a config file. Null when no
 * manhole is asked for. Call it before starting anything, to fail early.
 */
export function manholeToken(options: ManholeOptions): string | null {
  if (options.manholeToken !== undefined && options.manholeToken !== process.env[MANHOLE_TOKEN_ENV]) {
    throw new NodesetError('BAD_OPTION', FLAG_REFUSED);
  }
  const token = secretFromFileOrEnv('--manhole-token-file', options.manholeTokenFile, MANHOLE_TOKEN_ENV);
  if (options.manhole === undefined) return null;
  if (token === undefined || token.length < MIN_TOKEN_LENGTH) {
    throw new NodesetError(
      'BAD_OPTION',
      `--manhole needs a token of at least ${MIN_TOKEN_LENGTH} characters: set ${MANHOLE_TOKEN_ENV} or give --manhole-token-file FILE`,
    );
  }
  return token;
}

/**
 * A REPL over TCP into the running process, with `context` in scope. It
 * listens on loopback only; a client must first send the token on a line of
 * its own (compared in constant time), else it gets AUTH_FAILED and is cut
 * off, and its address must wait before its next token is checked (a growing
 * back-off; meanwhile it gets LIMIT_EXCEEDED). Prints
 * `nodeset manhole listening on 127.0.0.1:PORT` on stdout. `backoff`
 * overrides MANHOLE_BACKOFF (tests give it a clock).
 */
export async function startManhole(
  options: ManholeOptions,
  context: Record<string, unknown>,
  logger: Logger,
  backoffOptions: Partial<FailureBackoffOptions> = {},
): Promise<Manhole | null> {
  const token = manholeToken(options);
  if (token === null || options.manhole === undefined) return null;
  const expected = [hashToken(token)];
  const backoff = new FailureBackoff({ ...MANHOLE_BACKOFF, ...backoffOptions });
  const stats: ManholeStats = { authFailures: 0, throttled: 0 };
  const clients = new Set<Socket>();
  let pending = 0;
  /** Turns an attempt away unchecked while its address waits; true when it did. */
  const throttle = (socket: Socket, address: string): boolean => {
    const wait = backoff.waitMs(address);
    if (wait === 0) return false;
    stats.throttled++;
    socket.end(`LIMIT_EXCEEDED too many wrong tokens from ${address}; retry in ${Math.ceil(wait / 1000)} s\n`);
    return true;
  };
  const accept = (socket: Socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    clients.add(socket);
    socket.on('close', () => clients.delete(socket));
    socket.on('error', () => {});
    if (throttle(socket, address)) return;
    if (pending >= MAX_PENDING_CLIENTS) {
      stats.throttled++;
      socket.end('LIMIT_EXCEEDED too many manhole connections waiting for a token\n');
      return;
    }
    pending++;
    let waiting = true;
    const done = () => {
      if (waiting) pending--;
      waiting = false;
      clearTimeout(timer);
    };
    socket.write('nodeset manhole: token? ');
    const timer = setTimeout(() => socket.destroy(), TOKEN_TIMEOUT_MS);
    socket.once('close', done);
    readFirstLine(socket, MAX_TOKEN_LINE, (line) => {
      done();
      // Connections opened before a failure are held to its back-off too: one burst is one guess.
      if (throttle(socket, address)) return;
      if (findToken(line.trim(), expected) === -1) {
        stats.authFailures++;
        const waitMs = backoff.fail(address);
        logger.warn({ address, failures: stats.authFailures, waitMs }, 'manhole: wrong token');
        socket.end('AUTH_FAILED\n');
        return;
      }
      backoff.succeed(address);
      logger.warn({ address }, 'manhole: client connected');
      socket.write('ok\n');
      const repl = startRepl({ prompt: 'nodeset> ', input: socket, output: socket, terminal: false, useGlobal: false });
      Object.assign(repl.context, context);
      repl.on('exit', () => socket.end());
    });
  };
  const { server, port } = await listenTcp({ host: '127.0.0.1', port: options.manhole }, accept);
  process.stdout.write(`nodeset manhole listening on 127.0.0.1:${port}\n`);
  return {
    port,
    stats,
    close: () => closeServer(server, clients),
  };
}

function closeServer(server: Server, clients: Set<Socket>): Promise<void> {
  for (const c of clients) c.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}
