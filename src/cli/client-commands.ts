import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { EventInfo } from '../node/handlers.js';
import type { Node } from '../node/node.js';
import { NodesetError } from '../protocol/errors.js';
import { checkHeaders, type MessageHeaders } from '../protocol/headers.js';
import {
  baseCommand,
  createLogger,
  fail,
  intOption,
  type NodeCommandOptions,
  onShutdown,
  withNodeOptions,
} from './common.js';
import { resolveOptions } from './config.js';
import { checkUriOption, connectNode, formatRaw, jsonFields, parseMessage } from './connect.js';
import { type PublishSource, publishLoop } from './publish-loop.js';

interface PubOptions extends NodeCommandOptions {
  count?: number;
  rate?: number;
  sleep?: number;
  stdin?: boolean;
  raw?: boolean;
  ack?: boolean;
  mode: 'all' | 'direct';
  timeout: number;
  header?: MessageHeaders;
}

interface SubOptions extends NodeCommandOptions {
  group?: string;
  raw?: boolean;
  count?: number;
  slowConsumer: 'cut' | 'pushback';
}

interface ReqOptions extends NodeCommandOptions {
  raw?: boolean;
  timeout: number;
  header?: MessageHeaders;
}

/** `-H name=value`, repeatable: the message headers, checked as publish checks them (BAD_OPTION, TOO_LARGE). */
function headerOption(value: string, previous: MessageHeaders | undefined): MessageHeaders {
  const at = value.indexOf('=');
  if (at <= 0) throw new InvalidArgumentError(`-H takes name=value, got ${JSON.stringify(value)}`);
  const headers = { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
  try {
    checkHeaders(headers, 'BAD_OPTION');
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return headers;
}
const HEADER_FLAGS = '-H, --header <name=value>';
const HEADER_HELP = 'a message header (repeat for more)';

interface ReplyOptions extends NodeCommandOptions {
  group?: string;
  command?: string;
  raw?: boolean;
}

/** Exit code after Ctrl-C, as shells report it. */
const SIGINT_EXIT_CODE = 130;

/** `nodeset pub <uri> [message]`: publish once, N times, at a rate, or each line of stdin. */
export function pubCommand(name = 'pub'): Command {
  return withNodeOptions(baseCommand(name, 'Publish messages to an event URI.'))
    .argument('<uri>', 'event URI to publish to')
    .argument('[message]', 'the message: JSON, or else text; {{count}} and {{time}} are filled in', '')
    .option('--count <n>', 'publish this many messages (default 1; 0: until stopped)', intOption('--count', 0))
    .option('--rate <n>', 'messages per second', intOption('--rate', 1))
    .option('--sleep <ms>', 'pause between messages', intOption('--sleep', 0))
    .option('--stdin', 'publish each line of stdin (the default when stdin is a pipe and no message is given)')
    .option('--raw', 'send the message as text even when it parses as JSON')
    .option('--ack', 'wait for each acknowledgement and count the subscribers reached (slower)')
    .addOption(new Option('--mode <mode>', 'delivery mode').choices(['all', 'direct']).default('all'))
    .option('--timeout <ms>', 'give up when the dispatcher does not answer in time', intOption('--timeout', 1), 5000)
    .option(HEADER_FLAGS, HEADER_HELP, headerOption)
    .action(async (uri: string, template: string, _opts: unknown, command: Command) => {
      const opts = resolveOptions<PubOptions>(command);
      const fromStdin = opts.stdin === true || (template === '' && !process.stdin.isTTY && opts.count === undefined);
      let node: Node | undefined;
      try {
        checkUriOption('<uri>', uri, false);
        if (opts.rate !== undefined && opts.sleep !== undefined) {
          throw new NodesetError('BAD_OPTION', '--rate and --sleep go one at a time');
        }
        if (fromStdin && opts.count !== undefined)
          throw new NodesetError('BAD_OPTION', '--count does not go with --stdin');
        const logger = createLogger({ ...opts, loglevel: opts.loglevel === 'info' ? 'warn' : opts.loglevel });
        node = await connectNode(opts, logger, { wait: false, timeoutMs: opts.timeout, node: { statsIntervalMs: 0 } });
        const source: PublishSource = fromStdin
          ? { kind: 'lines', lines: createInterface({ input: process.stdin, crlfDelay: Infinity }) }
          : { kind: 'template', template, count: opts.count ?? 1 };
        const summary = await publishLoop(node, uri, source, {
          ack: opts.ack ?? false,
          raw: opts.raw ?? false,
          mode: opts.mode,
          ...(opts.header === undefined ? {} : { headers: opts.header }),
          timeoutMs: opts.timeout,
          intervalMs: opts.rate !== undefined ? 1000 / opts.rate : (opts.sleep ?? 0),
          progress: process.stderr.isTTY ? process.stderr : null,
        });
        process.stdout.write(`${summary.text}\n`);
        await node.stop();
        if (summary.interrupted) process.exit(SIGINT_EXIT_CODE);
      } catch (err) {
        await node?.stop();
        fail(err);
      }
    });
}

/**
 * `nodeset sub <uri...>`: print events as JSON lines (or raw), with the
 * publishing node, its host when it is another one, and the headers.
 */
export function subCommand(name = 'sub'): Command {
  return withNodeOptions(baseCommand(name, 'Subscribe and print each event on stdout.'))
    .argument('<uri...>', 'event URIs to subscribe to (wildcards * and > allowed)')
    .option('--group <group>', 'queue group: share the events with the other members')
    .option('--raw', 'print only the message: text as is, anything else as JSON')
    .option('--count <n>', 'exit after this many events', intOption('--count', 1))
    .addOption(
      new Option(
        '--slow-consumer <policy>',
        'when this subscriber falls behind: cut it off, or hold the publishers back',
      )
        .choices(['cut', 'pushback'])
        .default('cut'),
    )
    .action(async (uris: string[], _opts: unknown, command: Command) => {
      const opts = resolveOptions<SubOptions>(command);
      try {
        for (const uri of uris) checkUriOption('<uri>', uri, true);
        const logger = createLogger({ ...opts, loglevel: opts.loglevel === 'info' ? 'warn' : opts.loglevel });
        const node = await connectNode(opts, logger, {
          wait: true,
          node: { slowConsumer: opts.slowConsumer, statsIntervalMs: 0 },
        });
        onShutdown(() => node.stop(), logger);
        let seen = 0;
        const print = (message: unknown, info: EventInfo) => {
          if (opts.count !== undefined && seen >= opts.count) return;
          seen++;
          if (opts.raw) {
            process.stdout.write(formatRaw(message));
            process.stdout.write('\n');
          } else {
            process.stdout.write(`${JSON.stringify(eventLine(message, info))}\n`);
          }
          if (opts.count !== undefined && seen === opts.count) void node.stop().then(() => process.exit(0));
        };
        const options = opts.group === undefined ? {} : { group: opts.group };
        for (const uri of uris) await node.subscribe(uri, print, options);
        process.stderr.write(
          `subscribed to ${uris.join(' ')}${opts.group === undefined ? '' : ` in group ${opts.group}`}\n`,
        );
      } catch (err) {
        fail(err);
      }
    });
}

/** One `nodeset sub` JSON line: `{ event, from, host?, headers?, message, encoding? }`. */
function eventLine(message: unknown, info: EventInfo): Record<string, unknown> {
  const line: Record<string, unknown> = { event: info.uri, from: info.from };
  if (info.host !== null) line.host = info.host;
  if (Object.keys(info.headers).length > 0) line.headers = info.headers;
  return Object.assign(line, jsonFields(message));
}

/** `nodeset req <uri> [message]`: one request, the reply printed on stdout. */
export function reqCommand(name = 'req'): Command {
  return withNodeOptions(baseCommand(name, 'Send a request and print the reply.'))
    .argument('<uri>', 'event URI to send the request to')
    .argument('[message]', 'the request: JSON, or else text', '')
    .option('--raw', 'send the request as text, and print the reply as text when it is one')
    .option('--timeout <ms>', 'give up without a reply after this long', intOption('--timeout', 1), 5000)
    .option(HEADER_FLAGS, HEADER_HELP, headerOption)
    .action(async (uri: string, text: string, _opts: unknown, command: Command) => {
      const opts = resolveOptions<ReqOptions>(command);
      let node: Node | undefined;
      try {
        checkUriOption('<uri>', uri, false);
        const logger = createLogger({ ...opts, loglevel: opts.loglevel === 'info' ? 'warn' : opts.loglevel });
        node = await connectNode(opts, logger, { wait: false, timeoutMs: opts.timeout, node: { statsIntervalMs: 0 } });
        const reply = await node.request(uri, text === '' ? null : parseMessage(text, opts.raw ?? false), {
          timeoutMs: opts.timeout,
          ...(opts.header === undefined ? {} : { headers: opts.header }),
        });
        process.stdout.write(opts.raw ? formatRaw(reply) : JSON.stringify(reply ?? null));
        process.stdout.write('\n');
        await node.stop();
      } catch (err) {
        await node?.stop();
        fail(err);
      }
    });
}

/** Runs `command` through the shell with the request on stdin; its stdout (JSON, or else text) is the reply. */
function runForRequest(command: string, request: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, { shell: true, stdio: ['pipe', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.on('error', reject);
    child.stdin.on('error', () => {}); // a command that does not read its stdin closes it early
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.on('close', (code) => {
      const text = Buffer.concat(out).toString('utf8').replace(/\n$/, '');
      if (code !== 0) {
        reject(new NodesetError('HANDLER_ERROR', `${command} exited with ${code}`));
        return;
      }
      resolve(parseMessage(text, false));
    });
    child.stdin.end(request);
  });
}

/** `nodeset reply <uri>`: answer requests, echoing them or with a command's output. */
export function replyCommand(name = 'reply'): Command {
  return withNodeOptions(baseCommand(name, 'Answer requests: echo them, or run a command per request.'))
    .argument('<uri>', 'event URI to answer (wildcards allowed)')
    .option('--group <group>', 'queue group: share the requests with the other members')
    .option(
      '--command <cmd>',
      'run this shell command per request, the request on its stdin; its stdout (JSON, or else text) is the reply',
    )
    .option('--raw', 'give the command the request as text when it is text (default: JSON)')
    .action(async (uri: string, _opts: unknown, command: Command) => {
      const opts = resolveOptions<ReplyOptions>(command);
      try {
        checkUriOption('<uri>', uri, true);
        const logger = createLogger({ ...opts, loglevel: opts.loglevel === 'info' ? 'warn' : opts.loglevel });
        const node = await connectNode(opts, logger, { wait: true, node: { statsIntervalMs: 0 } });
        onShutdown(() => node.stop(), logger);
        const answer = (message: unknown, info: { uri: string; from: string; isRequest: boolean }) => {
          process.stderr.write(`${info.isRequest ? 'request' : 'event'} ${info.uri} from ${info.from}\n`);
          if (!info.isRequest) return undefined;
          if (opts.command === undefined) return message;
          const input = opts.raw ? formatRaw(message) : JSON.stringify(jsonFields(message).message);
          return runForRequest(opts.command, typeof input === 'string' ? input : input.toString('utf8'));
        };
        await node.respond(uri, answer, opts.group === undefined ? {} : { group: opts.group });
        process.stderr.write(
          `answering requests to ${uri}${opts.command === undefined ? ' (echo)' : ` with: ${opts.command}`}\n`,
        );
      } catch (err) {
        fail(err);
      }
    });
}
