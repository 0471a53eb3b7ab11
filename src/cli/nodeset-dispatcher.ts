#!/usr/bin/env node
import { Dispatcher } from '../dispatcher/dispatcher.js';
import { defaultDispatcherOptions } from '../dispatcher/options.js';
import { parseHostPort } from '../protocol/url.js';
import { baseCommand, type CommonOptions, createLogger, fail, intOption, onShutdown, writePidfile } from './common.js';

interface DispatcherCliOptions extends CommonOptions {
  listen: string;
  hostName?: string;
  heartbeatInterval?: number;
  heartbeatTimeout?: number;
  maxPayload?: number;
  maxPending?: number;
  maxSubscriptions?: number;
  maxConnections?: number;
}

const defaults = defaultDispatcherOptions();

const program = baseCommand(
  'nodeset-dispatcher',
  'Run the nodeset dispatcher: routes events between the nodes of this host.',
)
  .option('--listen <host:port>', 'address to listen on (port 0 picks a free one)', `127.0.0.1:${defaults.port}`)
  .option('--host-name <name>', `this host's name in event URIs (default: ${defaults.hostName})`)
  .option(
    '--heartbeat-interval <ms>',
    `ping interval (default ${defaults.heartbeatIntervalMs})`,
    intOption('--heartbeat-interval', 10),
  )
  .option(
    '--heartbeat-timeout <ms>',
    'drop nodes silent this long (default: 2 intervals)',
    intOption('--heartbeat-timeout', 10),
  )
  .option(
    '--max-payload <bytes>',
    `largest payload (default ${defaults.maxPayloadBytes})`,
    intOption('--max-payload', 1),
  )
  .option(
    '--max-pending <bytes>',
    `outbound bytes per connection before it is cut off as a slow consumer (default ${defaults.maxPendingBytes})`,
    intOption('--max-pending', 1),
  )
  .option(
    '--max-subscriptions <n>',
    `subscriptions per connection (default ${defaults.maxSubscriptionsPerConnection})`,
    intOption('--max-subscriptions', 1),
  )
  .option(
    '--max-connections <n>',
    `connections in total (default ${defaults.maxConnections})`,
    intOption('--max-connections', 1),
  )
  .action(async (opts: DispatcherCliOptions) => {
    const logger = createLogger(opts);
    try {
      writePidfile(opts.pidfile);
      const { host, port } = parseHostPort(opts.listen);
      const dispatcher = new Dispatcher({
        host,
        port,
        hostName: opts.hostName,
        heartbeatIntervalMs: opts.heartbeatInterval,
        heartbeatTimeoutMs: opts.heartbeatTimeout,
        maxPayloadBytes: opts.maxPayload,
        maxPendingBytes: opts.maxPending,
        maxSubscriptionsPerConnection: opts.maxSubscriptions,
        maxConnections: opts.maxConnections,
        logger,
      });
      await dispatcher.start();
      onShutdown(() => dispatcher.stop(), logger);
      process.stdout.write(`nodeset dispatcher listening on ${dispatcher.url}\n`);
    } catch (err) {
      fail(err);
    }
  });

program.parseAsync().catch(fail);
