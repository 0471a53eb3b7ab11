import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { type Dispatcher, Node, NodeMetrics } from '../src/index.js';
import { MonitorServer } from '../src/monitor/monitor-server.js';
import { encodeFrame, FrameKind } from '../src/protocol/frames.js';
import { BROWSER_SKIP, CliProcess, launchChromium, ROOT, startDispatcher, startNode, until } from './helpers.js';
import { RawClient } from './raw-client.js';

const quiet = { statsIntervalMs: 0 };

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
    const table = new CliProcess('nodeset-monitor', ['--monitor-url', monitor.url, '--once']);
    assert.equal(await table.exit(), 0);
    assert.match(table.lines.join('\n'), /NAME\s+HOST\s+ADDRESS[\s\S]*seen-by-monitor/);
    // Straight from the dispatcher, without the monitoring endpoint.
    const direct = new CliProcess('nodeset-monitor', ['--dispatcher-url', dispatcher.url, '--once']);
    assert.equal(await direct.exit(), 0);
    assert.match(direct.lines.join('\n'), /seen-by-monitor/);
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

describe('dashboard in a real browser', { skip: BROWSER_SKIP }, () => {
  test('lists the nodes and the chart moves while a publisher runs', async () => {
    const dispatcher = await startDispatcher();
    const monitor = await new MonitorServer(dispatcher).start('127.0.0.1', 0);
    const sub = await startNode(dispatcher, { name: 'dashboard-subscriber', ...quiet });
    const pub = await startNode(dispatcher, { name: 'dashboard-publisher', ...quiet });
    await sub.subscribe('dashboard.>', () => {});
    let running = true;
    const publishing = (async () => {
      while (running) {
        for (let i = 0; i < 200; i++) pub.publish('dashboard.ticks', { i });
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await page.goto(monitor.url);
      await page.locator('tr[data-node="dashboard-subscriber"]').waitFor({ timeout: 10_000 });
      await page.locator('tr[data-node="dashboard-publisher"]').waitFor();
      await page.waitForFunction('Number(document.body.dataset.samples) >= 4', undefined, { timeout: 10_000 });
      const rate = Number((await page.locator('#pubrate').textContent())?.replace('k', 'e3'));
      assert.ok(rate > 0, `publish rate on the page: ${rate}`);
      const canvases = await page.locator('canvas').count();
      assert.ok(canvases >= 2, 'two charts drawn');
      mkdirSync(`${ROOT}artifacts`, { recursive: true });
      await page.screenshot({ path: `${ROOT}artifacts/dashboard.png` });
    } finally {
      running = false;
      await publishing;
      await browser.close();
      await sub.stop();
      await pub.stop();
      await monitor.stop();
      await dispatcher.stop();
    }
  });
});
