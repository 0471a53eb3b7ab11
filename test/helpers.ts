import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Dispatcher, type DispatcherOptions, Node, type NodeOptions } from '../src/index.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

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
      const timer = setTimeout(() => reject(new Error(`latch timed out with ${this.#count} left`)), timeoutMs);
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
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A CLI command run as a real process from the built package. */
export class CliProcess {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  readonly stderr: string[] = [];
  #watchers: { re: RegExp; resolve(line: string): void }[] = [];

  constructor(command: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, [`${ROOT}dist/cli/${command}.js`, ...args], {
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
  }

  /** Resolves with the first stdout line (past or future) matching `re`. */
  waitForLine(re: RegExp, timeoutMs = 10_000): Promise<string> {
    const seen = this.lines.find((l) => re.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `no line matching ${re} within ${timeoutMs} ms; stdout: ${this.lines.join('\n')}; stderr: ${this.stderr.join('\n')}`,
            ),
          ),
        timeoutMs,
      );
      this.#watchers.push({
        re,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  }

  async exit(timeoutMs = 10_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const [code] = (await once(this.child, 'exit')) as [number | null];
    clearTimeout(timer);
    return code;
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exit();
  }
}

/** Starts `nodeset-dispatcher` on a free port; resolves once it printed its URL. */
export async function spawnDispatcher(args: string[] = []): Promise<{ proc: CliProcess; url: string; port: number }> {
  const proc = new CliProcess('nodeset-dispatcher', ['--listen', '127.0.0.1:0', '--host-name', 'testhost', ...args]);
  const line = await proc.waitForLine(/listening on nodeset:\/\//);
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
    const bin = NatsServer.find();
    if (bin === null) throw new Error('nats-server is not installed');
    const child = spawn(bin, ['-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const re = /Listening for client connections on 127\.0\.0\.1:(\d+)/;
    this.port = await new Promise<number>((resolve, reject) => {
      let text = '';
      const onData = (c: Buffer) => {
        text += c.toString();
        const m = re.exec(text);
        if (m !== null) resolve(Number(m[1]));
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`nats-server exited (${code}): ${text}`)));
    });
    return this;
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await once(child, 'exit');
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
