import { type Command, Option } from 'commander';
import type { Logger } from 'pino';
import { Node } from '../node/node.js';
import { NodesetError } from '../protocol/errors.js';
import {
  baseCommand,
  createLogger,
  fail,
  intOption,
  type NodeCommandOptions,
  nodeConnectionOptions,
  onShutdown,
  withNodeOptions,
  writePidfile,
} from './common.js';
import { resolveOptions } from './config.js';
import { type ManholeOptions, startManhole, withManholeOptions } from './manhole.js';

interface SubscriberOptions extends NodeCommandOptions, ManholeOptions {
  event: string[];
  group?: string;
  slowConsumer: 'cut' | 'pushback';
}

interface PublisherOptions extends NodeCommandOptions {
  event: string;
  payload: string;
  count: number;
  mode: 'all' | 'direct';
  timeout: number;
}

function startNode(
  opts: NodeCommandOptions & { slowConsumer?: 'cut' | 'pushback' },
  logger: Logger,
  startTimeoutMs: number,
): Promise<Node> {
  const node = new Node({ ...nodeConnectionOptions(opts), logger, startTimeoutMs, slowConsumer: opts.slowConsumer });
  return node.start();
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
  );
  withManholeOptions(
    withNodeOptions(
      program
        .command('subscriber')
        .description('subscribe to events and print each one as a JSON line on stdout')
        .requiredOption('--event <uri...>', 'event URI to subscribe to (wildcards * and > allowed); repeatable')
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
      writePidfile(opts.pidfile);
      const node = await startNode(opts, logger, 0);
      const manhole = await startManhole(opts, { node }, logger);
      onShutdown(async () => {
        await manhole?.close();
        await node.stop();
      }, logger);
      const print = (message: unknown, info: { uri: string }) => {
        process.stdout.write(`${eventLine(info.uri, message)}\n`);
      };
      for (const uri of opts.event) {
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
      .requiredOption('--event <uri>', 'event URI to publish to')
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
    try {
      message = JSON.parse(opts.payload);
    } catch {
      fail(new NodesetError('BAD_OPTION', `--payload is not valid JSON: ${opts.payload}`), 2);
    }
    let node: Node | undefined;
    try {
      writePidfile(opts.pidfile);
      node = await startNode(opts, logger, opts.timeout);
      let deliveries = 0;
      for (let i = 0; i < opts.count; i++) {
        deliveries += await node.publish(opts.event, message, { ack: true, mode: opts.mode, timeoutMs: opts.timeout });
      }
      const what = opts.count === 1 ? '1 message' : `${opts.count} messages`;
      const to =
        opts.count === 1
          ? `delivered to ${deliveries} subscriber${deliveries === 1 ? '' : 's'}`
          : `${deliveries} deliveries`;
      process.stdout.write(`published ${what} to ${opts.event}: ${to}\n`);
      await node.stop();
    } catch (err) {
      await node?.stop();
      fail(err);
    }
  });
  return program;
}
