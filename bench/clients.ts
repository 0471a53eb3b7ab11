// The same small client interface over nodeset, NATS (nats.js) and Redis
// pub/sub (ioredis), so every scenario runs unchanged against each system.
import { Node } from '../src/index.js';

export type PeerName = 'nodeset' | 'nats' | 'redis';

export interface BenchClient {
  /** The handler gets the payload as the client library hands it over, with no copy or conversion. */
  subscribe(subject: string, handler: (payload: Uint8Array) => void): Promise<void>;
  /** Publishes; returns a promise when flow control says to wait (see WINDOW). */
  publish(subject: string, payload: Uint8Array): void | Promise<void>;
  /** Waits until what was published has left the process. */
  flush(): Promise<void>;
  respond(subject: string): Promise<void>;
  request(subject: string, payload: Buffer): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * Flow control, the same for every peer: after each WINDOW messages the
 * publisher makes one round trip to its broker and waits for it, so what is
 * in flight is bounded the same way everywhere. nodeset: that message is an
 * acknowledged publish (answered once the dispatcher has routed it and
 * everything before it), or with BENCH_ROUND_TRIP_URI set an acknowledged
 * publish to that URI right after it (across hosts: a URI of the
 * publisher's own host, so the round trip stops at its dispatcher); NATS: `flush()` (a PING answered after everything
 * before it); Redis: the replies to the window's PUBLISH commands.
 */
export const WINDOW = 1024;

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
      const acked = { ...mode, ack: true as const };
      // Across hosts the round trip goes to the publisher's own dispatcher, as NATS's flush goes to
      // its server: an acked publish to a URI of that host (BENCH_ROUND_TRIP_URI), after the message.
      const roundTripUri = process.env.BENCH_ROUND_TRIP_URI;
      const empty = Buffer.alloc(0);
      return {
        subscribe: async (s, h) => void (await node.subscribe(s, h as (m: unknown) => void)),
        publish(s, p) {
          if (++sent % WINDOW === 0 && roundTripUri !== undefined) {
            node.publish(s, p, mode);
            return node.publish(roundTripUri, empty, { ack: true }).then(() => undefined);
          }
          if (sent % WINDOW === 0) return node.publish(s, p, acked).then(() => undefined);
          if (direct) node.publish(s, p, mode);
          else node.publish(s, p);
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
            callback: (_e, m) => h(m.data),
          });
          await nc.flush();
        },
        publish(s, p) {
          nc.publish(s, p);
          if (++sent % WINDOW === 0) return nc.flush();
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
      // A bench process subscribes to one channel: its handler is called without a lookup.
      let handler: (p: Uint8Array) => void = () => {};
      subConn.on('messageBuffer', (_channel: Buffer, message: Buffer) => handler(message));
      let inFlight: Promise<unknown>[] = [];
      return {
        async subscribe(s, h) {
          handler = h;
          await subConn.subscribe(s);
        },
        publish(s, p) {
          inFlight.push(pubConn.publish(s, p as Buffer));
          if (inFlight.length >= WINDOW) {
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
