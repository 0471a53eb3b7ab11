import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import pino, { type Logger } from 'pino';
import { NodesetError } from '../protocol/errors.js';
import { DEFAULT_DISPATCHER_URL } from '../protocol/url.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export interface CommonOptions {
  loglevel: string;
  logfile?: string;
  pidfile?: string;
}

export interface NodeCommandOptions extends CommonOptions {
  dispatcherUrl: string;
  name?: string;
  token?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** A commander program with the options every nodeset command has. */
export function baseCommand(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .version(packageVersion(), '-V, --version')
    .addOption(new Option('--loglevel <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .option('--logfile <file>', 'write logs to this file instead of stderr')
    .option('--pidfile <file>', 'write the process id to this file while running')
    .showHelpAfterError();
}

/** Adds the options of commands that run a node. */
export function withNodeOptions(command: Command): Command {
  return command
    .option(
      '--dispatcher-url <url>',
      'dispatcher to connect to (env NODESET_DISPATCHER_URL)',
      process.env.NODESET_DISPATCHER_URL ?? DEFAULT_DISPATCHER_URL,
    )
    .option('--name <name>', 'node name (default: a random UUID)')
    .option('--token <token>', 'authentication token (default: from the URL, else env NODESET_TOKEN)')
    .option('--tls-ca <file>', 'CA certificate to trust for nodesets:// URLs (PEM)')
    .option('--tls-cert <file>', 'client certificate for mutual TLS (PEM)')
    .option('--tls-key <file>', 'client key for mutual TLS (PEM)');
}

/** The Node options that node commands share (name, URL, token, TLS files). */
export function nodeConnectionOptions(opts: NodeCommandOptions) {
  const read = (option: string, path: string | undefined) => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (cause) {
      throw new NodesetError('BAD_OPTION', `${option}: cannot read ${path}: ${(cause as Error).message}`, { cause });
    }
  };
  return {
    dispatcherUrl: opts.dispatcherUrl,
    name: opts.name,
    token: opts.token,
    tls: {
      ca: read('--tls-ca', opts.tlsCa),
      cert: read('--tls-cert', opts.tlsCert),
      key: read('--tls-key', opts.tlsKey),
    },
  };
}

/** Structured JSON logs to stderr, or to --logfile. */
export function createLogger(options: CommonOptions): Logger {
  const destination =
    options.logfile === undefined
      ? pino.destination({ fd: 2, sync: true })
      : pino.destination({ dest: options.logfile, mkdir: true, sync: true });
  return pino({ level: options.loglevel }, destination);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Writes the pid file, refusing when it names a live process; removes it at exit.
 */
export function writePidfile(path: string | undefined): void {
  if (path === undefined) return;
  if (existsSync(path)) {
    const pid = Number(readFileSync(path, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new NodesetError('BAD_OPTION', `pid file ${path} names process ${pid}, which is running`);
    }
  }
  writeFileSync(path, `${process.pid}\n`);
  process.once('exit', () => {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  });
}

/** Runs `stop` once on SIGINT or SIGTERM, then exits with `code`. */
export function onShutdown(stop: () => Promise<void>, logger: Logger): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

/** Prints a failure the way every command does and sets the exit code. */
export function fail(error: unknown, code = 1): never {
  const message =
    error instanceof NodesetError ? `${error.code}: ${error.message}` : String((error as Error)?.message ?? error);
  process.stderr.write(`error: ${message}\n`);
  process.exit(code);
}

/** Parses an integer option, failing with a readable message. */
export function intOption(name: string, min = 0): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new NodesetError('BAD_OPTION', `${name} must be an integer >= ${min}`);
    return n;
  };
}
