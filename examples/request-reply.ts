// A request/reply pair: a responder node whose handler's return value goes
// back to the requester, and a requester that calls it with a timeout.
// Run a dispatcher (npm start), then: npx tsx examples/request-reply.ts
import { Node, on } from 'nodeset';

class Calculator extends Node {
  @on('math.add', { reply: true })
  add({ a, b }: { a: number; b: number }) {
    return a + b;
  }

  @on('math.div', { reply: true })
  async div({ a, b }: { a: number; b: number }) {
    if (b === 0) throw new Error('division by zero');
    return a / b;
  }
}

const calculator = await new Calculator({ name: 'calculator' }).start();
const client = await new Node({ name: 'client' }).start();

console.log('2 + 40 =', await client.request('math.add', { a: 2, b: 40 }));
console.log('1 / 4 =', await client.request('math.div', { a: 1, b: 4 }));
try {
  await client.request('math.div', { a: 1, b: 0 });
} catch (err) {
  console.log('1 / 0 failed:', (err as Error).message);
}
try {
  await client.request('math.sqrt', 2, { timeoutMs: 500 });
} catch (err) {
  console.log('math.sqrt:', (err as Error & { code: string }).code);
}

await client.stop();
await calculator.stop();
