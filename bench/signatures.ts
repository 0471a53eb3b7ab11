// Signature check micro-benchmark: the cost of one KeyRing.verify (HMAC,
// strict decoding, replay cache) as the number of remembered signatures
// grows. It should stay flat: the replay cache does constant work per call.
//
//   npm run bench:signatures
import { KeyRing, signRequest } from '../src/web/signatures.js';

const SECRET = 'a-bench-secret-of-some-length';
const now = Date.now();
const keys = new KeyRing([{ id: 'bench', secret: SECRET }], { maxRemembered: 2_000_000 });
let n = 0;

function signedBatch(count: number): { headers: Record<string, string>; body: string }[] {
  return Array.from({ length: count }, () => {
    const body = `{"event":"bench","message":${n++}}`;
    return { headers: signRequest('bench', SECRET, { method: 'POST', target: '/publish', body }, now), body };
  });
}

/** µs per verify over `count` fresh signatures (signing is done before the clock starts). */
function usPerVerify(count: number): number {
  const batch = signedBatch(count);
  const t = process.hrtime.bigint();
  for (const { headers, body } of batch) keys.verify(headers, { method: 'POST', target: '/publish', body }, now);
  return Number(process.hrtime.bigint() - t) / 1000 / count;
}

const rows: string[][] = [['remembered before', 'µs per verify']];
usPerVerify(2000); // warm-up
for (const target of [2_000, 10_000, 100_000, 300_000]) {
  while (keys.remembered < target) usPerVerify(Math.min(50_000, target - keys.remembered));
  rows.push([keys.remembered.toLocaleString('en'), usPerVerify(2000).toFixed(2)]);
}
for (const r of rows) process.stdout.write(`${r[0]!.padStart(18)}  ${r[1]!.padStart(14)}\n`);
