import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
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

  test('needs a token; refuses a wrong one; gives a REPL with the dispatcher in scope', async () => {
    const noToken = new CliProcess('nodeset-dispatcher', ['--listen', '127.0.0.1:0', '--manhole', '0']);
    assert.equal(await noToken.exit(), 2);
    assert.match(noToken.stderr.join('\n'), /--manhole needs a token/);

    const proc = new CliProcess('nodeset-dispatcher', ['--listen', '127.0.0.1:0', '--manhole', '0'], {
      NODESET_MANHOLE_TOKEN: 'manhole-secret',
    });
    try {
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(await proc.waitForLine(/manhole listening/))![1]);
      const wrong = await talk(port, ['not-the-token', 'dispatcher.hostName'], /AUTH_FAILED/);
      assert.match(wrong, /AUTH_FAILED/);
      assert.doesNotMatch(wrong, /nodeset>/);
      const right = await talk(port, ['manhole-secret', 'dispatcher.options.host'], /'127\.0\.0\.1'/);
      assert.match(right, /ok\nnodeset> '127\.0\.0\.1'/);
    } finally {
      await proc.kill();
    }
  });
});

describe('nodeset-shell in a pseudo-terminal', { skip: tmuxSkip }, () => {
  test('sub, pub and tab completion on screen', async () => {
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
