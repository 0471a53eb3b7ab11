import { type Command, Option } from 'commander';
import type { Node } from '../node/node.js';
import { NodesetError } from '../protocol/errors.js';
import {
  baseCommand,
  createLogger,
  fail,
  intOption,
  type NodeCommandOptions,
  onShutdown,
  withNodeOptions,
  writePidfile,
} from './common.js';
import { resolveOptions } from './config.js';
import { checkUriOption, connectNode } from './connect.js';
import { type ManholeOptions, startManhole, withManholeOptions } from './manhole.js';

interface SubscriberOptions extends NodeCommandOptions, ManholeOptions {
  event?: string[];
  group?: string;
  slowConsumer: 'cut' | 'pushback';
}

interface PublisherOptions extends NodeCommandOptions {
  event?: string;
  payload: string;
  count: number;
  mode: 'all' | 'direct';
  timeout: number;
}

/** Acknowledged publishes kept in flight at once by `publisher --count`. */
const ACK_WINDOW = 256;

/** `--event` is checked in the action, so that an unknown option is reported first, by name. */
function requireEvents(events: string[] | string | undefined, wildcards: boolean): string[] {
  const list = events === undefined ? [] : Array.isArray(events) ? events : [events];
  if (list.length === 0) throw new NodesetError('BAD_OPTION', "required option '--event <uri>' not specified");
  return list.map((uri) => checkUriOption('--event', uri, wildcards));
}

/** The event as printed by the subscriber: one JSON line. */
function eventLine(event: string, message: unknown): string {
  if (Buffer.isBuffer(message))
    return JSON.stringify({ event, message: message.toString('base64'), encoding: 'base64' });
  return JSON.stringify({ event, message: message ?? null });
}

/** The `nodeset-node` command (also `nodeset node`). */
export function nodeCommand(name = 'nodeset-node'): Command {
  const program = withNodeOptions(
    baseCommand(name, 'Run a nodeset node: subscribe and print events, or publish them.'),
  ).addHelpText(
    'after',
    `
Each command has its own options (${name} <command> --help):
  subscriber --event <uri...> [--group <group>] [--slow-consumer cut|pushback]
  publisher  --event <uri> [--payload <json>] [--count <n>] [--mode all|direct] [--timeout <ms>]
For more (rates, stdin, requests, replies): nodeset pub|sub|req|reply --help`,
  );
  withManholeOptions(
    withNodeOptions(
      program
        .command('subscriber')
        .description('subscribe to events and print each one as a JSON line on stdout')
        .option('--event <uri...>', 'event URI to subscribe to (wildcards * and > allowed); repeatable')
        .option('--group <group>', 'queue group: share the events with the other members')
        .addOption(
          new Option(
            '--slow-consumer <policy>',
            'when this subscriber falls behind: cut it off, or hold the publishers back',
          )
            .choices(['cut', 'pushback'])
            .default('cut'),
        ),
    ),
  ).action(async (_opts: unknown, command: Command) => {
    const opts = resolveOptions<SubscriberOptions>(command);
    const logger = createLogger(opts);
    try {
      const events = requireEvents(opts.event, true);
      writePidfile(opts.pidfile);
      const node = await connectNode(opts, logger, { wait: true, node: { slowConsumer: opts.slowConsumer } });
      const manhole = await startManhole(opts, { node }, logger);
      onShutdown(async () => {
        await manhole?.close();
        await node.stop();
      }, logger);
      const print = (message: unknown, info: { uri: string }) => {
        process.stdout.write(`${eventLine(info.uri, message)}\n`);
      };
      for (const uri of events) {
        await node.subscribe(uri, print, opts.group === undefined ? {} : { group: opts.group });
        logger.info({ uri, group: opts.group }, 'subscribed');
      }
    } catch (err) {
      fail(err);
    }
  });

  withNodeOptions(
    program
      .command('publisher')
      .description('publish an event (with acknowledgement) and print how many subscribers received it')
      .option('--event <uri>', 'event URI to publish to')
      .option('--payload <json>', 'message, as JSON', 'null')
      .option('--count <n>', 'number of messages to publish', intOption('--count', 1), 1)
      .addOption(new Option('--mode <mode>', 'delivery mode').choices(['all', 'direct']).default('all'))
      .option(
        '--timeout <ms>',
        'give up when the dispatcher cannot be reached within this time',
        intOption('--timeout', 1),
        5000,
      ),
  ).action(async (_opts: unknown, command: Command) => {
    const opts = resolveOptions<PublisherOptions>(command);
    const logger = createLogger(opts);
    let message: unknown;
    let node: Node | undefined;
    try {
      const [event] = requireEvents(opts.event, false) as [string];
      try {
        message = JSON.parse(opts.payload);
      } catch {
        throw new NodesetError('BAD_OPTION', `--payload is not valid JSON: ${opts.payload}`);
      }
      writePidfile(opts.pidfile);
      node = await connectNode(opts, logger, { wait: false, timeoutMs: opts.timeout });
      const connected = node;
      let deliveries = 0;
      // Acknowledgements are awaited in a window, not one round trip at a time.
      const inFlight = new Set<Promise<void>>();
      for (let i = 0; i < opts.count; i++) {
        const acked = connected
          .publish(event, message, { ack: true, mode: opts.mode, timeoutMs: opts.timeout })
          .then((n) => {
            deliveries += n;
          })
          .finally(() => inFlight.delete(acked));
        inFlight.add(acked);
        if (inFlight.size >= ACK_WINDOW) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      const what = opts.count === 1 ? '1 message' : `${opts.count} messages`;
      const to =
        opts.count === 1
          ? `delivered to ${deliveries} subscriber${deliveries === 1 ? '' : 's'}`
          : `${deliveries} deliveries`;
      process.stdout.write(`published ${what} to ${event}: ${to}\n`);
      await node.stop();
    } catch (err) {
      await node?.stop();
      fail(err);
    }
  });
  return program;
}
