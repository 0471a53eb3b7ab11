import type { Command } from 'commander';
import { Dispatcher } from '../dispatcher/dispatcher.js';
import { defaultDispatcherOptions } from '../dispatcher/options.js';
import { NatsFederation, type NatsFederationOptions } from '../federation/nats-federation.js';
import { checkMonitorListen, MonitorServer } from '../monitor/monitor-server.js';
import { NodesetError } from '../protocol/errors.js';
import { parseHostPort } from '../protocol/url.js';
import { AuthConfig } from '../security/auth-config.js';
import { hashToken } from '../security/keys.js';
import {
  baseCommand,
  type CommonOptions,
  createLogger,
  intOption,
  onShutdown,
  readPem,
  writePidfile,
} from './common.js';
import { resolveOptions } from './config.js';
import { type ManholeOptions, manholeToken, startManhole, withManholeOptions } from './manhole.js';
import { MONITOR_TOKEN_ENV, secretFromFileOrEnv } from './secrets.js';

interface DispatcherCliOptions extends CommonOptions, ManholeOptions {
  listen: string;
  hostName?: string;
  heartbeatInterval?: number;
  heartbeatTimeout?: number;
  maxPayload?: number;
  maxPending?: number;
  pushbackHigh?: number;
  maxPushback?: number;
  maxSubscriptions?: number;
  maxConnections?: number;
  maxConnectionsPerIdentity?: number;
  handshakeTimeout?: number;
  auth?: string;
  insecure?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  hashToken?: string;
  monitor: string | false;
  monitorTokenFile?: string;
  monitorInsecure?: boolean;
  federation?: string;
  federationUser?: string;
  federationPasswordFile?: string;
  federationTokenFile?: string;
  federationCreds?: string;
  federationNkey?: string;
  federationTlsCa?: string;
  federationTlsCert?: string;
  federationTlsKey?: string;
  federationPingInterval?: number;
}

/** Environment variables that may hold the federation's NATS password or token instead of a file. */
export const FEDERATION_PASSWORD_ENV = 'NODESET_FEDERATION_PASSWORD';
export const FEDERATION_TOKEN_ENV = 'NODESET_FEDERATION_TOKEN';

/** The NATS link's options from the command line. */
function federationOptions(opts: DispatcherCliOptions, logger: NatsFederationOptions['logger']): NatsFederationOptions {
  const o: NatsFederationOptions = { servers: (opts.federation ?? '').split(',').map((u) => u.trim()), logger };
  if (opts.federationUser !== undefined) o.user = opts.federationUser;
  const pass = secretFromFileOrEnv('--federation-password-file', opts.federationPasswordFile, FEDERATION_PASSWORD_ENV);
  if (pass !== undefined) o.pass = pass;
  const token = secretFromFileOrEnv('--federation-token-file', opts.federationTokenFile, FEDERATION_TOKEN_ENV);
  if (token !== undefined) o.token = token;
  if (opts.federationCreds !== undefined) o.credsFile = opts.federationCreds;
  if (opts.federationNkey !== undefined) o.nkeySeedFile = opts.federationNkey;
  if (opts.federationTlsCa !== undefined || opts.federationTlsCert !== undefined) {
    o.tls = {};
    if (opts.federationTlsCa !== undefined) o.tls.caFile = opts.federationTlsCa;
    if (opts.federationTlsCert !== undefined) o.tls.certFile = opts.federationTlsCert;
    if (opts.federationTlsKey !== undefined) o.tls.keyFile = opts.federationTlsKey;
  }
  if (opts.federationPingInterval !== undefined) o.pingIntervalMs = opts.federationPingInterval;
  return o;
}

/** An address in use, said in one line with what to do about it; other errors unchanged. */
function inUse(err: unknown, address: string, hint: string): unknown {
  const code = (err as NodeJS.ErrnoException).code ?? ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
  const text = `${(err as Error).message ?? ''}`;
  if (code !== 'EADDRINUSE' && !text.includes('EADDRINUSE')) return err;
  return new Error(`${address} is already in use: ${hint}`, { cause: err });
}

/** The `nodeset-dispatcher` command (also `nodeset dispatcher`). */
export function dispatcherCommand(name = 'nodeset-dispatcher'): Command {
  const defaults = defaultDispatcherOptions();
  return withManholeOptions(
    baseCommand(name, 'Run the nodeset dispatcher: routes events between the nodes of this host.'),
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
      '--pushback-high <bytes>',
      `outbound bytes queued for a pushback subscriber past which its publishers are held (default ${defaults.pushbackHighBytes}, or a quarter of --max-pending when smaller)`,
      intOption('--pushback-high', 1),
    )
    .option(
      '--max-pushback <ms>',
      `longest a pushback subscriber may hold a publisher before it is cut off (default ${defaults.maxPushbackMs})`,
      intOption('--max-pushback', 10),
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
    .option(
      '--max-connections-per-identity <n>',
      `connections per authenticated identity (default ${defaults.maxConnectionsPerIdentity})`,
      intOption('--max-connections-per-identity', 1),
    )
    .option(
      '--handshake-timeout <ms>',
      `close connections that send no HELLO within this time (default ${defaults.handshakeTimeoutMs})`,
      intOption('--handshake-timeout', 10),
    )
    .option('--auth <file>', 'identities, hashed tokens and permissions (YAML or JSON); see docs/security.md')
    .option('--insecure', 'allow listening on a non-loopback address without --auth')
    .option('--tls-cert <file>', 'TLS certificate (PEM); clients then use nodesets:// URLs')
    .option('--tls-key <file>', 'TLS private key (PEM)')
    .option('--tls-ca <file>', 'require client certificates signed by this CA (mutual TLS)')
    .option(
      '--monitor <host:port>',
      'monitoring endpoint: /metrics, /stats, /nodes, /healthz, dashboard at /',
      '127.0.0.1:8222',
    )
    .option('--no-monitor', 'no monitoring endpoint')
    .option(
      '--monitor-token-file <file>',
      `file holding the token (or its sha256: form) the monitoring endpoint requires as "Authorization: Bearer"; or set ${MONITOR_TOKEN_ENV}`,
    )
    .option('--monitor-insecure', 'allow a non-loopback --monitor without a token')
    .option('--federation <urls>', 'join the federation: comma-separated NATS URLs (nats://host:port,…)')
    .option('--federation-user <name>', 'NATS user name for the federation link')
    .option('--federation-password-file <file>', `file holding the NATS password (or set ${FEDERATION_PASSWORD_ENV})`)
    .option('--federation-token-file <file>', `file holding the NATS token (or set ${FEDERATION_TOKEN_ENV})`)
    .option('--federation-creds <file>', 'NATS credentials file (user JWT and NKey seed)')
    .option('--federation-nkey <file>', 'file holding a NATS NKey user seed (SU…)')
    .option('--federation-tls-ca <file>', 'CA certificate that signs the NATS servers (enables TLS)')
    .option('--federation-tls-cert <file>', 'client certificate for the NATS link (with --federation-tls-key)')
    .option('--federation-tls-key <file>', 'client key for the NATS link')
    .option(
      '--federation-ping-interval <ms>',
      'NATS ping interval: a server that answers none of 2 pings is stale (default 2000)',
      intOption('--federation-ping-interval', 100),
    )
    .option('--hash-token <token>', 'print the stored form of a token for the auth file, and exit')
    .action(async (_opts: unknown, command: Command) => {
      const opts = resolveOptions<DispatcherCliOptions>(command);
      if (opts.hashToken !== undefined) {
        process.stdout.write(`${hashToken(opts.hashToken)}\n`);
        return;
      }
      const logger = createLogger(opts);
      if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) {
        throw new NodesetError('BAD_OPTION', '--tls-cert and --tls-key go together');
      }
      if (opts.tlsCa !== undefined && opts.tlsCert === undefined) {
        throw new NodesetError('BAD_OPTION', '--tls-ca needs --tls-cert and --tls-key');
      }
      const tls =
        opts.tlsCert !== undefined && opts.tlsKey !== undefined
          ? {
              cert: readPem('--tls-cert', opts.tlsCert),
              key: readPem('--tls-key', opts.tlsKey),
              ...(opts.tlsCa === undefined ? {} : { ca: readPem('--tls-ca', opts.tlsCa) }),
            }
          : null;
      const monitorAt = opts.monitor === false ? null : parseHostPort(opts.monitor);
      const monitorToken =
        secretFromFileOrEnv('--monitor-token-file', opts.monitorTokenFile, MONITOR_TOKEN_ENV) ?? null;
      const monitorInsecure = opts.monitorInsecure ?? false;
      if (monitorAt !== null) checkMonitorListen(monitorAt.host, monitorToken !== null, monitorInsecure);
      manholeToken(opts);
      writePidfile(opts.pidfile);
      const { host, port } = parseHostPort(opts.listen);
      const dispatcher = new Dispatcher(
        {
          host,
          port,
          hostName: opts.hostName,
          heartbeatIntervalMs: opts.heartbeatInterval,
          heartbeatTimeoutMs: opts.heartbeatTimeout,
          maxPayloadBytes: opts.maxPayload,
          maxPendingBytes: opts.maxPending,
          pushbackHighBytes: opts.pushbackHigh,
          maxPushbackMs: opts.maxPushback,
          maxSubscriptionsPerConnection: opts.maxSubscriptions,
          maxConnections: opts.maxConnections,
          maxConnectionsPerIdentity: opts.maxConnectionsPerIdentity,
          handshakeTimeoutMs: opts.handshakeTimeout,
          auth: opts.auth === undefined ? null : AuthConfig.load(opts.auth),
          insecure: opts.insecure ?? false,
          tls,
          logger,
        },
        opts.federation === undefined ? null : new NatsFederation(federationOptions(opts, logger)),
      );
      try {
        await dispatcher.start();
      } catch (err) {
        throw inUse(err, `${host}:${port}`, 'is another dispatcher running? choose another address with --listen');
      }
      let monitor: MonitorServer | null = null;
      if (monitorAt !== null) {
        try {
          monitor = await new MonitorServer(dispatcher, { token: monitorToken, insecure: monitorInsecure }).start(
            monitorAt.host,
            monitorAt.port,
          );
        } catch (err) {
          await dispatcher.stop();
          throw inUse(
            err,
            `${monitorAt.host}:${monitorAt.port}`,
            'that is the monitoring endpoint (another dispatcher has it?); choose another with --monitor HOST:PORT, or go without: --no-monitor',
          );
        }
      }
      const manhole = await startManhole(opts, { dispatcher, monitor }, logger);
      if (monitor !== null && manhole !== null) {
        monitor.addCounter(
          'nodeset_manhole_auth_failures_total',
          'Wrong manhole tokens',
          () => manhole.stats.authFailures,
        );
        monitor.addCounter(
          'nodeset_manhole_throttled_total',
          'Manhole attempts turned away unchecked (address in back-off, or too many waiting)',
          () => manhole.stats.throttled,
        );
      }
      onShutdown(async () => {
        await manhole?.close();
        await monitor?.stop();
        await dispatcher.stop();
      }, logger);
      process.stdout.write(`nodeset dispatcher listening on ${dispatcher.url}\n`);
      if (monitor !== null) process.stdout.write(`nodeset monitor listening on ${monitor.url}\n`);
    });
}
