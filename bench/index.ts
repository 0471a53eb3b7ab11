// Subscription index micro-benchmark: the cost of one uncached lookup as the
// number of exact subscriptions grows (should stay flat), as the number of
// wildcard subscriptions for other names grows (exact lookups should not
// notice), and for wildcard lookups (sub-linear: only matching trie branches
// are walked).
//
//   npm run bench:index
import { parseEventUri } from '../src/protocol/event-uri.js';
import { type RouteEntry, RoutingTable } from '../src/protocol/routing-table.js';

const sub = (uri: string): RouteEntry => {
  const p = parseEventUri(uri, true);
  return { pattern: p.event, wildcard: p.wildcard, group: null };
};

function nsPerLookup(table: RoutingTable<RouteEntry>, names: string[]): number {
  const rounds = 200_000;
  for (let i = 0; i < 20_000; i++) table.lookup(names[i % names.length] as string); // warm-up
  const t = process.hrtime.bigint();
  let found = 0;
  for (let i = 0; i < rounds; i++) found += table.lookup(names[i % names.length] as string).length;
  const ns = Number(process.hrtime.bigint() - t) / rounds;
  if (found === 0) throw new Error('lookups found nothing');
  return ns;
}

const sizes = [10, 100, 1_000, 10_000, 100_000];
const rows: string[][] = [
  ['subscriptions', 'exact lookup ns', 'exact lookup ns (+ as many wildcards)', 'wildcard lookup ns'],
];
for (const n of sizes) {
  const exact = new RoutingTable<RouteEntry>();
  for (let i = 0; i < n; i++) exact.add(sub(`svc${i}.orders.created`));
  const names = Array.from({ length: 1000 }, (_, i) => `svc${(i * 7919) % n}.orders.created`);
  const exactNs = nsPerLookup(exact, names);

  const mixed = new RoutingTable<RouteEntry>();
  for (let i = 0; i < n; i++) mixed.add(sub(`svc${i}.orders.created`));
  for (let i = 0; i < n; i++) mixed.add(sub(`other${i}.*.>`));
  const mixedNs = nsPerLookup(mixed, names);

  const wild = new RoutingTable<RouteEntry>();
  for (let i = 0; i < n; i++) wild.add(sub(`svc${i}.*.>`));
  const wildNames = Array.from({ length: 1000 }, (_, i) => `svc${(i * 7919) % n}.orders.created`);
  const wildNs = nsPerLookup(wild, wildNames);
  rows.push([n.toLocaleString('en-US'), exactNs.toFixed(0), mixedNs.toFixed(0), wildNs.toFixed(0)]);
}
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const r of rows) process.stdout.write(`${r.map((c, i) => c.padStart(widths[i]!)).join('   ')}\n`);
