import type { Server, Socket } from 'node:net';
import { start as startRepl } from 'node:repl';
import type { Command } from 'commander';
import type { Logger } from 'pino';
import { NodesetError } from '../protocol/errors.js';
import { findToken, hashToken } from '../security/keys.js';
import { readFirstLine } from '../transport/read-line.js';
import { listenTcp } from '../transport/tcp.js';
import { intOption } from './config.js';

export interface ManholeOptions {
  manhole?: number;
  manholeToken?: string;
}

/** Longest token line read before a manhole client is cut off. */
const MAX_TOKEN_LINE = 1024;
/** A manhole client must send its token within this time, in ms. */
const TOKEN_TIMEOUT_MS = 10_000;

/** Adds --manhole and --manhole-token to a long-running command. */
export function withManholeOptions(command: Command): Command {
  return command
    .option(
      '--manhole <port>',
      'open a REPL into this process on 127.0.0.1:PORT (0: any free port), token required',
      intOption('--manhole', 0),
    )
    .option('--manhole-token <token>', 'the token a manhole client must send first');
}

export interface Manhole {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A REPL over TCP into the running process, with `context` in scope. It
 * listens on loopback only; a client must first send the token on a line of
 * its own (compared in constant time), else it gets AUTH_FAILED and is cut off.
 * Prints `nodeset manhole listening on 127.0.0.1:PORT` on stdout.
 */
export async function startManhole(
  options: ManholeOptions,
  context: Record<string, unknown>,
  logger: Logger,
): Promise<Manhole | null> {
  if (options.manhole === undefined) return null;
  const token = options.manholeToken;
  if (token === undefined || token.length < 8) {
    throw new NodesetError(
      'BAD_OPTION',
      '--manhole needs a token of at least 8 characters: --manhole-token or NODESET_MANHOLE_TOKEN',
    );
  }
  const expected = [hashToken(token)];
  const clients = new Set<Socket>();
  const accept = (socket: Socket) => {
    clients.add(socket);
    socket.on('close', () => clients.delete(socket));
    socket.on('error', () => {});
    socket.write('nodeset manhole: token? ');
    const timer = setTimeout(() => socket.destroy(), TOKEN_TIMEOUT_MS);
    socket.once('close', () => clearTimeout(timer));
    readFirstLine(socket, MAX_TOKEN_LINE, (line) => {
      clearTimeout(timer);
      if (findToken(line.trim(), expected) === -1) {
        logger.warn({ address: socket.remoteAddress }, 'manhole: wrong token');
        socket.end('AUTH_FAILED\n');
        return;
      }
      logger.warn({ address: socket.remoteAddress }, 'manhole: client connected');
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
    close: () => closeServer(server, clients),
  };
}

function closeServer(server: Server, clients: Set<Socket>): Promise<void> {
  for (const c of clients) c.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}
