// Summarises a V8 CPU profile (node --cpu-prof): self time per function, top N.
//   node --import tsx bench/profile-summary.ts FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
const [file, top = '15'] = process.argv.slice(2) as [string, string?];
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[] };
const hits = new Map<string, number>();
let total = 0;
for (const node of profile.nodes) {
  const n = node.hitCount ?? 0;
  total += n;
  const f = node.callFrame;
  const where = f.url === '' ? '' : ` ${f.url.replace(/^.*\/(src|node_modules)\//, '$1/')}:${f.lineNumber + 1}`;
  const key = `${f.functionName || '(anonymous)'}${where}`;
  hits.set(key, (hits.get(key) ?? 0) + n);
}
const rows = [...hits.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(top));
for (const [name, n] of rows) process.stdout.write(`${((n / total) * 100).toFixed(1).padStart(5)}%  ${name}\n`);
