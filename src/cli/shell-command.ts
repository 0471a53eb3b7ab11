import { homedir } from 'node:os';
import { join } from 'node:path';
import { clearLine, cursorTo } from 'node:readline';
import { type REPLEval, type REPLServer, start as startRepl } from 'node:repl';
import { inspect } from 'node:util';
import type { Command } from 'commander';
import type { Logger } from 'pino';
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
  sub(uri, { group })            subscribe; events are printed as they arrive
  unsub(uri, { group })          unsubscribe
  pub(uri, message, options)     publish with acknowledgement; returns the number of subscribers reached
  req(uri, message, { timeoutMs })  request; returns the reply
  stats()  nodes()  subscribers(uri)   ask the dispatcher
  switch(url)                    move to another dispatcher, keeping the subscriptions
  node                           the Node object itself
Results that are promises are awaited.`;

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
  const subscriptions = new Map<string, { uri: string; group?: string }>();
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
      await node.subscribe(s.uri, onEvent, s.group === undefined ? {} : { group: s.group });
    return node;
  };

  let node = await connect(opts.dispatcherUrl);
  let url = opts.dispatcherUrl;
  process.stdout.write(`connected to ${url} as ${node.name}; type help for the commands\n`);

  const api = {
    help: HELP,
    sub: async (uri: string, options: { group?: string } = {}) => {
      await node.subscribe(uri, onEvent, options);
      subscriptions.set(`${options.group ?? ''} ${uri}`, { uri, ...options });
      return `subscribed to ${uri}`;
    },
    unsub: async (uri: string, options: { group?: string } = {}) => {
      await node.unsubscribe(uri, options);
      subscriptions.delete(`${options.group ?? ''} ${uri}`);
      return `unsubscribed from ${uri}`;
    },
    pub: (uri: string, message?: unknown, options: PublishOptions = {}) =>
      node.publish(uri, message, { ...options, ack: true }),
    req: (uri: string, message?: unknown, options: { timeoutMs?: number } = {}) => node.request(uri, message, options),
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

  const server = startRepl({ prompt: 'nodeset> ', useGlobal: false, preview: false });
  repl = server;
  Object.assign(server.context, api, { node });
  // Await results that are promises, so `pub(...)` prints its count rather than a pending promise.
  const evaluate = server.eval;
  const awaiting: REPLEval = (cmd, context, file, callback) => {
    busy = true;
    const done = (err: Error | null, result: unknown) => {
      busy = false;
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
