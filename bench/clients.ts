// The same small client interface over nodeset, NATS (nats.js) and Redis
// pub/sub (ioredis), so every scenario runs unchanged against each system.
import { Node } from '../src/index.js';

export type PeerName = 'nodeset' | 'nats' | 'redis';

export interface BenchClient {
  subscribe(subject: string, handler: (payload: Buffer) => void): Promise<void>;
  /** Publishes; awaits only when flow control says so (bounded in-flight data). */
  publish(subject: string, payload: Buffer): void | Promise<void>;
  /** Waits until what was published has left the process. */
  flush(): Promise<void>;
  respond(subject: string): Promise<void>;
  request(subject: string, payload: Buffer): Promise<unknown>;
  close(): Promise<void>;
}

/** Flow control shared by every publisher: at most this many bytes queued before waiting. */
export const HIGH_WATER_BYTES = 1024 * 1024;

/**
 * `direct`: work-queue delivery. nodeset: the publisher's `direct` mode; NATS:
 * a queue group on the subscribers; Redis pub/sub has none.
 */
export async function client(peer: PeerName, url: string, name: string, direct = false): Promise<BenchClient> {
  switch (peer) {
    case 'nodeset': {
      const node = await new Node({ dispatcherUrl: url, name, statsIntervalMs: 0 }).start();
      let sent = 0;
      const mode = { mode: direct ? ('direct' as const) : ('all' as const) };
      return {
        subscribe: async (s, h) => void (await node.subscribe(s, (m: Buffer) => h(m))),
        publish(s, p) {
          if (direct) node.publish(s, p, mode);
          else node.publish(s, p);
          // Flow control: wait for the socket to drain past the high-water mark.
          if ((++sent & 255) === 0 && node.pendingBytes > HIGH_WATER_BYTES) return node.drain();
        },
        flush: () => node.drain(),
        respond: async (s) => void (await node.respond(s, (m: Buffer) => m)),
        request: (s, p) => node.request(s, p),
        close: () => node.stop(),
      };
    }
    case 'nats': {
      const { connect } = await import('nats');
      const nc = await connect({ servers: url, name, noEcho: false });
      let sent = 0;
      return {
        async subscribe(s, h) {
          nc.subscribe(s, {
            ...(direct ? { queue: 'workers' } : {}),
            callback: (_e, m) => h(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength)),
          });
          await nc.flush();
        },
        publish(s, p) {
          nc.publish(s, p);
          // nats.js buffers internally; flush (a PING round trip) bounds what is in flight.
          if ((++sent & 1023) === 0) return nc.flush();
        },
        flush: () => nc.flush(),
        async respond(s) {
          nc.subscribe(s, { callback: (_e, m) => m.respond(m.data) });
          await nc.flush();
        },
        request: (s, p) => nc.request(s, p, { timeout: 5000 }),
        close: () => nc.close(),
      };
    }
    case 'redis': {
      const { Redis } = await import('ioredis');
      const pubConn = new Redis(url, { enableAutoPipelining: false, lazyConnect: true });
      const subConn = new Redis(url, { enableAutoPipelining: false, lazyConnect: true });
      await pubConn.connect();
      await subConn.connect();
      const handlers = new Map<string, (p: Buffer) => void>();
      subConn.on('messageBuffer', (channel: Buffer, message: Buffer) => handlers.get(channel.toString())?.(message));
      let inFlight: Promise<unknown>[] = [];
      return {
        async subscribe(s, h) {
          handlers.set(s, h);
          await subConn.subscribe(s);
        },
        publish(s, p) {
          inFlight.push(pubConn.publish(s, p));
          if (inFlight.length >= 1024) {
            const wait = Promise.all(inFlight);
            inFlight = [];
            return wait.then(() => undefined);
          }
        },
        async flush() {
          await Promise.all(inFlight);
          inFlight = [];
        },
        async respond() {
          throw new Error('redis pub/sub has no request/reply');
        },
        async request() {
          throw new Error('redis pub/sub has no request/reply');
        },
        async close() {
          pubConn.disconnect();
          subConn.disconnect();
        },
      };
    }
  }
}
