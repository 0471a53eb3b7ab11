import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseEventUri } from '../src/protocol/event-uri.js';
import { type RouteEntry, RoutingTable } from '../src/protocol/routing-table.js';

interface Sub extends RouteEntry {
  id: string;
}

function sub(id: string, uri: string, group: string | null = null): Sub {
  const p = parseEventUri(uri, true);
  return { id, pattern: p.event, wildcard: p.wildcard, group };
}

const ids = (subs: Sub[]) => subs.map((s) => s.id).sort();

describe('routing table', () => {
  test('add, match, remove', () => {
    const table = new RoutingTable<Sub>();
    const a = sub('a', 'orders.new');
    const b = sub('b', 'orders.new');
    table.add(a);
    table.add(b);
    assert.deepEqual(ids(table.match('orders.new').all), ['a', 'b']);
    assert.deepEqual(ids(table.match('orders.old').all), []);
    assert.ok(table.remove(a));
    assert.ok(!table.remove(a), 'removing twice is a no-op');
    assert.deepEqual(ids(table.match('orders.new').all), ['b']);
    assert.equal(table.size, 1);
  });

  test('multiple patterns for one event, exact and wildcard', () => {
    const table = new RoutingTable<Sub>();
    for (const s of [
      sub('exact', 'a.b.c'),
      sub('star', 'a.*.c'),
      sub('tail', 'a.>'),
      sub('all', '>'),
      sub('other', 'x.>'),
    ]) {
      table.add(s);
    }
    assert.deepEqual(ids(table.match('a.b.c').all), ['all', 'exact', 'star', 'tail']);
    assert.deepEqual(ids(table.match('a').all), ['all']);
    assert.deepEqual(ids(table.match('x.y').all), ['all', 'other']);
  });

  test('the route cache follows adds and removes of wildcard subscriptions', () => {
    const table = new RoutingTable<Sub>();
    assert.deepEqual(ids(table.match('a.b').all), []);
    const w = sub('w', 'a.*');
    table.add(w);
    assert.deepEqual(ids(table.match('a.b').all), ['w']);
    table.remove(w);
    assert.deepEqual(ids(table.match('a.b').all), []);
    assert.equal(table.wildcardCount, 0);
  });

  test('several subscriptions to one exact name come and go in any order', () => {
    const table = new RoutingTable<Sub>();
    const [a, b, c] = [sub('a', 'x.y'), sub('b', 'x.y'), sub('c', 'x.y')];
    for (const s of [a, b, c]) table.add(s);
    assert.equal(table.remove(b), true);
    assert.deepEqual(ids(table.match('x.y').all), ['a', 'c']);
    assert.equal(table.remove(a), true);
    assert.deepEqual(ids(table.match('x.y').all), ['c']);
    table.add(b);
    assert.deepEqual(ids(table.match('x.y').all), ['b', 'c']);
    assert.equal(table.remove(c), true);
    assert.equal(table.remove(b), true);
    assert.equal(table.remove(b), false, 'already gone');
    assert.deepEqual(ids(table.match('x.y').all), []);
    assert.equal(table.size, 0);
  });

  test("a connection's subscription set keeps order and lookups across its list-to-map switch", async () => {
    const { SubscriptionSet } = await import('../src/dispatcher/subscription-set.js');
    const set = new SubscriptionSet<{ sid: number; v: string }>();
    for (let sid = 1; sid <= 100; sid++) {
      set.set({ sid, v: `a${sid}` });
      assert.equal(set.size, sid);
      assert.equal(set.get(sid)?.v, `a${sid}`);
      assert.equal(set.get(1)?.v, 'a1');
    }
    set.set({ sid: 7, v: 'replaced' });
    assert.equal(set.size, 100);
    assert.equal(set.get(7)?.v, 'replaced');
    for (let sid = 2; sid <= 100; sid += 2) assert.equal(set.delete(sid), true);
    assert.equal(set.delete(2), false);
    assert.deepEqual(
      [...set.values()].slice(0, 4).map((s) => s.sid),
      [1, 3, 5, 7],
    );
    const small = new SubscriptionSet<{ sid: number }>();
    for (const sid of [5, 3, 9]) small.set({ sid });
    small.delete(3);
    assert.deepEqual(
      [...small.values()].map((s) => s.sid),
      [5, 9],
    );
    small.clear();
    assert.equal(small.size, 0);
  });

  test('a route handed out is marked stale when its subscriptions change, and only then', () => {
    const table = new RoutingTable<Sub>();
    const ab = table.match('a.b');
    const cd = table.match('c.d');
    table.add(sub('x', 'a.b'));
    assert.equal(ab.stale, true, 'exact add');
    assert.equal(cd.stale, false, 'other events keep their route');
    const ab2 = table.match('a.b');
    table.add(sub('w', 'c.*'));
    assert.equal(cd.stale, true, 'wildcard add');
    assert.equal(ab2.stale, false);
    assert.deepEqual(ids(table.match('c.d').all), ['w']);
  });

  test('the header cache keeps one packed header per URI, sender, content type and mode', async () => {
    const { HeaderCache } = await import('../src/protocol/header-cache.js');
    const packed: string[] = [];
    const cache = new HeaderCache((uri, sender, ct, mode) => {
      packed.push(`${uri}|${sender}|${ct}|${mode}`);
      return Buffer.from(packed.at(-1) as string);
    }, 2);
    const first = cache.get('a.b', 'n1', 0, 0);
    assert.equal(cache.get('a.b', 'n1', 0, 0), first, 'same buffer the second time');
    const variants = [
      cache.get('a.b', 'n2', 0, 0),
      cache.get('a.b', 'n1', 1, 0),
      cache.get('a.b', 'n1', 0, 1),
      cache.get('a.b', null, 0, 0),
    ];
    assert.deepEqual(
      variants.map((v) => v.toString()),
      ['a.b|n2|0|0', 'a.b|n1|1|0', 'a.b|n1|0|1', 'a.b|null|0|0'],
    );
    assert.equal(cache.get('a.b', 'n1', 0, 0), first, 'earlier variants kept');
    assert.equal(packed.length, 5);
    cache.get('c', null, 0, 0);
    assert.equal(cache.size, 2);
    cache.get('d', null, 0, 0);
    assert.equal(cache.size, 1, 'bounded: starts over past its limit');
  });

  test('round-robin over all subscriptions and within queue groups', () => {
    const table = new RoutingTable<Sub>();
    for (const s of [sub('x', 'job'), sub('y', 'job'), sub('g1', 'job', 'g'), sub('g2', 'job', 'g')]) table.add(s);
    const route = table.match('job');
    const picks = Array.from({ length: 8 }, () => route.pickOne()?.id);
    assert.deepEqual(picks, ['x', 'y', 'g1', 'g2', 'x', 'y', 'g1', 'g2']);
    assert.deepEqual(ids(route.ungrouped), ['x', 'y']);
    assert.equal(route.groups.length, 1);
  });

  test('exact lookups do not walk wildcard subscriptions of other names', () => {
    const table = new RoutingTable<Sub>();
    for (let i = 0; i < 5000; i++) table.add(sub(`w${i}`, `svc${i}.*.>`));
    table.add(sub('e', 'target.event'));
    assert.deepEqual(ids(table.match('target.event').all), ['e']);
    assert.deepEqual(ids(table.match('svc42.a.b').all), ['w42']);
  });
});
