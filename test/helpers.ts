import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { NatsFederation, type NatsFederationOptions } from '../src/federation/nats-federation.js';
import { Dispatcher, type DispatcherOptions, Node, type NodeOptions } from '../src/index.js';
import { isRunning, spawnOwned, stopProcess, waitForExit } from './owned-processes.js';

export { spawnOwned, stopProcess, waitForExit } from './owned-processes.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * Waits in tests are bounds on failure, not claims about speed: a busy machine
 * may take many times longer to start a process or route a burst. Every timeout
 * given to `until`, `Latch.wait` and `waitForLine` is multiplied by this factor
 * (NODESET_TEST_WAIT_SCALE, default 3), so a slow machine is never a failure.
 */
export const WAIT_SCALE = Math.max(1, Number(process.env.NODESET_TEST_WAIT_SCALE ?? 3) || 3);

/** A dispatcher in this process on a free port. */
export async function startDispatcher(options: DispatcherOptions = {}): Promise<Dispatcher> {
  return new Dispatcher({ port: 0, hostName: 'testhost', ...options }).start();
}

/** A started node connected to `dispatcher`. */
export async function startNode(dispatcher: Dispatcher | string, options: NodeOptions = {}): Promise<Node> {
  const url = typeof dispatcher === 'string' ? dispatcher : dispatcher.url;
  return new Node({ dispatcherUrl: url, startTimeoutMs: 5000, ...options }).start();
}

/** Counts down to zero; `wait` resolves then, or rejects after a timeout. */
export class Latch {
  #count: number;
  #waiters: (() => void)[] = [];

  constructor(count = 1) {
    this.#count = count;
  }

  get count(): number {
    return this.#count;
  }

  countDown(): void {
    if (this.#count === 0) return;
    this.#count--;
    if (this.#count === 0) for (const w of this.#waiters.splice(0)) w();
  }

  wait(timeoutMs = 5000): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`latch timed out with ${this.#count} left`)),
        timeoutMs * WAIT_SCALE,
      );
      this.#waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** Resolves when `predicate` holds, polling on the event loop; rejects after the timeout. */
export async function until(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs * WAIT_SCALE;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${timeoutMs * WAIT_SCALE} ms)`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A CLI command run as a real process from the built package; owned, so it never outlives its test file. */
export class CliProcess {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  readonly stderr: string[] = [];
  #watchers: { re: RegExp; resolve(line: string): void; reject(err: Error): void }[] = [];

  constructor(
    readonly command: string,
    args: string[],
    env: NodeJS.ProcessEnv = {},
  ) {
    this.child = spawnOwned(process.execPath, [`${ROOT}dist/cli/${command}.js`, ...args], {
      // Monitoring endpoints on free ports, so dispatchers can run side by side.
      env: { ...process.env, NODESET_LOGLEVEL: 'warn', NODESET_MONITOR: '127.0.0.1:0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.lines.push(line);
      this.#watchers = this.#watchers.filter((w) => {
        if (!w.re.test(line)) return true;
        w.resolve(line);
        return false;
      });
    });
    createInterface({ input: this.child.stderr! }).on('line', (line) => this.stderr.push(line));
    // A process that ends fails every wait for a line at once, not at its timeout.
    this.child.once('close', (code, signal) => {
      for (const w of this.#watchers.splice(0))
        w.reject(this.#failure(`exited (${code ?? signal}) before a line matched ${w.re}`));
    });
  }

  #failure(what: string): Error {
    return new Error(
      `${this.command} (pid ${this.child.pid}): ${what}; stdout: ${this.lines.join('\n')}; stderr: ${this.stderr.join('\n')}`,
    );
  }

  /** Resolves with the first stdout line (past or future) matching `re`; rejects at the timeout or when the process ends. */
  waitForLine(re: RegExp, timeoutMs = 10_000): Promise<string> {
    const seen = this.lines.find((l) => re.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    if (this.child.stdout!.readableEnded) return Promise.reject(this.#failure(`no line matching ${re}`));
    return new Promise((resolve, reject) => {
      const ms = timeoutMs * WAIT_SCALE;
      const watcher = {
        re,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        this.#watchers = this.#watchers.filter((w) => w !== watcher);
        reject(this.#failure(`no line matching ${re} within ${ms} ms`));
      }, ms);
      this.#watchers.push(watcher);
    });
  }

  /** Waits for the process to exit by itself; SIGKILL past the timeout. */
  async exit(timeoutMs = 10_000): Promise<number | null> {
    if (!isRunning(this.child)) return this.child.exitCode;
    return waitForExit(this.child, timeoutMs * WAIT_SCALE);
  }

  /** Sends `signal`, then SIGKILL after a grace; resolves with the exit code. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    return stopProcess(this.child, signal);
  }
}

/**
 * Starts a CLI command and resolves with the process and its first stdout line
 * matching `ready`. A start-up that fails or times out kills the process before
 * rejecting, so it never outlives the wait.
 */
export async function startCli(
  command: string,
  args: string[],
  ready: RegExp,
  timeoutMs = 10_000,
  env: NodeJS.ProcessEnv = {},
): Promise<{ proc: CliProcess; line: string }> {
  const proc = new CliProcess(command, args, env);
  try {
    return { proc, line: await proc.waitForLine(ready, timeoutMs) };
  } catch (err) {
    await proc.kill('SIGKILL');
    throw err;
  }
}

/** Starts `nodeset-dispatcher` on a free port; resolves once it printed its URL. */
export async function spawnDispatcher(args: string[] = []): Promise<{ proc: CliProcess; url: string; port: number }> {
  const { proc, line } = await startCli(
    'nodeset-dispatcher',
    ['--listen', '127.0.0.1:0', '--host-name', 'testhost', ...args],
    /listening on nodeset:\/\//,
  );
  const url = /(nodeset:\/\/\S+)/.exec(line)![1]!;
  return { proc, url, port: Number(new URL(url).port) };
}

/** A TCP proxy in front of a dispatcher, to cut one node's connection without touching the others. */
export class TcpProxy {
  #server: import('node:net').Server | null = null;
  #sockets = new Set<import('node:net').Socket>();
  port = 0;

  constructor(readonly targetPort: number) {}

  async start(port = this.port): Promise<this> {
    const net = await import('node:net');
    const server = net.createServer((client) => {
      const upstream = net.connect({ host: '127.0.0.1', port: this.targetPort });
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    this.#server = server;
    this.port = (server.address() as import('node:net').AddressInfo).port;
    return this;
  }

  get url(): string {
    return `nodeset://127.0.0.1:${this.port}`;
  }

  /** Stops listening and cuts every proxied connection. */
  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    const server = this.#server;
    this.#server = null;
    if (server !== null) await new Promise((resolve) => server.close(resolve));
  }
}

export interface TestCerts {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** A throw-away CA, a server certificate for 127.0.0.1 and a client certificate, both signed by the CA. */
export async function makeCerts(): Promise<TestCerts> {
  const { default: selfsigned } = await import('selfsigned');
  const ca = await selfsigned.generate([{ name: 'commonName', value: 'nodeset test CA' }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const signer = { key: ca.private, cert: ca.cert };
  const server = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    algorithm: 'sha256',
    ca: signer,
  });
  const client = await selfsigned.generate([{ name: 'commonName', value: 'nodeset test client' }], {
    keySize: 2048,
    algorithm: 'sha256',
    ca: signer,
  });
  return {
    ca: ca.cert,
    serverCert: server.cert,
    serverKey: server.private,
    clientCert: client.cert,
    clientKey: client.private,
  };
}

/** A free TCP port on 127.0.0.1 (bound on port 0, then released), for servers whose ports must be known in advance (cluster routes, a restart on the same port). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Starts an owned nats-server with these arguments; resolves with the port it
 * listens on for clients. Killed if it does not listen in time.
 */
export async function startNatsProcess(args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const bin = NatsServer.find();
  if (bin === null) throw new Error('nats-server is not installed');
  const child = spawnOwned(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = 10_000 * WAIT_SCALE;
  let timer: NodeJS.Timeout | undefined;
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let text = '';
      const onData = (c: Buffer) => {
        text += c.toString();
        const m = /Listening for client connections on 127\.0\.0\.1:(\d+)/.exec(text);
        if (m !== null) resolve(Number(m[1]));
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', (code) => reject(new Error(`nats-server exited (${code}): ${text}`)));
      timer = setTimeout(() => reject(new Error(`nats-server did not listen within ${ms} ms: ${text}`)), ms);
    });
    return { child, port };
  } catch (err) {
    await stopProcess(child, 'SIGKILL');
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** A nats-server of the test's own, on a free port (restartable on the same port). */
export class NatsServer {
  child: ChildProcess | null = null;
  port = 0;

  /** The binary, when installed. */
  static find(): string | null {
    return (
      ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].find((p) => existsSync(p)) ?? null
    );
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(port = this.port === 0 ? -1 : this.port): Promise<this> {
    const { child, port: bound } = await startNatsProcess(['-a', '127.0.0.1', '-p', String(port)]);
    this.child = child;
    this.port = bound;
    return this;
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (child !== null) await stopProcess(child);
  }
}

/** Debian's chromium, when installed (never a downloaded browser). */
export const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
/** Skip reason for browser tests; CI installs chromium, so there a missing one fails. */
export const BROWSER_SKIP =
  CHROMIUM || process.env.NODESET_CI ? false : 'chromium is not installed (apt-get install chromium)';

/** Launches Debian's chromium headless through playwright-core, with the flags a closed network needs. */
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A node on a federated dispatcher as the federation tests start it (no stats publishes, 3 s acks); kept in `owned` to be stopped. */
export async function federatedNode(owned: Node[], dispatcher: Dispatcher, name: string): Promise<Node> {
  const n = await startNode(dispatcher, { name, statsIntervalMs: 0, ackTimeoutMs: 3000 });
  owned.push(n);
  return n;
}

/** A dispatcher named `hostName` on a NATS link, with its log lines kept; kept in `owned` to be stopped. */
export async function loggedHost(
  owned: { stop(): Promise<void> }[],
  hostName: string,
  options: NatsFederationOptions,
): Promise<{ d: Dispatcher; link: NatsFederation; logs: { level: number; msg: string; reason?: string }[] }> {
  const logs: { level: number; msg: string; reason?: string }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const link = new NatsFederation({ startWaitMs: 300, ...options, logger });
  const d = await new Dispatcher({ port: 0, hostName }, link).start();
  owned.push(d);
  return { d, link, logs };
}
