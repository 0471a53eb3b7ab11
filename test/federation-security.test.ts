// The federation link to a secured NATS: user and password, token, NKey and
// TLS with client certificates, each against a real nats-server that requires
// it. With the right credentials two dispatchers connect and carry cross-host
// traffic; with wrong ones the link stays down with a clear logged reason
// while local traffic is served. Also the command-line flags.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { nkeys } from 'nats';
import { NatsFederation, type NatsFederationOptions } from '../src/federation/nats-federation.js';
import type { Dispatcher, Node } from '../src/index.js';
import {
  type CliProcess,
  federatedNode,
  loggedHost,
  makeCerts,
  NatsServer,
  startCli,
  startNatsProcess,
  startNode,
  stopProcess,
  until,
} from './helpers.js';

const skip =
  NatsServer.find() !== null || process.env.NODESET_CI
    ? false
    : 'nats-server is not installed (apt-get install nats-server)';

describe('federation to a secured NATS', { skip }, () => {
  let dir = '';
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const owned: { stop(): Promise<void> }[] = [];
  const nodes: Node[] = [];

  /** A nats-server with these extra arguments; stopped after the file. */
  const natsWith = async (args: string[]) => {
    const { child, port } = await startNatsProcess(['-a', '127.0.0.1', '-p', '-1', ...args]);
    owned.push({ stop: () => stopProcess(child as ChildProcess).then(() => undefined) });
    return `nats://127.0.0.1:${port}`;
  };

  /** A dispatcher on this link, with its log lines kept. */
  const dispatcher = (hostName: string, options: NatsFederationOptions) => loggedHost(owned, hostName, options);

  const node = (d: Dispatcher, name: string) => federatedNode(nodes, d, name);

  /** Two dispatchers that connected: a publish from one reaches the other. */
  const crossHost = async (one: Dispatcher, other: Dispatcher, otherName: string) => {
    const got: unknown[] = [];
    await (await node(other, `${otherName}-sub`)).subscribe('sec.x', (m) => void got.push(m));
    const pub = await node(one, `${otherName}-pub`);
    assert.equal(await pub.publish(`${otherName}/sec.x`, 'hello', { ack: true }), 1);
    assert.deepEqual(got, ['hello']);
  };

  /** A dispatcher whose link was refused: down, the reason logged as an error, local traffic served, cross-host refused. */
  const refused = async (
    d: Dispatcher,
    logs: { level: number; msg: string; reason?: string }[],
    reason: RegExp,
    name: string,
  ) => {
    await until(() => logs.some((l) => l.level === 50 && reason.test(l.reason ?? '')), 10_000, `the reason ${reason}`);
    assert.equal(d.federationConnected, false);
    assert.equal(d.snapshot().federation?.connected, false);
    const n = await node(d, `${name}-local`);
    const got: unknown[] = [];
    await n.subscribe('local.x', (m) => void got.push(m));
    assert.equal(await n.publish('local.x', 1, { ack: true }), 1, 'local traffic is served');
    assert.deepEqual(got, [1]);
    await assert.rejects(n.publish('elsewhere/x', 1, { ack: true }), { code: 'NO_ROUTE' });
    // Logged once per reason, not once per retry.
    const same = logs.filter((l) => l.level === 50 && reason.test(l.reason ?? ''));
    assert.equal(same.length, 1, 'logged once');
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nodeset-fedsec-'));
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    for (const o of owned.reverse()) await o.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('user and password: the right ones connect and carry traffic; a wrong password: link down, reason logged, local traffic served', async () => {
    const url = await natsWith(['--user', 'fed', '--pass', 's3cret']);
    const a = await dispatcher('pw-a', { servers: [url], user: 'fed', pass: 's3cret' });
    const b = await dispatcher('pw-b', { servers: [url], user: 'fed', pass: 's3cret' });
    assert.equal(a.d.federationConnected, true);
    await until(() => a.link.knows('pw-b'), 5000, 'a to know b');
    await crossHost(a.d, b.d, 'pw-b');
    const bad = await dispatcher('pw-bad', { servers: [url], user: 'fed', pass: 'wrong' });
    await refused(bad.d, bad.logs, /NATS refused the credentials \(Authorization Violation\)/, 'pw-bad');
    assert.equal(a.link.knows('pw-bad'), false);
  });

  test('a permission the host lacks: the NATS server refuses it and the dispatcher logs the operation and subject', async () => {
    // Host b may not publish answers (nodeset.r.>): an acked publish from a gets no ack back.
    const perms = (h: string, pub: string) =>
      `{ user: ${h}, password: pw, permissions: { publish: { allow: [${pub}] }, subscribe: { allow: ["nodeset.>", "_INBOX.>"] } } }`;
    const conf = file(
      'perms.conf',
      `authorization { users = [ ${perms('perm-a', '"nodeset.>", "_INBOX.>"')}, ${perms('perm-b', '"nodeset.h.>", "nodeset.all.>", "nodeset.n.>", "nodeset.q.>", "nodeset.id.>", "nodeset.dir", "_INBOX.>"')} ] }\n`,
    );
    const url = await natsWith(['-c', conf]);
    const a = await dispatcher('perm-a', { servers: [url], user: 'perm-a', pass: 'pw' });
    const b = await dispatcher('perm-b', { servers: [url], user: 'perm-b', pass: 'pw' });
    await until(() => a.link.knows('perm-b') && b.link.knows('perm-a'), 5000, 'directory');
    await (await node(b.d, 'perm-sub')).subscribe('perm.x', () => {});
    const pub = await startNode(a.d, { name: 'perm-pub', statsIntervalMs: 0, ackTimeoutMs: 500 });
    nodes.push(pub);
    await assert.rejects(pub.publish('perm-b/perm.x', 1, { ack: true }), { code: 'TIMEOUT' });
    const logs = b.logs as { level: number; msg: string; operation?: string; subject?: string }[];
    await until(
      () => logs.some((l) => l.level === 40 && l.subject === 'nodeset.r.perm-a.perm-b'),
      5000,
      'the violation logged',
    );
    const line = logs.find((l) => l.subject === 'nodeset.r.perm-a.perm-b');
    assert.equal(line?.operation, 'publish');
    assert.match(line?.msg ?? '', /permissions violation/);
    assert.equal(b.d.federationConnected, true, 'the link stays up');
  });

  test('token: the right one connects; a wrong one: link down with the reason', async () => {
    const url = await natsWith(['--auth', 'tok-123']);
    const a = await dispatcher('tok-a', { servers: [url], token: 'tok-123' });
    const b = await dispatcher('tok-b', { servers: [url], token: 'tok-123' });
    await until(() => a.link.knows('tok-b'), 5000, 'a to know b');
    await crossHost(a.d, b.d, 'tok-b');
    const bad = await dispatcher('tok-bad', { servers: [url], token: 'nope' });
    await refused(bad.d, bad.logs, /NATS refused the credentials/, 'tok-bad');
  });

  test('NKey: a seed the server knows connects; another seed: link down with the reason', async () => {
    const user = nkeys.createUser();
    const dec = new TextDecoder();
    const conf = file('nkey.conf', `authorization { users = [ { nkey: ${user.getPublicKey()} } ] }\n`);
    const url = await natsWith(['-c', conf]);
    const seed = file('user.nk', `${dec.decode(user.getSeed())}\n`);
    const a = await dispatcher('nk-a', { servers: [url], nkeySeedFile: seed });
    const b = await dispatcher('nk-b', { servers: [url], nkeySeedFile: seed });
    await until(() => a.link.knows('nk-b'), 5000, 'a to know b');
    await crossHost(a.d, b.d, 'nk-b');
    const other = file('other.nk', dec.decode(nkeys.createUser().getSeed()));
    const bad = await dispatcher('nk-bad', { servers: [url], nkeySeedFile: other });
    await refused(bad.d, bad.logs, /NATS refused the credentials/, 'nk-bad');
  });

  test('TLS with client certificates: the test CA and a client certificate connect; without the CA: link down, TLS reason logged', async () => {
    const certs = await makeCerts();
    const ca = file('ca.pem', certs.ca);
    const certFile = file('client.pem', certs.clientCert);
    const keyFile = file('client-key.pem', certs.clientKey);
    const url = await natsWith([
      '--tls',
      '--tlscert',
      file('server.pem', certs.serverCert),
      '--tlskey',
      file('server-key.pem', certs.serverKey),
      '--tlscacert',
      ca,
      '--tlsverify',
    ]);
    const tls = { caFile: ca, certFile, keyFile };
    const a = await dispatcher('tls-a', { servers: [url], tls });
    const b = await dispatcher('tls-b', { servers: [url], tls });
    await until(() => a.link.knows('tls-b'), 5000, 'a to know b');
    await crossHost(a.d, b.d, 'tls-b');
    // The server's certificate cannot be verified without the CA that signed it.
    const bad = await dispatcher('tls-bad', { servers: [url], tls: { certFile, keyFile } });
    await refused(bad.d, bad.logs, /TLS with the NATS server failed/, 'tls-bad');
  });

  test('conflicting or unreadable security options are refused at construction with BAD_OPTION', () => {
    const servers = ['nats://127.0.0.1:1'];
    assert.throws(() => new NatsFederation({ servers, credsFile: 'x', nkeySeedFile: 'y' }), { code: 'BAD_OPTION' });
    assert.throws(() => new NatsFederation({ servers, pass: 'p' }), { code: 'BAD_OPTION', message: /needs a user/ });
    assert.throws(() => new NatsFederation({ servers, tls: { certFile: 'c' } }), {
      code: 'BAD_OPTION',
      message: /go together/,
    });
    assert.throws(() => new NatsFederation({ servers, nkeySeedFile: join(dir, 'missing.nk') }), {
      code: 'BAD_OPTION',
      message: /cannot read the NKey seed file/,
    });
  });

  test('nodeset-dispatcher flags: --federation-user and --federation-password-file, --federation-tls-*', async () => {
    const url = await natsWith(['--user', 'cli', '--pass', 'cli-pass']);
    const pass = file('cli.pass', 'cli-pass\n');
    const args = (host: string, passFile: string) => [
      '--listen',
      '127.0.0.1:0',
      '--host-name',
      host,
      '--federation',
      url,
      '--federation-user',
      'cli',
      '--federation-password-file',
      passFile,
    ];
    const env = { NODESET_LOGLEVEL: 'info' };
    const listening = /listening on nodeset:\/\//;
    /** The log (on stderr) shows a line matching `re`. */
    const logged = (proc: CliProcess, re: RegExp) =>
      until(() => proc.stderr.some((l) => re.test(l)), 10_000, `a log line matching ${re}`);
    const good = await startCli('nodeset-dispatcher', args('cli-good', pass), listening, 20_000, env);
    owned.push({ stop: () => good.proc.kill().then(() => undefined) });
    await logged(good.proc, /"msg":"federation connected"/);
    // Wrong password: it still starts and serves local traffic; the log says why the link is down.
    const bad = await startCli(
      'nodeset-dispatcher',
      args('cli-bad', file('wrong.pass', 'nope')),
      listening,
      20_000,
      env,
    );
    owned.push({ stop: () => bad.proc.kill().then(() => undefined) });
    await logged(bad.proc, /"level":50.*NATS refused the credentials \(Authorization Violation\)/);

    const certs = await makeCerts();
    const ca = file('cli-ca.pem', certs.ca);
    const tlsUrl = await natsWith([
      '--tls',
      '--tlscert',
      file('cli-server.pem', certs.serverCert),
      '--tlskey',
      file('cli-server-key.pem', certs.serverKey),
      '--tlscacert',
      ca,
      '--tlsverify',
    ]);
    const tlsArgs = [
      '--listen',
      '127.0.0.1:0',
      '--host-name',
      'cli-tls',
      '--federation',
      tlsUrl,
      '--federation-tls-ca',
      ca,
      '--federation-tls-cert',
      file('cli-client.pem', certs.clientCert),
      '--federation-tls-key',
      file('cli-client-key.pem', certs.clientKey),
    ];
    const tlsGood = await startCli('nodeset-dispatcher', tlsArgs, listening, 20_000, env);
    owned.push({ stop: () => tlsGood.proc.kill().then(() => undefined) });
    await logged(tlsGood.proc, /"msg":"federation connected"/);
  });
});
