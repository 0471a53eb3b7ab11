import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import pino from 'pino';
import { startManhole } from '../src/cli/manhole.js';
import { CliProcess, ROOT, startDispatcher, startNode, until } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'nodeset-ops-'));
const hasTmux = spawnSync('tmux', ['-V']).status === 0;
// CI installs tmux; there a missing tmux is a failure, not a skip.
const tmuxSkip = hasTmux || process.env.NODESET_CI ? false : 'tmux is not installed (apt-get install tmux)';

/** Host name a dispatcher started with these args and env announces. */
async function hostNameOf(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const proc = new CliProcess('nodeset-dispatcher', args, env);
  try {
    const line = await proc.waitForLine(/listening on/);
    const node = await startNode(/(nodeset:\/\/\S+)/.exec(line)![1]!);
    const host = node.dispatcherHost!;
    await node.stop();
    return host;
  } finally {
    await proc.kill();
  }
}

describe('configuration', () => {
  test('file < env < flags', async () => {
    const config = join(dir, 'dispatcher.yaml');
    writeFileSync(config, 'listen: 127.0.0.1:0\nhost-name: fromfile\nheartbeatInterval: 1000\n');
    assert.equal(await hostNameOf(['--config', config]), 'fromfile');
    assert.equal(await hostNameOf(['--config', config], { NODESET_HOST_NAME: 'fromenv' }), 'fromenv');
    assert.equal(
      await hostNameOf(['--config', config, '--host-name', 'fromflag'], { NODESET_HOST_NAME: 'fromenv' }),
      'fromflag',
    );
    // The config file may also come from the environment.
    assert.equal(await hostNameOf([], { NODESET_CONFIG: config }), 'fromfile');
  });

  test('unknown keys and bad values: one clear error naming the key, exit 2', async () => {
    const cases: [string, RegExp][] = [
      ['listen: 127.0.0.1:0\ncolour: blue\n', /unknown key "colour"/],
      ['listen: 127.0.0.1:0\nheartbeat-interval: soon\n', /key "heartbeat-interval": .*number/],
      ['listen: 127.0.0.1:0\nloglevel: loud\n', /key "loglevel"/],
      ['- just\n- a list\n', /expected a map/],
    ];
    for (const [text, message] of cases) {
      const config = join(dir, 'bad.yaml');
      writeFileSync(config, text);
      const proc = new CliProcess('nodeset-dispatcher', ['--config', config]);
      assert.equal(await proc.exit(), 2, text);
      assert.match(proc.stderr.join('\n'), message);
    }
    const badEnv = new CliProcess('nodeset-dispatcher', ['--listen', '127.0.0.1:0'], { NODESET_MAX_PAYLOAD: 'lots' });
    assert.equal(await badEnv.exit(), 2);
    assert.match(badEnv.stderr.join('\n'), /--max-payload must be an integer/);
  });

  test('the example config in deploy/ is valid', async () => {
    const { readConfig } = await import('../src/cli/config.js');
    const { dispatcherCommand } = await import('../src/cli/dispatcher-command.js');
    const values = readConfig(`${ROOT}deploy/dispatcher.yaml`, dispatcherCommand());
    assert.equal(values.get('hostName')?.value, 'web1');
    assert.equal(values.get('maxPending')?.value, 67108864);
  });

  test('the umbrella command runs the same commands', async () => {
    const proc = new CliProcess('nodeset', ['dispatcher', '--listen', '127.0.0.1:0', '--host-name', 'umbrella']);
    const line = await proc.waitForLine(/listening on/);
    const node = await startNode(/(nodeset:\/\/\S+)/.exec(line)![1]!);
    assert.equal(node.dispatcherHost, 'umbrella');
    await node.stop();
    assert.equal(await proc.kill(), 0);
    const help = new CliProcess('nodeset', ['--help']);
    assert.equal(await help.exit(), 0);
    assert.match(help.lines.join('\n'), /dispatcher[\s\S]*node[\s\S]*shell/);
  });
});

describe('processes and logs', () => {
  test('the pid file is written, refused while its process lives, removed at exit', async () => {
    const pidfile = join(dir, 'd.pid');
    const first = new CliProcess('nodeset-dispatcher', ['--listen', '127.0.0.1:0', '--pidfile', pidfile]);
    await first.waitForLine(/listening on/);
    assert.equal(readFileSync(pidfile, 'utf8').trim(), String(first.child.pid));
    const second = new CliProcess('nodeset-dispatcher', ['--listen', '127.0.0.1:0', '--pidfile', pidfile]);
    assert.equal(await second.exit(), 2);
    assert.match(second.stderr.join('\n'), new RegExp(`names process ${first.child.pid}, which is running`));
    assert.equal(await first.kill('SIGTERM'), 0);
    assert.ok(!existsSync(pidfile), 'removed at exit');
  });

  test('--logfile is reopened on SIGHUP (logrotate)', async () => {
    const logfile = join(dir, 'dispatcher.log');
    const proc = new CliProcess('nodeset-dispatcher', [
      '--listen',
      '127.0.0.1:0',
      '--logfile',
      logfile,
      '--loglevel',
      'info',
    ]);
    const url = /(nodeset:\/\/\S+)/.exec(await proc.waitForLine(/listening on/))![1]!;
    try {
      assert.match(readFileSync(logfile, 'utf8'), /dispatcher listening/);
      renameSync(logfile, `${logfile}.1`);
      proc.child.kill('SIGHUP');
      await until(() => existsSync(logfile), 5000, 'log file reopened');
      const node = await startNode(url, { name: 'after-rotation' });
      await node.stop();
      await until(() => readFileSync(logfile, 'utf8').includes('after-rotation'), 5000, 'new lines in the new file');
      assert.ok(!readFileSync(`${logfile}.1`, 'utf8').includes('after-rotation'));
    } finally {
      await proc.kill();
    }
  });
});

describe('manhole', () => {
  async function talk(port: number, lines: string[], until: RegExp): Promise<string> {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setEncoding('utf8');
    let text = '';
    socket.on('data', (c: string) => (text += c));
    await once(socket, 'connect');
    for (const l of lines) socket.write(`${l}\n`);
    const deadline = Date.now() + 5000;
    while (!until.test(text) && Date.now() < deadline && !socket.closed) await new Promise((r) => setTimeout(r, 20));
    socket.destroy();
    return text;
  }

  /** A manhole connection that has been asked for its token; `answer` sends one and resolves with all it got until closed. */
  async function prompted(port: number): Promise<{ answer(line: string): Promise<string> }> {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setEncoding('utf8');
    let text = '';
    const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(text)));
    socket.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      socket.on('data', (c: string) => {
        text += c;
        if (text.includes('token? ')) resolve();
      });
      socket.once('close', () => reject(new Error(`closed before the prompt: ${text}`)));
    });
    return {
      answer(line: string) {
        socket.write(`${line}\n`);
        return closed;
      },
    };
  }

  async function startWithManhole(args: string[], env: NodeJS.ProcessEnv) {
    const proc = new CliProcess('nodeset-dispatcher', ['--listen', '127.0.0.1:0', '--manhole', '0', ...args], env);
    try {
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(await proc.waitForLine(/manhole listening/))![1]);
      const monitorUrl = /(http:\/\/\S+)/.exec(await proc.waitForLine(/monitor listening/))![1]!;
      return { proc, port, monitorUrl };
    } catch (err) {
      await proc.kill('SIGKILL');
      throw err;
    }
  }

  test('needs a token; refuses a wrong one; gives a REPL with the dispatcher in scope', async () => {
    const noToken = new CliProcess('nodeset-dispatcher', ['--listen', '127.0.0.1:0', '--manhole', '0']);
    assert.equal(await noToken.exit(), 2);
    assert.match(noToken.stderr.join('\n'), /--manhole needs a token.*NODESET_MANHOLE_TOKEN.*--manhole-token-file/);

    const { proc, port, monitorUrl } = await startWithManhole([], { NODESET_MANHOLE_TOKEN: 'manhole-secret' });
    try {
      const right = await talk(port, ['manhole-secret', 'dispatcher.options.host'], /'127\.0\.0\.1'/);
      assert.match(right, /ok\nnodeset> '127\.0\.0\.1'/);
      const wrong = await talk(port, ['not-the-token', 'dispatcher.hostName'], /AUTH_FAILED/);
      assert.match(wrong, /AUTH_FAILED/);
      assert.doesNotMatch(wrong, /nodeset>/);
      // Counted on the dispatcher's /metrics.
      const metrics = await (await fetch(`${monitorUrl}/metrics`)).text();
      assert.match(metrics, /^nodeset_manhole_auth_failures_total 1$/m);
      assert.match(metrics, /^nodeset_manhole_throttled_total 0$/m);
    } finally {
      await proc.kill();
    }
  });

  test('the token is never taken from a flag or a config file (the process list shows flags); a token file works', async () => {
    const flag = new CliProcess('nodeset-dispatcher', [
      '--listen',
      '127.0.0.1:0',
      '--manhole',
      '0',
      '--manhole-token',
      'manhole-secret',
    ]);
    assert.equal(await flag.exit(), 2);
    assert.match(
      flag.stderr.join('\n'),
      /--manhole-token is not accepted: .*Set NODESET_MANHOLE_TOKEN, or .*--manhole-token-file FILE/,
    );
    // Refused even when the environment holds the same token.
    const both = new CliProcess(
      'nodeset-node',
      ['subscriber', '--event', 'x', '--manhole', '0', '--manhole-token', 'manhole-secret'],
      { NODESET_MANHOLE_TOKEN: 'manhole-secret' },
    );
    assert.equal(await both.exit(), 2);
    assert.match(both.stderr.join('\n'), /--manhole-token is not accepted/);
    const config = join(dir, 'manhole-token.yaml');
    writeFileSync(config, 'manhole: 0\nmanhole-token: manhole-secret\n');
    const fromConfig = new CliProcess('nodeset-dispatcher', ['--listen', '127.0.0.1:0', '--config', config]);
    assert.equal(await fromConfig.exit(), 2);
    assert.match(fromConfig.stderr.join('\n'), /--manhole-token is not accepted/);

    const file = join(dir, 'manhole.token');
    writeFileSync(file, 'token-from-a-file\n', { mode: 0o600 });
    const conflict = new CliProcess(
      'nodeset-dispatcher',
      ['--listen', '127.0.0.1:0', '--manhole', '0', '--manhole-token-file', file],
      {
        NODESET_MANHOLE_TOKEN: 'manhole-secret',
      },
    );
    assert.equal(await conflict.exit(), 2);
    assert.match(conflict.stderr.join('\n'), /--manhole-token-file or NODESET_MANHOLE_TOKEN, not both/);
    const { proc, port } = await startWithManhole(['--manhole-token-file', file], {});
    try {
      const right = await talk(port, ['token-from-a-file', 'dispatcher.hostName.length > 0'], /true/);
      assert.match(right, /ok\nnodeset> true/);
    } finally {
      await proc.kill();
    }
  });

  test('after a wrong token the address backs off: a burst of guesses is one guess, and the waits are counted', async () => {
    const file = join(dir, 'manhole-backoff.token');
    writeFileSync(file, 'manhole-secret\n');
    let now = 1_000_000;
    const manhole = (await startManhole(
      { manhole: 0, manholeTokenFile: file },
      { answer: 42 },
      pino({ level: 'silent' }),
      { now: () => now },
    ))!;
    const attempt = (token: string) => talk(manhole.port, [token, 'answer'], /LIMIT_EXCEEDED|AUTH_FAILED|nodeset> 42/);
    try {
      // Ten connections, all asked for their token, all answering at once with a wrong one.
      const burst = await Promise.all(Array.from({ length: 10 }, () => prompted(manhole.port)));
      const answers = await Promise.all(burst.map((c, i) => c.answer(`guess-${i}`)));
      assert.equal(answers.filter((a) => /\bAUTH_FAILED\b/.test(a)).length, 1, answers.join(' | '));
      const turnedAway = /LIMIT_EXCEEDED too many wrong tokens from \S+; retry in 1 s/;
      assert.equal(answers.filter((a) => turnedAway.test(a)).length, 9, answers.join(' | '));
      // While the address waits, not even the right token is looked at.
      assert.match(await attempt('manhole-secret'), turnedAway);
      now += 499;
      assert.match(await attempt('manhole-secret'), turnedAway);
      now += 1;
      assert.match(await attempt('manhole-secret'), /ok\nnodeset> 42/);
      // A success clears the address; failures in a row double the wait.
      assert.match(await attempt('wrong-1'), /AUTH_FAILED/);
      now += 500;
      assert.match(await attempt('wrong-2'), /AUTH_FAILED/);
      now += 999;
      assert.match(await attempt('manhole-secret'), /LIMIT_EXCEEDED/);
      now += 1;
      assert.match(await attempt('manhole-secret'), /ok\nnodeset> 42/);
      assert.deepEqual(manhole.stats, { authFailures: 3, throttled: 9 + 2 + 1 });
    } finally {
      await manhole.close();
    }
  });
});

describe('nodeset-shell in a pseudo-terminal', { skip: tmuxSkip }, () => {
  test('sub, pub, help, one-line errors, handlers and tab completion on screen', async () => {
    const d = await startDispatcher();
    const socketName = `nodeset-test-${process.pid}`;
    const tmux = (...args: string[]) =>
      execFileSync('tmux', ['-L', socketName, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const screen = () => tmux('capture-pane', '-p', '-t', 'shell');
    const history = join(dir, 'shell-history');
    try {
      tmux(
        'new-session',
        '-d',
        '-s',
        'shell',
        '-x',
        '200',
        '-y',
        '50',
        `NODESET_LOGLEVEL=warn ${process.execPath} ${ROOT}dist/cli/nodeset-shell.js --dispatcher-url ${d.url} --history ${history}`,
      );
      await until(() => screen().includes('nodeset>'), 10_000, 'the prompt').catch((err: Error) => {
        throw new Error(`${err.message}; screen:\n${screen()}`);
      });
      tmux('send-keys', '-t', 'shell', "sub('shell.test')", 'Enter');
      await until(() => d.subscribers('shell.test').length === 1, 5000, 'the subscription');
      const pub = await startNode(d, { name: 'tester' });
      await pub.publish('shell.test', { hello: 'tmux' }, { ack: true });
      await until(() => screen().includes("[event] shell.test from tester: { hello: 'tmux' }"), 5000, 'the event');
      tmux('send-keys', '-t', 'shell', "pub('shell.test', 42)", 'Enter');
      await until(() => /\n1\n/.test(screen()), 5000, 'the delivered count');
      tmux('send-keys', '-t', 'shell', 'subscr', 'Tab');
      await until(() => screen().includes('nodeset> subscribers'), 5000, 'tab completion');
      tmux('send-keys', '-t', 'shell', "('shell.test')", 'Enter');
      await until(
        () => /subscribers\('shell\.test'\)\n\[[\s\S]*uri: 'shell\.test'/.test(screen()),
        5000,
        'the query',
      ).catch((err: Error) => {
        throw new Error(`${err.message}; screen:\n${screen()}`);
      });
      // help is plain text, not a string literal.
      tmux('send-keys', '-t', 'shell', 'help', 'Enter');
      await until(() => screen().includes('\nnodeset shell: a node connected'), 5000, 'plain help');
      // An error is one line, CODE: message, with no stack.
      tmux('send-keys', '-t', 'shell', "req('nobody.here', 1)", 'Enter');
      await until(
        () => screen().includes('NO_RESPONDERS: no responder for request nobody.here'),
        5000,
        'one-line error',
      );
      assert.doesNotMatch(screen(), /^\s+at /m);
      // A handler given to sub is called, but a plain subscription never answers; reply answers.
      tmux('send-keys', '-t', 'shell', "sub('shell.double', (m) => m * 2)", 'Enter');
      await until(() => d.subscribers('shell.double').length === 1, 5000, 'the handler subscription');
      await assert.rejects(pub.request('shell.double', 21), { code: 'NO_RESPONDERS' });
      tmux('send-keys', '-t', 'shell', "reply('shell.double', (m) => m * 2)", 'Enter');
      await until(() => d.subscribers('shell.double').length === 2, 5000, 'the responder');
      assert.equal(await pub.request('shell.double', 21), 42);
      // Inside the quotes, tab completes event names seen.
      tmux('send-keys', '-t', 'shell', "pub('shell.dou", 'Tab');
      await until(() => screen().includes("nodeset> pub('shell.double"), 5000, 'event name completion').catch(
        (err: Error) => {
          throw new Error(`${err.message}; screen:\n${screen()}`);
        },
      );
      tmux('send-keys', '-t', 'shell', 'C-u');
      tmux('send-keys', '-t', 'shell', '.exit', 'Enter');
      await until(() => readFileSync(history, 'utf8').includes("sub('shell.test')"), 5000, 'history file');
      await pub.stop();
    } finally {
      try {
        tmux('kill-server');
      } catch {
        // already gone with its only session
      }
      await d.stop();
    }
  });
});
