// Overlapping all-hosts patterns: a pattern another wanted pattern covers gets
// no NATS subscription of its own, so one copy of each message crosses to a
// host however many of its patterns match; swapping subscriptions as patterns
// come and go loses nothing; the subscriptions come back after a reconnect.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PatternCover, patternCovers } from '../src/federation/pattern-cover.js';

test('patternCovers: every event the second pattern matches, the first matches too', () => {
  const table: [string, string, boolean][] = [
    ['a.>', 'a.b', true],
    ['a.>', 'a.b.c', true],
    ['a.>', 'a.*', true],
    ['a.>', 'a.*.c', true],
    ['a.>', 'a.b.>', true],
    ['a.>', 'a.>', true],
    ['a.>', 'a', false],
    ['a.>', 'b.c', false],
    ['a.>', '*.b', false],
    ['a.>', '>', false],
    ['a.*', 'a.b', true],
    ['a.*', 'a.*', true],
    ['a.*', 'a.b.c', false],
    ['a.*', 'a.>', false],
    ['a.*', 'a', false],
    ['a.*', '*.b', false],
    ['>', 'a', true],
    ['>', 'a.b.c', true],
    ['>', '*', true],
    ['>', '*.>', true],
    ['>', '>', true],
    ['*', 'a', true],
    ['*', 'a.b', false],
    ['*', '>', false],
    ['*.>', 'a.b', true],
    ['*.>', 'a.>', true],
    ['*.>', 'a', false],
    ['*.>', '>', false],
    ['*.b', 'a.b', true],
    ['*.b', 'a.c', false],
    ['*.*', 'a.*', true],
    ['a.*', '*.*', false],
    ['a.b', 'a.b', true],
    ['a.b', 'a.c', false],
    ['a.b', 'a.*', false],
    ['a.b', 'a.>', false],
    ['a.b', 'a', false],
    ['a.b', 'a.b.c', false],
    ['a', 'a.b', false],
    ['a.b.c', 'a.b', false],
  ];
  for (const [a, b, expected] of table) assert.equal(patternCovers(a, b), expected, `${a} covers ${b}`);
});

test('PatternCover: only patterns no other wanted pattern covers are subscribed', () => {
  const cover = new PatternCover();
  const subscribed = () => [...cover.subscribed].sort();
  assert.deepEqual(cover.add('x.y'), { coveredBy: null, superseded: [] });
  assert.deepEqual(cover.add('x.z.w'), { coveredBy: null, superseded: [] });
  assert.equal(cover.add('x.y'), null, 'already wanted');
  assert.deepEqual(cover.add('x.*'), { coveredBy: null, superseded: ['x.y'] });
  assert.deepEqual(subscribed(), ['x.*', 'x.z.w']);
  assert.deepEqual(cover.add('x.>'), { coveredBy: null, superseded: ['x.z.w', 'x.*'] });
  assert.deepEqual(cover.add('x.q'), { coveredBy: 'x.>', superseded: [] });
  assert.deepEqual(subscribed(), ['x.>']);
  assert.deepEqual([...cover.wanted].sort(), ['x.*', 'x.>', 'x.q', 'x.y', 'x.z.w'], 'every wanted pattern is kept');
  // Removing the covering pattern: what it covered and nothing else covers is subscribed again.
  assert.deepEqual(cover.remove('x.>'), { dropped: true, restored: ['x.z.w', 'x.*'] });
  assert.deepEqual(subscribed(), ['x.*', 'x.z.w']);
  assert.deepEqual(cover.remove('x.y'), { dropped: false, restored: [] });
  assert.equal(cover.remove('x.y'), null, 'not wanted');
  assert.deepEqual(cover.remove('x.*'), { dropped: true, restored: ['x.q'] });
  assert.deepEqual(subscribed(), ['x.q', 'x.z.w']);
  assert.deepEqual(cover.add('>'), { coveredBy: null, superseded: ['x.z.w', 'x.q'] });
  assert.deepEqual(cover.remove('>'), { dropped: true, restored: ['x.z.w', 'x.q'] });
  assert.deepEqual(cover.remove('x.q'), { dropped: true, restored: [] });
  assert.deepEqual(cover.remove('x.z.w'), { dropped: true, restored: [] });
  assert.equal(cover.wanted.size + cover.subscribed.size, 0);
});
