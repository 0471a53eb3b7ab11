/**
 * The connection to NATS and its state: options and their defaults, the
 * first connection (retried by us, so that stop() leaves no timer), the
 * client's status (link down on a disconnect or a stale connection, up on
 * reconnect), and the bounded outbound: bytes handed to NATS and not yet
 * confirmed by the server are counted, and past a bound publishes are
 * refused with BUFFER_FULL instead of piling up in memory.
 */
import { readFileSync } from 'node:fs';
import {
  type ConnectionOptions,
  connect,
  credsAuthenticator,
  type NatsConnection,
  nkeyAuthenticator,
  type PublishOptions,
} from 'nats';
import type { Logger } from 'pino';
import { NodesetError } from '../protocol/errors.js';

export interface NatsFederationOptions {
  /** NATS server URLs (`nats://host:port`). */
  servers: string[];
  logger?: Logger;
  /** Timeout of a who-subscribes query to another host, in ms. Default 2000. */
  queryTimeoutMs?: number;
  /** Interval of this dispatcher's announcement on the directory, in ms. Default 1000. */
  heartbeatIntervalMs?: number;
  /** A host silent for this long has left the directory, in ms. Default 3500. */
  hostTimeoutMs?: number;
  /** NATS client pings, in ms: a server that answers none of `maxPingOut` is stale. Default 2000. */
  pingIntervalMs?: number;
  /** Unanswered NATS pings before the link counts as lost. Default 2. */
  maxPingOut?: number;
  /** Bytes sent towards NATS and not yet confirmed by the server past which cross-host publishes get BUFFER_FULL. Default 32 MiB. */
  maxPendingBytes?: number;
  /** How long start() waits for NATS before connecting in the background, in ms. Default 1500. */
  startWaitMs?: number;
  /** NATS credentials: user and password, a token, a creds file (JWT and NKey seed), or an NKey seed file. */
  user?: string;
  pass?: string;
  token?: string;
  credsFile?: string;
  /** A file holding an NKey user seed (`SU…`): the server knows the user by its public key. */
  nkeySeedFile?: string;
  /** TLS for the NATS link: a CA to verify the server, and a client certificate and key. */
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  /** Version announced to the other hosts. */
  version?: string;
}

/** Option defaults, in ms. */
export const DEFAULT_FEDERATION_OPTIONS = {
  queryTimeoutMs: 2000,
  heartbeatIntervalMs: 1000,
  hostTimeoutMs: 3500,
  pingIntervalMs: 2000,
  maxPingOut: 2,
  startWaitMs: 1500,
  maxPendingBytes: 32 * 1024 * 1024,
} as const;

/** Server errors logged per link (the rest are counted only). */
const SERVER_ERRORS_LOGGED = 20;

/** Pause between attempts to reach NATS for the first time, in ms. */
const FIRST_CONNECT_RETRY_MS = 250;

/** What the link tells its owner about the connection's state. */
export interface LinkEvents {
  /** The connection was lost (disconnect or stale): cross-host publishes are refused until it returns. */
  down(): void;
  /** The client reconnected and declared every subscription again. */
  back(): void;
}

export class NatsLink {
  readonly options: NatsFederationOptions;
  readonly logger: Logger;
  #nc: NatsConnection | null = null;
  #connected = false;
  #stopped = false;
  /** Bytes handed to NATS that the server has not confirmed (by answering a flush) yet. */
  #unconfirmedBytes = 0;
  #confirming = false;
  readonly #maxUnconfirmed: number;

  /** Errors the NATS server reported on the live link (permissions violations, mostly). */
  serverErrors = 0;

  /** Why the last attempt to reach NATS failed (null: it did not, or none was made yet). */
  #failure: string | null = null;

  constructor(options: NatsFederationOptions, logger: Logger) {
    checkSecurityOptions(options);
    this.options = options;
    this.logger = logger;
    this.#maxUnconfirmed = options.maxPendingBytes ?? DEFAULT_FEDERATION_OPTIONS.maxPendingBytes;
  }

  /** Why the link could not connect, in one line (null while nothing failed). */
  get failure(): string | null {
    return this.#failure;
  }

  /** The connection, once NATS was reached (it may be down meanwhile: see `connected`). */
  get nc(): NatsConnection | null {
    return this.#nc;
  }

  get connected(): boolean {
    return this.#connected;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  get maxPayload(): number {
    return this.#nc?.info?.max_payload ?? 0;
  }

  /** Whether the bytes NATS has not confirmed passed the bound (a stalled server): cross-host publishes are refused. */
  get full(): boolean {
    return this.#unconfirmedBytes > this.#maxUnconfirmed;
  }

  /** Throws BUFFER_FULL while the bound is passed. */
  checkRoom(): void {
    if (this.#unconfirmedBytes > this.#maxUnconfirmed) {
      throw new NodesetError(
        'BUFFER_FULL',
        `the federation link has ${this.#unconfirmedBytes} bytes the NATS server has not confirmed yet`,
      );
    }
  }

  /**
   * Tries the servers until one answers, or until stop(). The retries are
   * ours rather than the client's (waitOnFirstConnect), so that stopping a
   * dispatcher that never reached NATS leaves no timer behind.
   */
  async firstConnect(host: string): Promise<NatsConnection | null> {
    while (!this.#stopped) {
      try {
        const nc = await connect(this.#connectOptions(host));
        if (this.#stopped) {
          await nc.close();
          return null;
        }
        this.#nc = nc;
        this.#failure = null;
        return nc;
      } catch (err) {
        const { reason, refused } = connectFailure(err);
        // Logged when the reason changes: refused credentials or a failed TLS handshake are errors
        // that retrying does not cure; a server not (yet) reachable is not.
        if (reason !== this.#failure) {
          if (refused)
            this.logger.error({ servers: this.options.servers, reason }, 'federation link down: NATS refused it');
          else this.logger.debug({ servers: this.options.servers, reason }, 'NATS not reachable; retrying');
        }
        this.#failure = reason;
        await new Promise<void>((resolve) => setTimeout(resolve, FIRST_CONNECT_RETRY_MS).unref());
      }
    }
    return null;
  }

  #connectOptions(host: string): ConnectionOptions {
    const o = this.options;
    const opts: ConnectionOptions = {
      servers: o.servers,
      name: `nodeset-dispatcher-${host}`,
      noEcho: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 200,
      reconnectJitter: 100,
      waitOnFirstConnect: false,
      pingInterval: o.pingIntervalMs ?? DEFAULT_FEDERATION_OPTIONS.pingIntervalMs,
      maxPingOut: o.maxPingOut ?? DEFAULT_FEDERATION_OPTIONS.maxPingOut,
    };
    if (o.user !== undefined) opts.user = o.user;
    if (o.pass !== undefined) opts.pass = o.pass;
    if (o.token !== undefined) opts.token = o.token;
    if (o.credsFile !== undefined) opts.authenticator = credsAuthenticator(readFileSync(o.credsFile));
    if (o.nkeySeedFile !== undefined) {
      opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(readFileSync(o.nkeySeedFile, 'utf8').trim()));
    }
    if (o.tls !== undefined) opts.tls = { ...o.tls };
    return opts;
  }

  /** The link is up: subscriptions declared, announced. */
  up(): void {
    this.#connected = true;
  }

  /** Follows the client's status until the connection closes. */
  async watch(nc: NatsConnection, events: LinkEvents): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect' || status.type === 'staleConnection') {
        this.#connected = false;
        // What was not confirmed is in the client's buffer, which it does not resend after reconnecting.
        this.#unconfirmedBytes = 0;
        this.logger.warn(
          { status: status.type },
          'federation link lost; cross-host publishes are refused until it returns',
        );
        events.down();
      } else if (status.type === 'reconnect') {
        this.#connected = true;
        events.back();
        this.logger.info('federation link back; interest declared again');
      } else if (status.type === 'error') {
        this.#serverError(status as { data?: unknown; permissionContext?: { operation: string; subject: string } });
      }
    }
  }

  /**
   * An error the NATS server reported on the link (it stays up), logged at
   * `warn`: for a permissions violation, the operation and subject, which
   * the host's NATS permissions must allow (docs/federation.md). At most
   * SERVER_ERRORS_LOGGED, then only counted.
   */
  #serverError(status: { data?: unknown; permissionContext?: { operation: string; subject: string } }): void {
    this.serverErrors++;
    if (this.serverErrors > SERVER_ERRORS_LOGGED) return;
    const p = status.permissionContext;
    const logged = `${this.serverErrors} of at most ${SERVER_ERRORS_LOGGED}`;
    if (p !== undefined) {
      this.logger.warn(
        { operation: p.operation, subject: p.subject, logged },
        `NATS refused a ${p.operation} to ${p.subject} (permissions violation): give this host's NATS user that permission`,
      );
    } else {
      this.logger.warn(
        { error: String(status.data), logged },
        'the NATS server reported an error on the federation link',
      );
    }
  }

  /** Hands a message to NATS and counts its bytes as unconfirmed. */
  publish(subject: string, data: Uint8Array, options?: PublishOptions): void {
    const nc = this.#nc;
    if (nc === null) return;
    nc.publish(subject, data, options);
    this.#sentBytes(data.length);
  }

  /**
   * Counts bytes handed to NATS and not yet confirmed by the server: past a
   * quarter of the bound, a flush (a PING the server answers after reading
   * everything before it) confirms what was sent up to then. A stalled
   * server confirms nothing, so the count reaches the bound and publishes are
   * refused with BUFFER_FULL instead of piling up in memory.
   */
  #sentBytes(n: number): void {
    this.#unconfirmedBytes += n;
    this.#confirmIfDue();
  }

  /** Confirms what was sent so far, once a quarter of the bound is unconfirmed; again after each confirmation while it still is. */
  #confirmIfDue(): void {
    const nc = this.#nc;
    if (this.#confirming || nc === null || this.#unconfirmedBytes < this.#maxUnconfirmed / 4) return;
    this.#confirming = true;
    const upTo = this.#unconfirmedBytes;
    nc.flush().then(
      () => {
        this.#confirming = false;
        this.#unconfirmedBytes = Math.max(0, this.#unconfirmedBytes - upTo);
        // What was sent meanwhile may be over the bound too (a batch is up to 64 KiB): a later
        // publish cannot start the next confirmation while it is refused, so start it here.
        this.#confirmIfDue();
      },
      () => {
        this.#confirming = false;
      },
    );
  }

  /** Stops the first-connection retries (the owner says goodbye, then closes). */
  stop(): void {
    this.#stopped = true;
  }

  /** Closes the connection, if any: after stop(), or when it was refused (a duplicate host name). */
  async close(): Promise<void> {
    const nc = this.#nc;
    this.#nc = null;
    this.#connected = false;
    if (nc !== null) await nc.close();
  }
}

/** Refuses conflicting or unreadable security options at construction, with one clear message. */
function checkSecurityOptions(o: NatsFederationOptions): void {
  if (o.credsFile !== undefined && o.nkeySeedFile !== undefined) {
    throw new NodesetError('BAD_OPTION', 'federation: give a NATS creds file or an NKey seed file, not both');
  }
  if (o.pass !== undefined && o.user === undefined) {
    throw new NodesetError('BAD_OPTION', 'federation: a NATS password needs a user name (--federation-user)');
  }
  if ((o.tls?.certFile === undefined) !== (o.tls?.keyFile === undefined)) {
    throw new NodesetError(
      'BAD_OPTION',
      'federation: a TLS client certificate and its key go together (--federation-tls-cert and --federation-tls-key)',
    );
  }
  const files: [string, string | undefined][] = [
    ['creds file', o.credsFile],
    ['NKey seed file', o.nkeySeedFile],
    ['TLS CA file', o.tls?.caFile],
    ['TLS certificate file', o.tls?.certFile],
    ['TLS key file', o.tls?.keyFile],
  ];
  for (const [what, file] of files) {
    if (file === undefined) continue;
    try {
      readFileSync(file);
    } catch (cause) {
      throw new NodesetError('BAD_OPTION', `federation: cannot read the ${what} ${file}: ${(cause as Error).message}`, {
        cause,
      });
    }
  }
}

/** Error codes of a TLS handshake that failed (Node's and OpenSSL's). */
const TLS_FAILURE = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|SELF_SIGNED_|DEPTH_ZERO_|HOSTNAME_MISMATCH)/;

/** Why connecting to NATS failed, in one line; `refused`: the server refused us (credentials or TLS), not merely unreachable. */
export function connectFailure(err: unknown): { reason: string; refused: boolean } {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  // The NATS server's -ERR text comes quoted ('Authorization Violation').
  const message = (typeof e.message === 'string' ? e.message : String(err)).replace(/^'(.*)'$/, '$1');
  if (code === 'AUTHORIZATION_VIOLATION' || /authorization violation|authentication/i.test(message)) {
    return {
      reason: `NATS refused the credentials (${message}): check the user and password, token, NKey seed or creds file`,
      refused: true,
    };
  }
  if (TLS_FAILURE.test(code) || /certificate|TLS|SSL/i.test(message)) {
    return {
      reason: `TLS with the NATS server failed (${code === '' ? '' : `${code}: `}${message}): check the CA and the client certificate`,
      refused: true,
    };
  }
  return { reason: `NATS not reachable (${code === '' ? message : code})`, refused: false };
}
