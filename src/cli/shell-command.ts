import { homedir } from 'node:os';
import { join } from 'node:path';
import { clearLine, cursorTo } from 'node:readline';
import { type REPLEval, type REPLServer, Recoverable, start as startRepl } from 'node:repl';
import { inspect } from 'node:util';
import type { Command } from 'commander';
import type { Logger } from 'pino';
import type { Handler } from '../node/handlers.js';
import type { PublishOptions } from '../node/node.js';
import { Node } from '../node/node.js';
import {
  baseCommand,
  createLogger,
  type NodeCommandOptions,
  nodeConnectionOptions,
  withNodeOptions,
} from './common.js';
import { resolveOptions } from './config.js';

interface ShellOptions extends NodeCommandOptions {
  history?: string;
}

const HELP = `nodeset shell: a node connected to a dispatcher.
  sub(uri)                         subscribe; events are printed as they arrive
  sub(uri, handler, { group })     subscribe with a handler (message, info) => …; never takes a request
  reply(uri, handler)              answer requests (default handler: echo the request)
  unsub(uri, { group })            unsubscribe
  pub(uri, message, options)       publish with acknowledgement; returns the number of subscribers reached
  req(uri, message, { timeoutMs }) request; returns the reply
  stats()  nodes()  subscribers(uri)   ask the dispatcher
  switch(url)                      move to another dispatcher, keeping the subscriptions
  node                             the Node object itself
Results that are promises are awaited. Tab completes names, and event names seen inside quotes.`;

/** Functions whose first argument is an event URI: inside their quotes, tab completes event names. */
const URI_CALL = /\b(?:sub|unsub|pub|req|reply|subscribers)\(\s*(['"`])([^'"`]*)$/;

/** An error as the shell prints it: one line, `CODE: message`. */
export function errorLine(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${err.message}` : `${err.name}: ${err.message}`;
  }
  return `error: ${String(err)}`;
}

/**
 * The interactive shell: Node's REPL holding a connected node, as the
 * original's shell node. Events print above the prompt without garbling it;
 * history is kept in a file; tab completion covers the shell's functions.
 */
export function shellCommand(name = 'nodeset-shell'): Command {
  return withNodeOptions(baseCommand(name, 'Interactive shell: a REPL holding a node connected to a dispatcher.'))
    .option('--history <file>', 'history file', join(homedir(), '.nodeset_history'))
    .action(async (_opts: unknown, command: Command) => {
      const opts = resolveOptions<ShellOptions>(command);
      const logger = createLogger({ ...opts, loglevel: opts.loglevel === 'info' ? 'warn' : opts.loglevel });
      await runShell(opts, logger);
    });
}

async function runShell(opts: ShellOptions, logger: Logger): Promise<void> {
  const subscriptions = new Map<string, { uri: string; group?: string; reply?: boolean; handler: Handler }>();
  /** Event names seen (published, received, subscribed to), for tab completion. */
  const seen = new Set<string>();
  let repl: REPLServer | null = null;
  /** True while a command is being evaluated: its own output and prompt follow. */
  let busy = false;

  const print = (text: string) => {
    const out = process.stdout;
    if (repl === null || !out.isTTY) {
      out.write(`${text}\n`);
      return;
    }
    // Print above the prompt, then redraw the prompt with what was typed so far.
    clearLine(out, 0);
    cursorTo(out, 0);
    out.write(`${text}\n`);
    if (!busy) repl.displayPrompt(true);
  };
  const onEvent = (message: unknown, info: { uri: string; from: string }) => {
    seen.add(info.uri);
    print(
      `[event] ${info.uri} from ${info.from}: ${inspect(message, { depth: 4, colors: process.stdout.isTTY, breakLength: Infinity })}`,
    );
  };

  const connect = async (url: string) => {
    const node = new Node({
      ...nodeConnectionOptions({ ...opts, dispatcherUrl: url }),
      logger,
      startTimeoutMs: 10_000,
    });
    node.on('disconnect', () => print(`[disconnected from ${url}; reconnecting]`));
    node.on('reconnect', () => print(`[reconnected to ${url}]`));
    await node.start();
    for (const s of subscriptions.values())
      await node.subscribe(s.uri, s.handler, { ...(s.group === undefined ? {} : { group: s.group }), reply: s.reply });
    return node;
  };

  let node = await connect(opts.dispatcherUrl);
  let url = opts.dispatcherUrl;
  process.stdout.write(`connected to ${url} as ${node.name}; type help for the commands\n`);

  const subscribe = async (uri: string, handler: Handler, options: { group?: string; reply?: boolean }) => {
    await node.subscribe(uri, handler, options);
    subscriptions.set(`${options.reply === true ? 'reply ' : ''}${options.group ?? ''} ${uri}`, {
      uri,
      ...options,
      handler,
    });
    seen.add(uri);
  };
  /** A handler of the user's: events still print, and its result answers a request. */
  const userHandler =
    (handler: Handler): Handler =>
    (message, info) => {
      seen.add(info.uri);
      return handler(message, info);
    };

  const help = Object.assign(() => void print(HELP), { [inspect.custom]: () => HELP });
  const api = {
    help,
    sub: async (uri: string, handlerOrOptions?: Handler | { group?: string }, options: { group?: string } = {}) => {
      const handler = typeof handlerOrOptions === 'function' ? userHandler(handlerOrOptions) : onEvent;
      const opts = typeof handlerOrOptions === 'function' ? options : (handlerOrOptions ?? {});
      await subscribe(uri, handler, opts);
      return `subscribed to ${uri}${typeof handlerOrOptions === 'function' ? ' with a handler' : ''}`;
    },
    reply: async (uri: string, handler: Handler = (message) => message, options: { group?: string } = {}) => {
      await subscribe(
        uri,
        (message, info) => {
          onEvent(message, info);
          return handler(message, info);
        },
        { ...options, reply: true },
      );
      return `answering requests to ${uri}`;
    },
    unsub: async (uri: string, options: { group?: string } = {}) => {
      await node.unsubscribe(uri, options);
      subscriptions.delete(`${options.group ?? ''} ${uri}`);
      return `unsubscribed from ${uri}`;
    },
    pub: (uri: string, message?: unknown, options: PublishOptions = {}) => {
      seen.add(uri);
      return node.publish(uri, message, { ...options, ack: true });
    },
    req: (uri: string, message?: unknown, options: { timeoutMs?: number } = {}) => {
      seen.add(uri);
      return node.request(uri, message, options);
    },
    stats: () => node.stats(),
    nodes: () => node.nodes(),
    subscribers: (uri: string) => node.subscribers(uri),
    switch: async (to: string) => {
      const next = await connect(to);
      await node.stop();
      node = next;
      url = to;
      Object.assign(server.context, { node });
      return `connected to ${to} as ${node.name}`;
    },
  };

  const server = startRepl({ prompt: 'nodeset> ', useGlobal: false, preview: false, ignoreUndefined: true });
  repl = server;
  // Inside the quotes of sub('…'), pub('…') and the like, tab completes event names seen so far.
  type Complete = (line: string, callback: (err: Error | null, result: [string[], string]) => void) => void;
  const complete = server.completer as unknown as Complete;
  (server as unknown as { completer: Complete }).completer = (line, callback) => {
    const inUri = URI_CALL.exec(line);
    if (inUri === null) {
      complete.call(server, line, callback);
      return;
    }
    const typed = inUri[2] ?? '';
    callback(null, [[...seen].filter((name) => name.startsWith(typed)).sort(), typed]);
  };
  Object.assign(server.context, api, { node });
  // Await results that are promises, so `pub(...)` prints its count rather than a pending promise.
  const evaluate = server.eval;
  const awaiting: REPLEval = (cmd, context, file, callback) => {
    busy = true;
    // Errors print as one line, CODE: message; an unfinished line still asks for more.
    const done = (err: Error | null, result: unknown) => {
      busy = false;
      if (err !== null && !(err instanceof Recoverable)) {
        process.stdout.write(`${errorLine(err)}\n`);
        callback(null, undefined);
        return;
      }
      callback(err, result);
    };
    evaluate.call(server, cmd, context, file, (err, result) => {
      if (err === null && result instanceof Promise) {
        result.then(
          (value: unknown) => done(null, value),
          (error: Error) => done(error, undefined),
        );
      } else done(err, result);
    });
  };
  (server as { eval: REPLEval }).eval = awaiting;
  if (opts.history !== undefined) {
    server.setupHistory(opts.history, (err) => {
      if (err !== null) logger.warn({ err: err.message }, 'shell history not kept');
    });
  }
  server.on('exit', () => {
    node.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
