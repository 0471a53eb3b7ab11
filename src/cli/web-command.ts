import type { Command } from 'commander';
import { parseHostPort } from '../protocol/url.js';
import { defaultWebBridgeOptions } from '../web/options.js';
import { DEFAULT_MAX_REMEMBERED_SIGNATURES, DEFAULT_SIGNATURE_WINDOW_MS, KeyRing } from '../web/signatures.js';
import { WebBridge } from '../web/web-server.js';
import {
  baseCommand,
  createLogger,
  type NodeCommandOptions,
  nodeConnectionOptions,
  onShutdown,
  withNodeOptions,
  writePidfile,
} from './common.js';
import { intOption, resolveOptions } from './config.js';
import { type ManholeOptions, startManhole, withManholeOptions } from './manhole.js';

interface WebCliOptions extends NodeCommandOptions, ManholeOptions {
  listen: string;
  path?: string;
  keys?: string;
  signatureWindow?: number;
  maxSignatures?: number;
  cors?: string;
  insecure?: boolean;
  maxConnections?: number;
  headersTimeout?: number;
  requestTimeout?: number;
  keepAliveTimeout?: number;
  maxBody?: number;
}

/** `nodeset-web` (also `nodeset web`): the HTTP and WebSocket bridge. */
export function webCommand(name = 'nodeset-web'): Command {
  const defaults = defaultWebBridgeOptions();
  return withManholeOptions(
    withNodeOptions(baseCommand(name, 'Publish, subscribe and request over HTTP, WebSocket and from the browser.')),
  )
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8080')
    .option('--path <dir>', 'serve static files and route modules (NAME.route.mjs) from this directory')
    .option('--keys <file>', 'shared keys (YAML or JSON); publish and subscribe must then be signed')
    .option(
      '--signature-window <ms>',
      `accept signatures whose timestamp is this close to now (default ${DEFAULT_SIGNATURE_WINDOW_MS})`,
      intOption('--signature-window', 1),
    )
    .option(
      '--max-signatures <n>',
      `signatures remembered to refuse replays; past it signed requests are refused (default ${DEFAULT_MAX_REMEMBERED_SIGNATURES})`,
      intOption('--max-signatures', 1),
    )
    .option('--cors <origins>', 'comma-separated origins allowed by CORS (* for any)')
    .option('--insecure', 'allow a non-loopback --listen without --keys')
    .option(
      '--max-connections <n>',
      `connections open at once (requests, streams, WebSockets); past it new ones are closed (default ${defaults.maxConnections})`,
      intOption('--max-connections', 1),
    )
    .option(
      '--headers-timeout <ms>',
      `time a client has to send a request's headers (default ${defaults.headersTimeoutMs})`,
      intOption('--headers-timeout', 1),
    )
    .option(
      '--request-timeout <ms>',
      `time a client has to send a whole request, headers and body (default ${defaults.requestTimeoutMs})`,
      intOption('--request-timeout', 1),
    )
    .option(
      '--keep-alive-timeout <ms>',
      `an idle keep-alive connection is closed after this (default ${defaults.keepAliveTimeoutMs})`,
      intOption('--keep-alive-timeout', 1),
    )
    .option('--max-body <bytes>', `largest request body (default ${defaults.maxBodyBytes})`, intOption('--max-body', 1))
    .action(async (_opts: unknown, command: Command) => {
      const opts = resolveOptions<WebCliOptions>(command);
      const logger = createLogger(opts);
      writePidfile(opts.pidfile);
      const { host, port } = parseHostPort(opts.listen);
      const conn = nodeConnectionOptions(opts);
      const bridge = new WebBridge({
        host,
        port,
        dispatcherUrl: conn.dispatcherUrl,
        token: conn.token,
        tls: conn.tls,
        path: opts.path,
        keys:
          opts.keys === undefined
            ? null
            : KeyRing.load(opts.keys, { windowMs: opts.signatureWindow, maxRemembered: opts.maxSignatures }),
        cors: opts.cors === undefined ? [] : opts.cors.split(',').map((o) => o.trim()),
        insecure: opts.insecure ?? false,
        maxConnections: opts.maxConnections,
        headersTimeoutMs: opts.headersTimeout,
        requestTimeoutMs: opts.requestTimeout,
        keepAliveTimeoutMs: opts.keepAliveTimeout,
        maxBodyBytes: opts.maxBody,
        logger,
      });
      await bridge.start();
      const manhole = await startManhole(opts, { bridge }, logger);
      onShutdown(async () => {
        await manhole?.close();
        await bridge.stop();
      }, logger);
      process.stdout.write(`nodeset web listening on ${bridge.url}\n`);
    });
}
