import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import type { GapEvent } from '../src/index.js';
import { startDispatcher, startNode, TcpProxy, until } from './helpers.js';

describe('gap detection', () => {
  test('a subscriber that missed messages while reconnecting is told exactly which', async () => {
    const d = await startDispatcher();
    const proxy = await new TcpProxy(d.address.port).start();
    const sub = await startNode(proxy.url, {
      name: 'gap-sub',
      statsIntervalMs: 0,
      reconnect: { initialMs: 50, maxMs: 200 },
    });
    const pub = await startNode(d, { name: 'gap-pub', statsIntervalMs: 0 });
    try {
      const got: number[] = [];
      const gaps: GapEvent[] = [];
      sub.on('gap', (g) => gaps.push(g));
      await sub.subscribe('gap.ev', (n: number) => void got.push(n));
      for (let i = 1; i <= 3; i++) assert.equal(await pub.publish('gap.ev', i, { ack: true }), 1);
      await until(() => got.length === 3);
      const lost = once(sub, 'disconnect');
      await proxy.stop();
      await lost;
      await until(async () => ((await pub.subscribers('gap.ev')) as unknown[]).length === 0, 5000, 'routes dropped');
      for (let i = 4; i <= 6; i++) assert.equal(await pub.publish('gap.ev', i, { ack: true }), 0);
      const back = once(sub, 'reconnect');
      await proxy.start();
      await back;
      await until(async () => ((await pub.subscribers('gap.ev')) as unknown[]).length === 1, 5000, 'resubscribed');
      assert.equal(await pub.publish('gap.ev', 7, { ack: true }), 1);
      await until(() => got.length === 4);
      assert.deepEqual(got, [1, 2, 3, 7]);
      assert.deepEqual(gaps, [{ subscription: 'gap.ev', from: 'gap-pub', uri: 'gap.ev', missed: [4, 6] }]);
    } finally {
      await sub.stop();
      await pub.stop();
      await proxy.stop();
      await d.stop();
    }
  });

  test('publishes refused with BUFFER_FULL are not reported as gaps', async () => {
    const d = await startDispatcher();
    const proxy = await new TcpProxy(d.address.port).start();
    const sub = await startNode(d, { statsIntervalMs: 0 });
    const pub = await startNode(proxy.url, {
      name: 'refused-pub',
      statsIntervalMs: 0,
      reconnect: { initialMs: 50, maxMs: 200 },
      offlineMaxMessages: 3,
    });
    try {
      const got: number[] = [];
      const gaps: GapEvent[] = [];
      sub.on('gap', (g) => gaps.push(g));
      await sub.subscribe('refused.ev', (n: number) => void got.push(n));
      assert.equal(await pub.publish('refused.ev', 1, { ack: true }), 1);
      const lost = once(pub, 'disconnect');
      await proxy.stop();
      await lost;
      for (let i = 2; i <= 4; i++) pub.publish('refused.ev', i); // buffered offline
      assert.throws(() => pub.publish('refused.ev', 99), { code: 'BUFFER_FULL' });
      await assert.rejects(pub.publish('refused.ev', 98, { ack: true }), { code: 'BUFFER_FULL' });
      const back = once(pub, 'reconnect');
      await proxy.start();
      await back;
      assert.equal(await pub.publish('refused.ev', 5, { ack: true }), 1);
      await until(() => got.length === 5);
      assert.deepEqual(got, [1, 2, 3, 4, 5]);
      assert.deepEqual(gaps, [], 'the refused ones were never sent, so nobody missed them');
    } finally {
      await sub.stop();
      await pub.stop();
      await proxy.stop();
      await d.stop();
    }
  });

  test('no false gaps: queue groups, direct mode, two URIs, a restarted publisher', async () => {
    const d = await startDispatcher();
    const a = await startNode(d, { statsIntervalMs: 0 });
    const b = await startNode(d, { statsIntervalMs: 0 });
    const all = await startNode(d, { statsIntervalMs: 0 });
    let pub = await startNode(d, { name: 'restarting-pub', statsIntervalMs: 0 });
    try {
      const gaps: GapEvent[] = [];
      for (const n of [a, b, all]) n.on('gap', (g) => gaps.push(g));
      let received = 0;
      await a.subscribe('nogap.work', () => void received++, { group: 'g' });
      await b.subscribe('nogap.work', () => void received++, { group: 'g' });
      await all.subscribe('nogap.>', () => void received++);
      for (let i = 0; i < 10; i++) await pub.publish('nogap.work', i, { ack: true });
      for (let i = 0; i < 10; i++) await pub.publish('nogap.other', i, { ack: true });
      for (let i = 0; i < 6; i++) await pub.publish('nogap.work', i, { ack: true, mode: 'direct' });
      for (let i = 0; i < 2; i++) await pub.publish('nogap.work', i, { ack: true });
      await pub.stop();
      pub = await startNode(d, { name: 'restarting-pub', statsIntervalMs: 0 });
      for (let i = 0; i < 3; i++) await pub.publish('nogap.work', i, { ack: true });
      await until(() => received === 10 * 2 + 10 + 6 + 2 * 2 + 3 * 2);
      assert.deepEqual(gaps, []);
    } finally {
      for (const n of [a, b, all, pub]) await n.stop();
      await d.stop();
    }
  });
});
