// The federation link to a NATS server in operator (JWT) mode, with creds
// files. The test makes its own operator, accounts and users (NKeys and JWTs
// signed with @nats-io/jwt), a nats-server config with a MEMORY resolver and
// the users' creds files, all in a temporary directory. Creds of a known
// account connect two dispatchers that carry cross-host traffic; creds of an
// account the server does not know leave the link down with the logged reason
// while local traffic is served; the per-host permissions of
// docs/federation.md, written in a user JWT, are enough for that host's
// dispatcher and keep its credentials off other hosts' subjects; and the
// --federation-creds flag of nodeset-dispatcher.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  createAccount,
  createOperator,
  createUser,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
  type KeyPair,
  type User,
} from '@nats-io/jwt';
import { connect, credsAuthenticator, type NatsConnection } from 'nats';
import type { NatsFederationOptions } from '../src/federation/nats-federation.js';
import type { Dispatcher, Node } from '../src/index.js';
import { federatedNode, loggedHost, NatsServer, startCli, startNatsProcess, stopProcess, until } from './helpers.js';

const skip =
  NatsServer.find() !== null || process.env.NODESET_CI
    ? false
    : 'nats-server is not installed (apt-get install nats-server)';

/** No account limits: an account JWT without them allows no connection at all. */
const UNLIMITED = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };

/** The per-host permissions of docs/federation.md ("Per-host NATS permissions") for host `h`. */
const hostPermissions = (h: string): Partial<User> => ({
  pub: {
    allow: [
      `nodeset.h.*.${h}`,
      `nodeset.all.${h}.>`,
      `nodeset.r.*.${h}`,
      'nodeset.q.>',
      'nodeset.id.>',
      'nodeset.dir',
      '_INBOX.>',
    ],
  },
  sub: {
    allow: [
      `nodeset.h.${h}.*`,
      `nodeset.r.${h}.*`,
      `nodeset.n.${h}.>`,
      `nodeset.q.${h}`,
      `nodeset.id.${h}`,
      'nodeset.all.*.>',
      'nodeset.dir',
      '_INBOX.>',
    ],
  },
});

/**
 * An operator with a system account and one account, and a nats-server
 * config trusting them (operator mode, MEMORY resolver, both account JWTs
 * preloaded); `creds()` writes a creds file for a new user of that account,
 * or of another account the server was never told about.
 */
async function operatorMode(dir: string) {
  const operator = createOperator();
  const system = createAccount();
  const account = createAccount();
  const stranger = createAccount();
  const operatorJwt = await encodeOperator('test-operator', operator, { system_account: system.getPublicKey() });
  const systemJwt = await encodeAccount('SYS', system, { limits: UNLIMITED }, { signer: operator });
  const accountJwt = await encodeAccount('FED', account, { limits: UNLIMITED }, { signer: operator });
  const conf = join(dir, 'operator.conf');
  writeFileSync(
    conf,
    [
      `operator: ${operatorJwt}`,
      `system_account: ${system.getPublicKey()}`,
      'resolver: MEMORY',
      'resolver_preload: {',
      `  ${system.getPublicKey()}: ${systemJwt}`,
      `  ${account.getPublicKey()}: ${accountJwt}`,
      '}',
      '',
    ].join('\n'),
  );
  const creds = async (name: string, opts: { permissions?: Partial<User>; unknownAccount?: boolean } = {}) => {
    const user: KeyPair = createUser();
    const issuer = opts.unknownAccount ? stranger : account;
    const jwt = await encodeUser(name, user, issuer, opts.permissions ?? {});
    const path = join(dir, `${name}.creds`);
    writeFileSync(path, fmtCreds(jwt, user), { mode: 0o600 });
    return path;
  };
  return { conf, creds };
}

describe('federation to NATS in operator mode with creds files', { skip }, () => {
  let dir = '';
  let url = '';
  let mode: Awaited<ReturnType<typeof operatorMode>>;
  const owned: { stop(): Promise<void> }[] = [];
  const nodes: Node[] = [];
  const clients: NatsConnection[] = [];

  /** A dispatcher on this link, with its log lines kept. */
  const dispatcher = (hostName: string, options: Omit<NatsFederationOptions, 'servers'>) =>
    loggedHost(owned, hostName, { servers: [url], ...options });

  const node = (d: Dispatcher, name: string) => federatedNode(nodes, d, name);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nodeset-fedcreds-'));
    mode = await operatorMode(dir);
    const { child, port } = await startNatsProcess(['-c', mode.conf, '-a', '127.0.0.1', '-p', '-1']);
    owned.push({ stop: () => stopProcess(child as ChildProcess).then(() => undefined) });
    url = `nats://127.0.0.1:${port}`;
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(nodes.map((n) => n.stop()));
    for (const o of owned.reverse()) await o.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('creds of a known account connect two dispatchers that carry cross-host traffic; creds of an unknown account: link down, reason logged once, local traffic served', async () => {
    const a = await dispatcher('jwt-a', { credsFile: await mode.creds('jwt-a') });
    const b = await dispatcher('jwt-b', { credsFile: await mode.creds('jwt-b') });
    assert.equal(a.d.federationConnected, true);
    assert.equal(b.d.federationConnected, true);
    await until(() => a.link.knows('jwt-b') && b.link.knows('jwt-a'), 5000, 'a and b to know each other');
    const got: unknown[] = [];
    await (await node(b.d, 'jwt-b-sub')).subscribe('creds.x', (m) => void got.push(m));
    const pub = await node(a.d, 'jwt-a-pub');
    assert.equal(await pub.publish('jwt-b/creds.x', 'hello', { ack: true }), 1);
    assert.deepEqual(got, ['hello']);

    // A user signed by an account key the server does not know.
    const bad = await dispatcher('jwt-bad', { credsFile: await mode.creds('jwt-bad', { unknownAccount: true }) });
    const reason = /NATS refused the credentials \(Authorization Violation\)/;
    await until(
      () => bad.logs.some((l) => l.level === 50 && reason.test(l.reason ?? '')),
      10_000,
      `the reason ${reason}`,
    );
    assert.equal(bad.d.federationConnected, false);
    assert.equal(bad.d.snapshot().federation?.connected, false);
    const local = await node(bad.d, 'jwt-bad-local');
    const localGot: unknown[] = [];
    await local.subscribe('local.x', (m) => void localGot.push(m));
    assert.equal(await local.publish('local.x', 1, { ack: true }), 1, 'local traffic is served');
    assert.deepEqual(localGot, [1]);
    await assert.rejects(local.publish('jwt-a/creds.x', 1, { ack: true }), { code: 'NO_ROUTE' });
    assert.equal(bad.logs.filter((l) => l.level === 50 && reason.test(l.reason ?? '')).length, 1, 'logged once');
    assert.equal(a.link.knows('jwt-bad'), false);
  });

  test('the per-host permissions of the docs, in the user JWT: host b works with them, and its creds cannot receive what is addressed to another host', async () => {
    const a = await dispatcher('perm-a', { credsFile: await mode.creds('perm-a') });
    const bCreds = await mode.creds('perm-b', { permissions: hostPermissions('perm-b') });
    const b = await dispatcher('perm-b', { credsFile: bCreds });
    await until(() => a.link.knows('perm-b') && b.link.knows('perm-a'), 5000, 'a and b to know each other');

    // a → b and b → a, acked; an all-hosts publish from a reaches b; b asks a responder on a.
    const onA = await node(a.d, 'perm-a-node');
    const onB = await node(b.d, 'perm-b-node');
    const atA: unknown[] = [];
    const atB: unknown[] = [];
    await onA.subscribe('perm.x', (m) => void atA.push(m));
    await onB.subscribe('perm.x', (m) => void atB.push(m));
    await onA.respond('perm.ask', (m) => `a says ${String(m)}`);
    await until(() => b.link.knows('perm-a'), 5000, 'b to know a');
    assert.equal(await onA.publish('perm-b/perm.x', 'to b', { ack: true }), 1);
    assert.equal(await onB.publish('perm-a/perm.x', 'to a', { ack: true }), 1);
    // An acked all-hosts publish counts the local deliveries; other hosts do not answer.
    assert.equal(await onA.publish('*/perm.x', 'everyone', { ack: true }), 1);
    await until(() => atB.length === 2, 5000, 'the all-hosts publish at b');
    assert.deepEqual(atB, ['to b', 'everyone']);
    assert.deepEqual(atA, ['to a', 'everyone']);
    assert.equal(await onB.request('perm-a/perm.ask', 'hi', { timeoutMs: 3000 }), 'a says hi');
    // Who-subscribes queries (NATS request/reply) both ways.
    assert.deepEqual(
      (await onB.subscribers('perm-a/perm.x')).map((s) => s.node),
      ['perm-a-node'],
    );
    assert.deepEqual(
      (await onA.subscribers('perm-b/perm.x')).map((s) => s.node),
      ['perm-b-node'],
    );
    assert.equal(b.d.federationConnected, true);

    // The same creds, in a plain NATS client: the server refuses a's subjects.
    const nc = await connect({ servers: url, authenticator: credsAuthenticator(readFileSync(bCreds)) });
    clients.push(nc);
    // Nor may it publish as another host: the origin is in the subject.
    const violation = (async () => {
      for await (const s of nc.status())
        if (s.type === 'error') return s as { permissionContext?: { subject: string } };
      return null;
    })();
    nc.publish('nodeset.h.perm-b.perm-a', new Uint8Array(1));
    nc.publish('nodeset.all.perm-a.x', new Uint8Array(1));
    const first = await Promise.race([violation, new Promise<null>((r) => setTimeout(() => r(null), 5000).unref())]);
    assert.equal(first?.permissionContext?.subject, 'nodeset.h.perm-b.perm-a', 'publishing as host perm-a is refused');
    for (const subject of ['nodeset.h.perm-a.perm-b', 'nodeset.r.perm-a.perm-b', 'nodeset.q.perm-a']) {
      const refused = await new Promise<Error | null>((resolve) => {
        nc.subscribe(subject, { callback: (err) => resolve(err) });
        // The server answers the SUB (-ERR) before the PING of the flush.
        void nc.flush().then(() => resolve(null));
      });
      assert.match(String(refused?.message), /Permissions Violation for Subscription/i, subject);
    }
  });

  test('nodeset-dispatcher --federation-creds connects: the host shows up in the directory of another', async () => {
    const watcher = await dispatcher('cli-watch', { credsFile: await mode.creds('cli-watch') });
    const cli = await startCli(
      'nodeset-dispatcher',
      [
        '--listen',
        '127.0.0.1:0',
        '--host-name',
        'cli-creds',
        '--federation',
        url,
        '--federation-creds',
        await mode.creds('cli-creds'),
      ],
      /listening on nodeset:\/\//,
      20_000,
      { NODESET_LOGLEVEL: 'info' },
    );
    owned.push({ stop: () => cli.proc.kill().then(() => undefined) });
    await until(
      () => cli.proc.stderr.some((l) => /"msg":"federation connected"/.test(l)),
      10_000,
      'federation connected',
    );
    await until(() => watcher.link.knows('cli-creds'), 5000, 'the CLI host in the directory');
  });
});
