// Takes the screenshots kept in docs/: docs/dashboard.png (the monitoring
// dashboard) and docs/web-demo.png (the web bridge's demo page), in the
// headless chromium the tests use. It starts a dispatcher with its monitoring
// endpoint, a few nodes publishing at a modest rate and queue groups, and the
// web bridge, all in this process on 127.0.0.1 and free ports, and stops
// everything it started. Run `npm run screenshots` (it builds first).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { Dispatcher, MonitorServer, Node, WebBridge } from '../dist/index.js';

const DOCS = fileURLToPath(new URL('../docs/', import.meta.url));
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
if (CHROMIUM === undefined) {
  console.error('screenshots: chromium is not installed (apt-get install chromium)');
  process.exit(1);
}

/** What was started, stopped in reverse order whatever happens. */
const started = [];
const own = (thing, stop) => {
  started.push(stop);
  return thing;
};
const timers = [];
/** Publishes `perSecond` messages a second on `event`, in ticks of 100 ms. */
const every = (node, event, perSecond, message) => {
  let n = 0;
  timers.push(
    setInterval(() => {
      for (let i = 0; i < perSecond / 10; i++) node.publish(event, message(n++));
    }, 100),
  );
};

try {
  const dispatcher = own(await new Dispatcher({ port: 0, hostName: 'web1' }).start(), () => dispatcher.stop());
  const monitor = own(await new MonitorServer(dispatcher).start('127.0.0.1', 0), () => monitor.stop());
  const node = async (name) => {
    const n = await new Node({ dispatcherUrl: dispatcher.url, name, statsIntervalMs: 0 }).start();
    return own(n, () => n.stop());
  };
  const shop = await node('shop-frontend');
  const inventory = await node('inventory');
  for (const name of ['billing-1', 'billing-2']) {
    await (await node(name)).subscribe('orders.created', () => {}, { group: 'billing' });
  }
  for (const name of ['mailer-1', 'mailer-2', 'mailer-3']) {
    await (await node(name)).subscribe('orders.paid', () => {}, { group: 'mailers' });
  }
  await (await node('audit-log')).subscribe('orders.>', () => {});
  await (await node('warehouse')).subscribe('stock.updated', () => {});
  every(shop, 'orders.created', 120, (n) => ({ order: n, total: 42.5 }));
  every(shop, 'orders.paid', 40, (n) => ({ order: n }));
  every(inventory, 'stock.updated', 70, (n) => ({ sku: `sku-${n % 100}`, left: n % 17 }));
  every(shop, 'orders.cancelled', 10, (n) => ({ order: n }));

  const bridge = own(await new WebBridge({ port: 0, dispatcherUrl: dispatcher.url }).start(), () => bridge.stop());
  const browser = own(
    await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
    }),
    () => browser.close(),
  );

  // The dashboard, once its charts have some seconds of traffic.
  const dash = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await dash.goto(monitor.url);
  await dash.waitForFunction('Number(document.body.dataset.samples) >= 15', undefined, { timeout: 60_000 });
  await dash.locator('tr[data-group="mailers"]').waitFor();
  await dash.screenshot({ path: `${DOCS}dashboard.png`, fullPage: true });
  console.log(`wrote ${DOCS}dashboard.png`);

  // The web demo page: a subscription, events from a node and from the page, a request and its reply.
  const demo = await browser.newPage({ viewport: { width: 1100, height: 560 } });
  await demo.goto(bridge.url);
  await demo.waitForFunction("document.body.dataset.status === 'open'");
  await demo.fill('#sub-event', 'demo.>');
  await demo.click('#sub button');
  await demo.waitForFunction("document.body.dataset.subscribed === 'demo.>'");
  const greeter = await node('greeter');
  await greeter.respond('demo.add', (m) => m.a + m.b);
  await greeter.publish('demo.greeting', { text: 'hello from a node' }, { ack: true });
  await inventory.publish('demo.stock', { sku: 'sku-7', left: 3 }, { ack: true });
  await demo.fill('#pub-event', 'demo.reply');
  await demo.fill('#pub-message', '{"from":"the page"}');
  await demo.click('#pub button');
  await demo.locator('#result', { hasText: 'delivered to' }).waitFor();
  await demo.fill('#req-event', 'demo.add');
  await demo.fill('#req-message', '{"a":2,"b":3}');
  await demo.click('#req button');
  await demo.locator('#reply', { hasText: ': 5' }).waitFor();
  await demo.locator('#events li', { hasText: 'the page' }).waitFor();
  await demo.screenshot({ path: `${DOCS}web-demo.png`, fullPage: true });
  console.log(`wrote ${DOCS}web-demo.png`);
} catch (err) {
  console.error('screenshots:', err);
  process.exitCode = 1;
} finally {
  for (const t of timers) clearInterval(t);
  for (const stop of started.reverse()) await stop().catch(() => {});
}
