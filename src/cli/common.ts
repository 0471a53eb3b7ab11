import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { NodesetError } from '../protocol/errors.js';
import { DEFAULT_DISPATCHER_URL } from '../protocol/url.js';
import { USAGE_EXIT_CODE } from './config.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export interface CommonOptions {
  loglevel: string;
  logfile?: string;
  pidfile?: string;
  config?: string;
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

/**
 * A commander program with the options every nodeset command has. Usage
 * errors exit with code 2.
 */
export function baseCommand(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .version(packageVersion(), '-V, --version')
    .addOption(new Option('--config <file>', 'read options from a YAML or JSON file'))
    .addOption(new Option('--loglevel <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .option('--logfile <file>', 'write logs to this file instead of stderr (reopened on SIGHUP)')
    .option('--pidfile <file>', 'write the process id to this file while running')
    .showHelpAfterError(`(${name} --help for usage)`)
    .exitOverride();
}

/** Adds the options of commands that run a node. */
export function withNodeOptions(command: Command): Command {
  return command
    .option(
      '--dispatcher-url <url>',
      'dispatcher to connect to (or set NODESET_DISPATCHER_URL)',
      DEFAULT_DISPATCHER_URL,
    )
    .option('--name <name>', 'node name (default: a random UUID)')
    .option('--token <token>', 'authentication token (default: from the URL)')
    .option('--tls-ca <file>', 'CA certificate to trust for nodesets:// URLs (PEM)')
    .option('--tls-cert <file>', 'client certificate for mutual TLS (PEM)')
    .option('--tls-key <file>', 'client key for mutual TLS (PEM)');
}

function readPemFile(option: string, path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (cause) {
    throw new NodesetError('BAD_OPTION', `${option}: cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
}

/** Reads a PEM file named by an option. */
export function readPem(option: string, path: string): Buffer {
  return readPemFile(option, path) as Buffer;
}

/** The Node options that node commands share (name, URL, token, TLS files). */
export function nodeConnectionOptions(opts: NodeCommandOptions) {
  return {
    dispatcherUrl: opts.dispatcherUrl,
    name: opts.name,
    token: opts.token,
    tls: {
      ca: readPemFile('--tls-ca', opts.tlsCa),
      cert: readPemFile('--tls-cert', opts.tlsCert),
      key: readPemFile('--tls-key', opts.tlsKey),
    },
  };
}

/**
 * Structured logs: JSON, or one human-readable line per record when stderr is
 * a terminal; to --logfile when given, reopened on SIGHUP (for logrotate).
 * Errors are logged as their message alone: the stack (and the chain of
 * causes) only at --loglevel debug or trace, where it helps.
 */
export function createLogger(options: CommonOptions): Logger {
  const verbose = options.loglevel === 'debug' || options.loglevel === 'trace';
  const settings = {
    level: options.loglevel,
    serializers: { err: verbose ? pino.stdSerializers.errWithCause : briefError },
  };
  if (options.logfile !== undefined) {
    const destination = pino.destination({ dest: options.logfile, mkdir: true, sync: true });
    process.on('SIGHUP', () => destination.reopen());
    return pino(settings, destination);
  }
  if (process.stderr.isTTY) {
    const stream = pretty({
      destination: 2,
      sync: true,
      colorize: true,
      singleLine: !verbose,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: verbose ? 'pid,hostname' : 'pid,hostname,err',
      messageFormat: (log, messageKey) => {
        const message = String(log[messageKey] ?? '');
        const err = log.err;
        return typeof err === 'string' && !message.includes(err) ? `${message}: ${err}` : message;
      },
    });
    return pino(settings, stream);
  }
  return pino(settings, pino.destination({ fd: 2, sync: true }));
}

/** An error as one line: its own message (which names its cause), no stack. */
function briefError(err: unknown): unknown {
  return err instanceof Error ? err.message : err;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Writes the pid file, refusing when it names a live process; removes it at exit. */
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

/** Runs `stop` once on SIGINT or SIGTERM, then exits 0. */
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

/** Prints a failure the way every command does and exits: 2 for bad options, 1 otherwise. */
export function fail(error: unknown, code?: number): never {
  const message =
    error instanceof NodesetError ? `${error.code}: ${error.message}` : String((error as Error)?.message ?? error);
  process.stderr.write(`error: ${message}\n`);
  process.exit(code ?? (error instanceof NodesetError && error.code === 'BAD_OPTION' ? USAGE_EXIT_CODE : 1));
}

/** Parses the command line and runs the program; maps every failure to an exit code. */
export async function run(program: Command, argv?: string[]): Promise<void> {
  try {
    await (argv === undefined ? program.parseAsync() : program.parseAsync(argv, { from: 'user' }));
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : USAGE_EXIT_CODE);
    fail(err);
  }
}

export { intOption } from './config.js';
