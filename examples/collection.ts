// Several nodes in one process behind one dispatcher connection, one of them
// slow, like the original's multi-node example. The slow node's handler
// awaits; the others keep receiving meanwhile.
// Run a dispatcher (npm start), then: npx tsx examples/collection.ts
import { Node, NodeCollection, on } from 'nodeset';

class Logger extends Node {
  @on('sensor.>')
  log(reading: { value: number }, info: { uri: string }) {
    console.log(`[${this.name}] ${info.uri} = ${reading.value}`);
  }
}

class SlowArchiver extends Node {
  @on('sensor.>')
  async archive(reading: { value: number }) {
    await new Promise((r) => setTimeout(r, 500)); // a slow disk
    console.log(`[${this.name}] archived ${reading.value}`);
  }
}

class Sensor extends Node {
  async run() {
    for (let i = 1; i <= 5; i++) {
      // Delivered in-process to the other members, and through the dispatcher to remote subscribers.
      const n = await this.publish('sensor.temperature', { value: 20 + i }, { ack: true });
      console.log(`[${this.name}] published reading ${i}: ${n} subscriber(s)`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const collection = new NodeCollection({ name: 'plant-1' });
const sensor = collection.add(new Sensor({ name: 'sensor' }));
collection.add(new Logger({ name: 'logger' }));
collection.add(new SlowArchiver({ name: 'archiver' }));
await collection.start();
await sensor.run();
await new Promise((r) => setTimeout(r, 600)); // let the archiver finish
await collection.stop();
