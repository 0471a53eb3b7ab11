import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { NatsFederation } from '../src/federation/nats-federation.js';
import { Dispatcher, Node, NodeMetrics } from '../src/index.js';
import { queueGroups } from '../src/monitor/groups.js';
import { checkMonitorListen, MonitorServer } from '../src/monitor/monitor-server.js';
import { encodeFrame, FrameKind } from '../src/protocol/frames.js';
import { hashToken } from '../src/security/keys.js';
import {
  BROWSER_SKIP,
  CliProcess,
  launchChromium,
  NatsServer,
  ROOT,
  startCli,
  startDispatcher,
  startNode,
  until,
  WAIT_SCALE,
} from './helpers.js';
import { RawClient } from './raw-client.js';

const quiet = { statsIntervalMs: 0 };
// CI installs tmux; there a missing tmux is a failure, not a skip.
const tmuxSkip =
  spawnSync('tmux', ['-V']).status === 0 || process.env.NODESET_CI
    ? false
    : 'tmux is not installed (apt-get install tmux)';
const TOKEN = 'monitor-token-0123456789';
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** An /events reader that counts the samples it gets. */
async function readEvents(url: string, headers: Record<string, string> = {}) {
  const res = await new Promise<IncomingMessage>((resolve, reject) =>
    httpGet(`${url}/events`, { headers }, resolve).on('error', reject),
  );
  const reader = { status: res.statusCode, samples: 0, ended: false, close: () => res.destroy() };
  let text = '';
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => {
    text += chunk;
    for (let i = text.indexOf('\n\n'); i !== -1; i = text.indexOf('\n\n')) {
      if (text.startsWith('data: ')) reader.samples++;
      text = text.slice(i + 2);
    }
  });
  res.on('error', () => {});
  res.on('close', () => (reader.ended = true));
  return reader;
}

/** An /events client that sends its request and never reads a byte. */
async function stalledEventsClient(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  socket.pause();
  socket.write('GET /events HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
  return socket;
}

async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const family of parsePrometheusTextFormat(text)) {
    for (const m of family.metrics) {
      const labels =
        m.labels && Object.keys(m.labels).length
          ? `{${Object.entries(m.labels)
              .map(([k, v]) => `${k}=${v}`)
              .join(',')}}`
          : '';
      if (m.value !== undefined) out.set(family.name + labels, Number(m.value));
    }
  }
  return out;
}

describe('monitoring endpoint', () => {
  let dispatcher: Dispatcher;
  let monitor: MonitorServer;
  const nodes: Node[] = [];
  const node = async (name: string, extra = {}) => {
    const n = await startNode(dispatcher, { name, ...quiet, ...extra });
    nodes.push(n);
    return n;
  };

  before(async () => {
    dispatcher = await startDispatcher({ heartbeatIntervalMs: 100 });
    monitor = await new MonitorServer(dispatcher).start('127.0.0.1', 0);
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await monitor.stop();
    await dispatcher.stop();
  });

  test('/metrics counters move by exactly the traffic the test produced', async () => {
    const a = await node('metrics-a');
    const b = await node('metrics-b');
    const pub = await node('metrics-pub');
    await a.subscribe('metered.event', () => {});
    await b.subscribe('metered.event', () => {});
    const before = await scrape(monitor.url);
    for (let i = 0; i < 25; i++) await pub.publish('metered.event', { i }, { ack: true });
    const afterScrape = await scrape(monitor.url);
    const delta = (k: string) => (afterScrape.get(k) ?? 0) - (before.get(k) ?? 0);
    assert.equal(delta('nodeset_publishes_total'), 25);
    assert.equal(delta('nodeset_deliveries_total'), 50);
    assert.equal(afterScrape.get('nodeset_event_publishes{event=metered.event}'), 25);
    assert.ok(delta('nodeset_bytes_in_total') > 25 * 8);
    assert.ok(delta('nodeset_bytes_out_total') > 50 * 8);
    assert.equal(afterScrape.get('nodeset_connections'), dispatcher.connectionCount);
    assert.ok((afterScrape.get('nodeset_dispatcher_process_resident_memory_bytes') ?? 0) > 0);
    assert.ok(afterScrape.has('nodeset_dispatcher_nodejs_eventloop_lag_seconds'));
    const health = (await (await fetch(`${monitor.url}/healthz`)).json()) as { status: string };
    assert.equal(health.status, 'ok');
  });

  test('presence events and /nodes follow joins, leaves (with reasons) and heartbeat timeouts', async () => {
    const watcher = await node('watcher');
    const events: { event: string; name: string; reason?: string; subscriptions: string[] }[] = [];
    await watcher.subscribe(
      '$nodeset.node.*',
      (m: { name: string; reason?: string; subscriptions: string[] }, info) =>
        void events.push({ event: info.uri, ...m }),
    );
    const nodesNow = async () =>
      ((await (await fetch(`${monitor.url}/nodes`)).json()) as { name: string }[]).map((n) => n.name);

    const graceful = await node('leaves-gracefully');
    await graceful.subscribe('some.thing', () => {});
    await until(() => events.some((e) => e.event === '$nodeset.node.joined' && e.name === 'leaves-gracefully'));
    assert.ok((await nodesNow()).includes('leaves-gracefully'));
    await graceful.stop();
    await until(() => events.some((e) => e.name === 'leaves-gracefully' && e.reason === 'graceful'));
    const left = events.find((e) => e.name === 'leaves-gracefully' && e.reason === 'graceful')!;
    assert.deepEqual(left.subscriptions, ['some.thing']);
    assert.ok(!(await nodesNow()).includes('leaves-gracefully'));

    const closed = await RawClient.connect(dispatcher.address.port, 'socket-closed');
    await until(() => events.some((e) => e.name === 'socket-closed'));
    closed.destroy();
    await until(() => events.some((e) => e.name === 'socket-closed' && e.reason === 'closed'));

    const mute = await RawClient.connect(dispatcher.address.port, 'goes-silent');
    mute.socket.removeAllListeners('data'); // stops answering pings
    await until(() => events.some((e) => e.name === 'goes-silent' && e.reason === 'heartbeat-timeout'), 5000);
    assert.ok(!(await nodesNow()).includes('goes-silent'));

    await node('gets-kicked');
    assert.equal(dispatcher.kick('gets-kicked'), 1);
    await until(() => events.some((e) => e.name === 'gets-kicked' && e.reason === 'kicked'));
    mute.destroy();
  });

  test('a last will is published when a node vanishes, not when it stops gracefully', async () => {
    const watcher = await node('will-watcher');
    const wills: unknown[] = [];
    await watcher.subscribe('wills.>', (m, info) => void wills.push({ uri: info.uri, from: info.from, m }));
    const polite = new Node({
      dispatcherUrl: dispatcher.url,
      name: 'polite',
      lastWill: { uri: 'wills.polite', message: 'bye' },
      ...quiet,
    });
    await polite.start();
    await polite.stop();
    const raw = await RawClient.connect(dispatcher.address.port, false);
    raw.send(
      encodeFrame(FrameKind.HELLO, {
        v: 1,
        name: 'fragile',
        will: { uri: 'wills.fragile', ct: 0, payload: Buffer.from('{"state":"gone"}') },
      }),
    );
    await raw.next((f) => f.kind === FrameKind.WELCOME);
    raw.destroy();
    await until(() => wills.length === 1);
    assert.deepEqual(wills, [{ uri: 'wills.fragile', from: 'fragile', m: { state: 'gone' } }]);
  });

  test('node metrics: the four kinds, published on $nodeset.stats and shown in /nodes', async () => {
    const m = new NodeMetrics();
    const c = m.counter('jobs_done');
    const g = m.gauge('queue_depth');
    const a = m.absolute('errors_since_last');
    const d = m.derive('bytes_processed');
    c.inc(3);
    g.set(7);
    a.inc(2);
    d.inc(1000);
    const first = await m.snapshot();
    assert.equal(first.jobs_done, 3);
    assert.equal(first.queue_depth, 7);
    assert.equal(first.errors_since_last, 2);
    assert.ok((first.bytes_processed ?? 0) > 0);
    const second = await m.snapshot();
    assert.equal(second.errors_since_last, 0, 'absolute resets when read');
    assert.equal(second.jobs_done, 3, 'counters do not');
    assert.equal(second.bytes_processed, 0, 'derive: no increase since the last reading');

    const reporter = await node('reporter', { statsIntervalMs: 50 });
    reporter.metrics.counter('widgets_made').inc(5);
    await until(
      async () => {
        const list = (await (await fetch(`${monitor.url}/nodes`)).json()) as {
          name: string;
          metrics: { metrics?: Record<string, number> } | null;
        }[];
        return list.find((n) => n.name === 'reporter')?.metrics?.metrics?.widgets_made === 5;
      },
      5000,
      'metrics in /nodes',
    );
  });

  test('nodeset-monitor prints a snapshot (--json) and a table (--once)', async () => {
    await node('seen-by-monitor');
    const json = new CliProcess('nodeset-monitor', ['--monitor-url', monitor.url, '--json']);
    assert.equal(await json.exit(), 0);
    const snap = JSON.parse(json.lines.join('\n'));
    assert.ok(snap.nodes.some((n: { name: string }) => n.name === 'seen-by-monitor'));
    assert.equal(typeof snap.stats.rates.publishesPerSec, 'number');
    // --once takes two samples: a node publishing meanwhile shows a rate above zero.
    const busy = await node('busy-publisher');
    const ticker = setInterval(() => busy.publish('monitor.busy', 1), 5);
    /** The rate of an event in the top-events table that follows the nodes: `MSG/s  TOTAL  EVENT`. */
    const eventRate = (lines: string[], event: string) => {
      const header = lines.findIndex((l) => /^\s*MSG\/s▼\s+TOTAL\s+EVENT$/.test(l));
      const row = lines.slice(header + 1).find((l) => l.trim().split(/\s+/)[2] === event) ?? '';
      return header === -1 ? Number.NaN : Number(row.trim().split(/\s+/)[0]?.replace('k', 'e3'));
    };
    let table: CliProcess;
    let direct: CliProcess;
    try {
      // The endpoint's rates need one of its samples with the publisher running.
      await until(
        () => monitor.stats().topEvents.some((e) => e.event === 'monitor.busy' && e.perSec > 0),
        10_000 * WAIT_SCALE,
        'the endpoint measured monitor.busy',
      );
      table = new CliProcess('nodeset-monitor', ['--monitor-url', monitor.url, '--once', '--interval', '500']);
      assert.equal(await table.exit(), 0);
      // Straight from the dispatcher, without the monitoring endpoint: rates from the counts of two QUERY answers.
      direct = new CliProcess('nodeset-monitor', ['--dispatcher-url', dispatcher.url, '--once', '--interval', '500']);
      assert.equal(await direct.exit(), 0);
    } finally {
      clearInterval(ticker);
    }
    const text = table.lines.join('\n');
    assert.match(text, /NAME\s+HOST\s+ADDRESS\s+IN\/s[\s\S]*seen-by-monitor/);
    const busyRow = table.lines.find((l) => l.startsWith('busy-publisher')) ?? '';
    const inPerSec = Number(busyRow.split(/\s+/)[3]);
    assert.ok(inPerSec > 0, `a rate above zero: ${busyRow}`);
    assert.match(table.lines[0] ?? '', /publishes\/s [1-9]/);
    assert.ok(eventRate(table.lines, 'monitor.busy') > 0, `monitor.busy has a rate:\n${text}`);
    assert.match(direct.lines.join('\n'), /seen-by-monitor/);
    assert.ok(eventRate(direct.lines, 'monitor.busy') > 0, `monitor.busy has a rate:\n${direct.lines.join('\n')}`);
    const help = new CliProcess('nodeset-monitor', ['--help']);
    assert.equal(await help.exit(), 0);
    assert.match(
      help.lines.join('\n'),
      /Keys of the live view:[\s\S]*\n {2}e {2,}switch between the nodes and the busiest events/,
    );
  });

  test('nodeset-monitor live view: e switches to the busiest events with their rates, and back', {
    skip: tmuxSkip,
  }, async () => {
    const busy = await node('live-view-publisher');
    const ticker = setInterval(() => busy.publish('live.view', 1), 10);
    const socketName = `nodeset-monitor-test-${process.pid}`;
    const tmux = (...args: string[]) =>
      execFileSync('tmux', ['-L', socketName, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const screen = () => tmux('capture-pane', '-p', '-t', 'monitor');
    const waitScreen = (what: string, ok: (text: string) => boolean) =>
      until(() => ok(screen()), 10_000 * WAIT_SCALE, what).catch((err: Error) => {
        throw new Error(`${err.message}; screen:\n${screen()}`);
      });
    try {
      tmux(
        'new-session',
        '-d',
        '-s',
        'monitor',
        '-x',
        '160',
        '-y',
        '40',
        `NO_COLOR=1 NODESET_LOGLEVEL=warn ${process.execPath} ${ROOT}dist/cli/nodeset-monitor.js --monitor-url ${monitor.url} --interval 300`,
      );
      await waitScreen('the nodes', (t) => t.includes('live-view-publisher') && t.includes('e events'));
      tmux('send-keys', '-t', 'monitor', 'e');
      await waitScreen('live.view with a rate', (t) => /^\s*[1-9][\d.]*k?\s+\S+\s+live\.view\s*$/m.test(t));
      assert.match(screen(), /MSG\/s▼\s+TOTAL\s+EVENT/);
      assert.match(screen(), /q quit {3}e nodes/);
      tmux('send-keys', '-t', 'monitor', 'e');
      await waitScreen('the nodes again', (t) => t.includes('live-view-publisher') && t.includes('e events'));
      tmux('send-keys', '-t', 'monitor', 'q');
      await until(() => !tmux('list-sessions').includes('monitor:'), 5000, 'nodeset-monitor quit').catch(() => {});
    } finally {
      clearInterval(ticker);
      try {
        tmux('kill-server');
      } catch {
        // already gone
      }
    }
  });

  test('/stats ranks events by their rate over the last sample; /groups lists queue groups with their members, bounded', async () => {
    const fast = await node('rates-fast');
    const slow = await node('rates-slow');
    const fastTicker = setInterval(() => {
      for (let i = 0; i < 3; i++) fast.publish('rates.fast', i);
    }, 10);
    const slowTicker = setInterval(() => slow.publish('rates.slow', 1), 50);
    try {
      let top: { event: string; perSec: number; total: number }[] = [];
      await until(
        async () => {
          top = ((await (await fetch(`${monitor.url}/stats`)).json()) as { topEvents: typeof top }).topEvents;
          const f = top.find((e) => e.event === 'rates.fast');
          const s = top.find((e) => e.event === 'rates.slow');
          return f !== undefined && s !== undefined && f.perSec > s.perSec && s.perSec > 0;
        },
        10_000 * WAIT_SCALE,
        'rates.fast busier than rates.slow',
      );
      const names = top.map((e) => e.event);
      assert.ok(names.indexOf('rates.fast') < names.indexOf('rates.slow'), 'sorted by rate');
      assert.ok(top.length <= 20, 'bounded');
      for (const [i, e] of top.entries()) {
        assert.ok(e.total >= 1, `${e.event} was published`);
        if (i > 0) assert.ok((top[i - 1]?.perSec ?? 0) >= e.perSec, 'busiest first');
      }
    } finally {
      clearInterval(fastTicker);
      clearInterval(slowTicker);
    }

    // Three workers share jobs.run; one node makes 60 groups of one, past the 50 listed.
    for (const name of ['worker-b', 'worker-a', 'worker-c']) {
      const w = await node(name);
      await w.subscribe('jobs.run', () => {}, { group: 'runners' });
    }
    const many = await node('many-groups');
    for (let i = 0; i < 60; i++) await many.subscribe(`solo.${i}`, () => {}, { group: `solo-${i}` });
    const groups = (await (await fetch(`${monitor.url}/groups`)).json()) as {
      total: number;
      groups: { group: string; uri: string; size: number; members: string[] }[];
    };
    assert.equal(groups.total, 61);
    assert.equal(groups.groups.length, 50, 'the 50 largest');
    assert.deepEqual(groups.groups[0], {
      group: 'runners',
      uri: 'jobs.run',
      size: 3,
      members: ['worker-a', 'worker-b', 'worker-c'],
    });
    assert.deepEqual(groups.groups[1], { group: 'solo-0', uri: 'solo.0', size: 1, members: ['many-groups'] });
    // Member names are bounded too; the count stays whole.
    const small = queueGroups(dispatcher, 2, 2);
    assert.equal(small.total, 61);
    assert.deepEqual(small.groups[0], {
      group: 'runners',
      uri: 'jobs.run',
      size: 3,
      members: ['worker-a', 'worker-b'],
    });
    assert.equal(small.groups.length, 2);
    // A member that leaves is no longer listed.
    await nodes.find((n) => n.name === 'worker-b')?.stop();
    await until(() => monitor.groups().groups[0]?.size === 2, 10_000, 'worker-b left the group');
    assert.deepEqual(monitor.groups().groups[0]?.members, ['worker-a', 'worker-c']);
    await many.stop();
  });

  test('/history serves the last samples as columns of equal length, oldest first', async () => {
    type History = Record<string, number[]> & { intervalMs: number };
    let h = {} as History;
    await until(
      async () => {
        h = (await (await fetch(`${monitor.url}/history`)).json()) as History;
        return (h.t?.length ?? 0) >= 2;
      },
      10_000,
      'two samples',
    );
    assert.equal(h.intervalMs, 1000);
    const n = h.t?.length ?? 0;
    assert.ok(n >= 2);
    for (const key of ['publishesPerSec', 'deliveriesPerSec', 'bytesInPerSec', 'bytesOutPerSec', 'droppedPerSec']) {
      assert.equal(h[key]?.length, n, key);
    }
    assert.ok((h.t?.[0] ?? 0) < (h.t?.[n - 1] ?? 0), 'oldest first');
  });

  test('the history ring keeps the newest samples up to its capacity', async () => {
    const { HistoryRing } = await import('../src/monitor/history.js');
    const ring = new HistoryRing(3);
    for (let t = 1; t <= 5; t++)
      ring.push({ t, publishesPerSec: t, deliveriesPerSec: 0, bytesInPerSec: 0, bytesOutPerSec: 0, droppedPerSec: 0 });
    assert.equal(ring.size, 3);
    assert.deepEqual(ring.columns().t, [3, 4, 5]);
  });

  test('the dashboard has an icon: /favicon.ico and /favicon.svg answer an SVG', async () => {
    for (const path of ['/favicon.ico', '/favicon.svg']) {
      const res = await fetch(`${monitor.url}${path}`);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get('content-type'), 'image/svg+xml');
      assert.match(await res.text(), /^<svg /);
    }
    assert.match(await (await fetch(`${monitor.url}/`)).text(), /<link rel="icon" href="\/favicon.svg"/);
  });

  test('who subscribes to a URI: over the protocol, over HTTP and from the command line', async () => {
    const n = await node('queried');
    await n.subscribe('query.*', () => {}, { group: 'g1' });
    const viaNode = (await n.subscribers('query.me')) as { node: string; group: string }[];
    assert.deepEqual(
      viaNode.map((x) => [x.node, x.group]),
      [['queried', 'g1']],
    );
    const viaHttp = (await (await fetch(`${monitor.url}/subscribers?uri=query.me`)).json()) as { node: string }[];
    assert.deepEqual(
      viaHttp.map((x) => x.node),
      ['queried'],
    );
    const bad = await fetch(`${monitor.url}/subscribers?uri=bad..uri`);
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { code: string }).code, 'BAD_URI');
    const cli = new CliProcess('nodeset-monitor', ['--dispatcher-url', dispatcher.url, '--subscribers', 'query.me']);
    assert.equal(await cli.exit(), 0);
    assert.equal(JSON.parse(cli.lines.join('\n'))[0].node, 'queried');
  });

  test('a node whose handlers are busy still answers heartbeats', async () => {
    // A dispatcher of its own with a 1 s heartbeat timeout: the 200 ms one above is
    // for the silent node, and a loaded machine can stall this process that long.
    const d = await startDispatcher({ heartbeatIntervalMs: 250, heartbeatTimeoutMs: 1000 });
    const busy = await startNode(d, { name: 'busy-node', ...quiet });
    const pub = await startNode(d, { name: 'busy-feeder', ...quiet });
    try {
      let done = 0;
      let disconnects = 0;
      busy.on('disconnect', () => disconnects++);
      await busy.subscribe('slow.work', async () => {
        await new Promise((r) => setTimeout(r, 1000)); // far past the 250 ms heartbeat interval
        done++;
      });
      for (let i = 0; i < 5; i++) await pub.publish('slow.work', i, { ack: true });
      await until(() => done === 5, 10_000);
      assert.equal(disconnects, 0, 'never dropped while its handlers were busy');
      assert.equal(d.stats.heartbeatFailures, 0);
      assert.ok(d.nodes().some((x) => x.name === 'busy-node' && x.heartbeatRttMs !== null));
    } finally {
      await busy.stop();
      await pub.stop();
      await d.stop();
    }
  });
});

describe('monitor token and exposure', () => {
  let dispatcher: Dispatcher;
  const dir = mkdtempSync(join(tmpdir(), 'nodeset-monitor-'));

  before(async () => {
    dispatcher = await startDispatcher();
  });
  after(async () => {
    await dispatcher.stop();
  });

  test('with a token, every data path needs it (constant-time check); the page, its assets and a bare /healthz do not', async () => {
    const m = await new MonitorServer(dispatcher, { token: TOKEN }).start('127.0.0.1', 0);
    const node = await startNode(dispatcher, { name: 'secret-node', ...quiet });
    try {
      let refused = 0;
      for (const path of [
        '/metrics',
        '/stats',
        '/nodes',
        '/groups',
        '/subscribers?uri=x',
        '/events',
        '/no-such-path',
      ]) {
        for (const headers of [{}, bearer('wrong-token-0123456789'), { authorization: `Basic ${TOKEN}` }]) {
          const res = await fetch(`${m.url}${path}`, { headers });
          assert.equal(res.status, 401, `${path} ${JSON.stringify(headers)}`);
          assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="nodeset-monitor"');
          const body = await res.text();
          assert.equal(JSON.parse(body).code, 'AUTH_FAILED');
          assert.doesNotMatch(body, /secret-node/);
          refused++;
        }
      }
      const nodes = (await (await fetch(`${m.url}/nodes`, { headers: bearer(TOKEN) })).json()) as { name: string }[];
      assert.ok(nodes.some((n) => n.name === 'secret-node'));
      const metrics = await (await fetch(`${m.url}/metrics`, { headers: bearer(TOKEN) })).text();
      assert.match(metrics, new RegExp(`^nodeset_monitor_auth_failures_total ${refused}$`, 'm'));
      const events = await readEvents(m.url, bearer(TOKEN));
      assert.equal(events.status, 200);
      await until(() => events.samples >= 1);
      events.close();

      const page = await (await fetch(`${m.url}/`)).text();
      assert.match(page, /<title>nodeset dispatcher<\/title>/);
      // The page's own script parses (a browser test runs it where chromium is installed).
      const script = /<script>([\s\S]*?)<\/script>/.exec(page)![1]!;
      assert.doesNotThrow(() => new Function(script));
      assert.equal((await fetch(`${m.url}/assets/uplot.js`)).status, 200);
      assert.deepEqual(await (await fetch(`${m.url}/healthz`)).json(), { status: 'ok' });
      const health = (await (await fetch(`${m.url}/healthz`, { headers: bearer(TOKEN) })).json()) as { host: string };
      assert.equal(health.host, 'testhost');
      assert.equal(m.stats().monitor.authFailures, refused);
    } finally {
      await node.stop();
      await m.stop();
    }
    // The stored form works as well; a short token is refused.
    const hashed = await new MonitorServer(dispatcher, { token: hashToken(TOKEN) }).start('127.0.0.1', 0);
    try {
      assert.equal((await fetch(`${hashed.url}/stats`, { headers: bearer(TOKEN) })).status, 200);
      assert.equal((await fetch(`${hashed.url}/stats`, { headers: bearer(hashToken(TOKEN)) })).status, 401);
    } finally {
      await hashed.stop();
    }
    assert.throws(() => new MonitorServer(dispatcher, { token: 'short' }), /at least 16 characters/);
  });

  test('a non-loopback address needs a token or the insecure override, also with --auth', async () => {
    for (const host of ['0.0.0.0', '::', '10.1.2.3']) {
      await assert.rejects(
        new MonitorServer(dispatcher).start(host, 0),
        new RegExp(
          `refusing to serve the monitor on ${host.replace(/\./g, '\\.')} without a token.*--monitor-insecure`,
        ),
      );
    }
    assert.doesNotThrow(() => checkMonitorListen('0.0.0.0', true, false));
    assert.doesNotThrow(() => checkMonitorListen('0.0.0.0', false, true));
    assert.doesNotThrow(() => checkMonitorListen('127.0.0.1', false, false));
    assert.doesNotThrow(() => checkMonitorListen('::1', false, false));

    const auth = join(dir, 'auth.yaml');
    writeFileSync(auth, `identities:\n  - name: svc\n    token: "${hashToken('node-token')}"\n`);
    const cli = new CliProcess('nodeset-dispatcher', [
      '--listen',
      '127.0.0.1:0',
      '--auth',
      auth,
      '--monitor',
      '0.0.0.0:0',
    ]);
    assert.equal(await cli.exit(), 2);
    assert.match(cli.stderr.join('\n'), /refusing to serve the monitor on 0\.0\.0\.0 without a token/);
    assert.ok(!cli.lines.some((l) => /listening/.test(l)), 'refused before anything listens');
  });

  test('nodeset-dispatcher takes the token from a file or NODESET_MONITOR_TOKEN; nodeset-monitor sends it', async () => {
    const file = join(dir, 'monitor.token');
    writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
    const { proc, line } = await startCli(
      'nodeset-dispatcher',
      ['--listen', '127.0.0.1:0', '--host-name', 'testhost', '--monitor-token-file', file],
      /monitor listening/,
    );
    try {
      const url = /(http:\/\/\S+)/.exec(line)![1]!;
      assert.equal((await fetch(`${url}/nodes`)).status, 401);
      assert.equal((await fetch(`${url}/nodes`, { headers: bearer(TOKEN) })).status, 200);
      const without = new CliProcess('nodeset-monitor', ['--monitor-url', url, '--json']);
      assert.equal(await without.exit(), 1);
      assert.match(without.stderr.join('\n'), /AUTH_FAILED: .*needs the monitor token/);
      const withFile = new CliProcess('nodeset-monitor', [
        '--monitor-url',
        url,
        '--json',
        '--monitor-token-file',
        file,
      ]);
      assert.equal(await withFile.exit(), 0);
      assert.equal(JSON.parse(withFile.lines.join('\n')).stats.host, 'testhost');
      const withEnv = new CliProcess('nodeset-monitor', ['--monitor-url', url, '--once'], {
        NODESET_MONITOR_TOKEN: TOKEN,
      });
      assert.equal(await withEnv.exit(), 0);
    } finally {
      await proc.kill();
    }
    // From the environment, in its stored form.
    const fromEnv = await startCli('nodeset-dispatcher', ['--listen', '127.0.0.1:0'], /monitor listening/, 10_000, {
      NODESET_MONITOR_TOKEN: hashToken(TOKEN),
    });
    try {
      const url = /(http:\/\/\S+)/.exec(fromEnv.line)![1]!;
      assert.equal((await fetch(`${url}/stats`)).status, 401);
      assert.equal((await fetch(`${url}/stats`, { headers: bearer(TOKEN) })).status, 200);
    } finally {
      await fromEnv.proc.kill();
    }
    const empty = join(dir, 'empty.token');
    writeFileSync(empty, '\n');
    const bad = new CliProcess('nodeset-dispatcher', ['--listen', '127.0.0.1:0', '--monitor-token-file', empty]);
    assert.equal(await bad.exit(), 2);
    assert.match(bad.stderr.join('\n'), /--monitor-token-file: .*empty\.token is empty/);
  });
});

describe('/events bounds', () => {
  test('a client that does not read skips samples, then is disconnected; a reader meanwhile gets them all', async () => {
    const d = await startDispatcher();
    const m = await new MonitorServer(d, {
      sampleIntervalMs: 100,
      maxEventBufferedBytes: 64 * 1024,
      maxEventSkippedSamples: 5,
    }).start('127.0.0.1', 0);
    const padder = await startNode(d, { name: 'padder', ...quiet });
    const stalled: Socket[] = [];
    const reader = await readEvents(m.url);
    try {
      // About 200 KB a sample (a node with 2,000 long subscriptions), so a client that does not read
      // fills the kernel's socket buffers within seconds.
      const pad = 'x'.repeat(90);
      await Promise.all(Array.from({ length: 2000 }, (_, i) => padder.subscribe(`padding.${pad}.${i}`, () => {})));
      for (let i = 0; i < 3; i++) stalled.push(await stalledEventsClient(m.address.port));
      await until(() => m.stats().monitor.eventClientsDisconnected === 3, 30_000, 'the stalled clients cut off');
      const counts = m.stats().monitor;
      assert.ok(counts.eventsSkipped >= 3 * 5, `skipped ${counts.eventsSkipped}`);
      assert.equal(counts.eventClients, 1, 'the reader is still connected');
      const seen = reader.samples;
      await until(() => reader.samples >= seen + 3, 10_000, 'more samples at the reader');
      assert.equal(reader.ended, false);
      const metrics = await scrape(m.url);
      assert.equal(metrics.get('nodeset_monitor_event_clients_disconnected_total'), 3);
      assert.ok((metrics.get('nodeset_monitor_events_skipped_total') ?? 0) >= 15);
      assert.equal(metrics.get('nodeset_monitor_event_clients'), 1);
    } finally {
      reader.close();
      for (const s of stalled) s.destroy();
      await padder.stop();
      await m.stop();
      await d.stop();
    }
  });

  test('clients over the limit are refused with 503 LIMIT_EXCEEDED, and counted', async () => {
    const d = await startDispatcher();
    const m = await new MonitorServer(d, { maxEventClients: 2 }).start('127.0.0.1', 0);
    const readers = [await readEvents(m.url), await readEvents(m.url)];
    try {
      const over = await fetch(`${m.url}/events`);
      assert.equal(over.status, 503);
      assert.equal(((await over.json()) as { code: string }).code, 'LIMIT_EXCEEDED');
      readers[0]!.close();
      // Room again once the server has seen that client go.
      await until(async () => {
        const next = await readEvents(m.url);
        if (next.status !== 200) next.close();
        else readers.push(next);
        return next.status === 200;
      });
      assert.ok(m.stats().monitor.eventClientsRefused >= 1);
    } finally {
      for (const r of readers) r.close();
      await m.stop();
      await d.stop();
    }
  });
});

describe('dashboard in a real browser', { skip: BROWSER_SKIP }, () => {
  test('shows the federation link and the live directory of hosts', async () => {
    if (NatsServer.find() === null && !process.env.NODESET_CI) return; // nats-server missing: federation.test.ts says so
    const nats = new NatsServer();
    await nats.start();
    const a = await new Dispatcher(
      { port: 0, hostName: 'dash-a' },
      new NatsFederation({ servers: [nats.url] }),
    ).start();
    const b = await new Dispatcher(
      { port: 0, hostName: 'dash-b' },
      new NatsFederation({ servers: [nats.url] }),
    ).start();
    const monitor = await new MonitorServer(a).start('127.0.0.1', 0);
    const browser = await launchChromium();
    let bStopped = false;
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await page.goto(monitor.url);
      const wait = (js: string) => page.waitForFunction(js, undefined, { timeout: 15_000 * WAIT_SCALE });
      await wait(`document.body.dataset.federation === 'up' && document.body.dataset.hosts === 'dash-b'`);
      assert.equal(await page.locator('#federation').textContent(), '1 host');
      assert.equal(await page.locator('#fed-hosts').textContent(), 'dash-b');
      // A host that leaves goes from the directory; the link going down shows.
      await b.stop();
      bStopped = true;
      await wait(`document.body.dataset.federation === 'up' && document.body.dataset.hosts === ''`);
      assert.equal(await page.locator('#federation').textContent(), '0 hosts');
      await nats.stop();
      await wait(`document.body.dataset.federation === 'down'`);
      assert.equal(await page.locator('#federation').textContent(), 'link down');
    } finally {
      await browser.close();
      await monitor.stop();
      await a.stop();
      if (!bStopped) await b.stop();
      await nats.stop();
    }
  });

  test('lists the nodes, the top events and the queue groups; the chart moves while a publisher runs', async () => {
    const dispatcher = await startDispatcher();
    const monitor = await new MonitorServer(dispatcher).start('127.0.0.1', 0);
    const sub = await startNode(dispatcher, { name: 'dashboard-subscriber', ...quiet });
    const pub = await startNode(dispatcher, { name: 'dashboard-publisher', ...quiet });
    const worker = await startNode(dispatcher, { name: 'dashboard-worker', ...quiet });
    await sub.subscribe('dashboard.>', () => {});
    await sub.subscribe('dashboard.jobs', () => {}, { group: 'dashboard-workers' });
    await worker.subscribe('dashboard.jobs', () => {}, { group: 'dashboard-workers' });
    let running = true;
    const publishing = (async () => {
      while (running) {
        for (let i = 0; i < 200; i++) pub.publish('dashboard.ticks', { i });
        pub.publish('dashboard.jobs', 1);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await page.goto(monitor.url);
      await page.locator('tr[data-node="dashboard-subscriber"]').waitFor({ timeout: 10_000 * WAIT_SCALE });
      await page.locator('tr[data-node="dashboard-publisher"]').waitFor();
      await page.waitForFunction('Number(document.body.dataset.samples) >= 4', undefined, {
        timeout: 10_000 * WAIT_SCALE,
      });
      const rate = Number((await page.locator('#pubrate').textContent())?.replace('k', 'e3'));
      assert.ok(rate > 0, `publish rate on the page: ${rate}`);
      const canvases = await page.locator('canvas').count();
      assert.ok(canvases >= 4, 'four charts drawn');
      // A node's rate needs two live samples (the history drawn on load may fill the chart first).
      await page.waitForFunction(
        `Number(document.querySelector('tr[data-node="dashboard-publisher"] .in-rate')?.textContent?.replace('k', 'e3')) > 0`,
        undefined,
        { timeout: 10_000 * WAIT_SCALE },
      );
      // Top events: rates per event name, busiest first; a click on a header sorts by it.
      const rateOf = (event: string) =>
        `Number(document.querySelector('tr[data-event="${event}"] .rate')?.textContent?.replace('k', 'e3'))`;
      await page.waitForFunction(
        `${rateOf('dashboard.ticks')} > ${rateOf('dashboard.jobs')} && ${rateOf('dashboard.jobs')} > 0`,
        undefined,
        {
          timeout: 10_000 * WAIT_SCALE,
        },
      );
      const eventOrder = () => page.$$eval('#events tr', (rows) => rows.map((r) => r.getAttribute('data-event') ?? ''));
      assert.equal((await eventOrder())[0], 'dashboard.ticks', 'sorted by rate');
      await page.click('#events-table th[data-key="event"]');
      const byName = await eventOrder();
      assert.deepEqual(
        byName,
        [...byName].sort((a, b) => a.localeCompare(b)),
        'sorted by name',
      );
      await page.click('#events-table th[data-key="perSec"]');
      assert.equal((await eventOrder())[0], 'dashboard.ticks', 'by rate again');
      // Queue groups: the event URI, the members and their count.
      const group = page.locator('tr[data-group="dashboard-workers"]');
      await group.waitFor();
      assert.equal(await group.getAttribute('data-uri'), 'dashboard.jobs');
      assert.equal(await group.locator('.size').textContent(), '2');
      assert.equal(await group.locator('.members').textContent(), 'dashboard-subscriber, dashboard-worker');
      // A reload starts with the server's history, not with empty charts, and the events' rates are in the first sample.
      // The server keeps one sample a second: whatever it holds now is drawn before the first live sample.
      const kept = ((await (await fetch(`${monitor.url}/history`)).json()) as { t: number[] }).t.length;
      assert.ok(kept >= 2, `${kept} samples kept`);
      await page.reload();
      await page.waitForFunction(`Number(document.body.dataset.history) >= ${kept}`, undefined, {
        timeout: 10_000 * WAIT_SCALE,
      });
      await page.waitForFunction('Number(document.body.dataset.live) >= 1', undefined, {
        timeout: 10_000 * WAIT_SCALE,
      });
      assert.ok(Number(await page.evaluate('document.body.dataset.eventsOnLoad')) >= 2, 'rates on the first sample');
      mkdirSync(`${ROOT}artifacts`, { recursive: true });
      await page.screenshot({ path: `${ROOT}artifacts/dashboard.png` });
    } finally {
      running = false;
      await publishing;
      await browser.close();
      await sub.stop();
      await pub.stop();
      await worker.stop();
      await monitor.stop();
      await dispatcher.stop();
    }
  });

  test('behind a token: it comes from the URL fragment or the form, and nothing shows without it', async () => {
    const dispatcher = await startDispatcher();
    const monitor = await new MonitorServer(dispatcher, { token: TOKEN }).start('127.0.0.1', 0);
    const node = await startNode(dispatcher, { name: 'behind-a-token', ...quiet });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(`${monitor.url}/#token=${TOKEN}`);
      await page.locator('tr[data-node="behind-a-token"]').waitFor({ timeout: 10_000 * WAIT_SCALE });
      assert.equal(new URL(page.url()).hash, '', 'the token is taken out of the address bar');
      await page.reload();
      await page.locator('tr[data-node="behind-a-token"]').waitFor({ timeout: 10_000 * WAIT_SCALE });

      // A new context: no token kept.
      const other = await browser.newPage();
      await other.goto(monitor.url);
      await other.locator('#login').waitFor({ state: 'visible', timeout: 10_000 * WAIT_SCALE });
      assert.equal(await other.locator('#state').textContent(), 'token required');
      assert.equal(await other.locator('tr[data-node]').count(), 0);
      await other.fill('#token', 'wrong-token-0123456789');
      await other.click('#login button');
      await other.waitForFunction("document.getElementById('state').textContent === 'wrong token'", undefined, {
        timeout: 10_000 * WAIT_SCALE,
      });
      assert.equal(await other.locator('tr[data-node]').count(), 0);
      await other.fill('#token', TOKEN);
      await other.click('#login button');
      await other.locator('tr[data-node="behind-a-token"]').waitFor({ timeout: 10_000 * WAIT_SCALE });
      assert.ok(monitor.stats().monitor.authFailures >= 2);
    } finally {
      await browser.close();
      await node.stop();
      await monitor.stop();
      await dispatcher.stop();
    }
  });
});
