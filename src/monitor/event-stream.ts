import type { ServerResponse } from 'node:http';

export interface EventStreamLimits {
  /** Bytes queued for one client past which the next samples are skipped for it. */
  maxBufferedBytes: number;
  /** Samples skipped in a row for one client before it is disconnected. */
  maxSkippedSamples: number;
  /** Clients at once; more are refused. */
  maxClients: number;
}

/** What the monitor's `/events` stream has done, for /stats and /metrics. */
export interface EventStreamStats {
  /** Open /events clients. */
  clients: number;
  /** Samples not written to a client that was not reading. */
  skipped: number;
  /** Clients disconnected for not reading. */
  disconnected: number;
  /** Clients refused over maxClients. */
  refused: number;
}

interface Client {
  readonly res: ServerResponse;
  /** Samples skipped since it was last written to. */
  skipped: number;
}

/**
 * The Server-Sent Events clients of the monitoring endpoint. Every sample is
 * a whole snapshot, so one a client cannot take yet is skipped rather than
 * queued: a client holds at most `maxBufferedBytes` plus one sample, and is
 * disconnected (a browser's reader reconnects) once it has skipped
 * `maxSkippedSamples` in a row.
 */
export class EventStream {
  readonly #limits: EventStreamLimits;
  readonly #clients = new Set<Client>();
  #skipped = 0;
  #disconnected = 0;
  #refused = 0;

  constructor(limits: EventStreamLimits) {
    this.#limits = limits;
  }

  get size(): number {
    return this.#clients.size;
  }

  stats(): EventStreamStats {
    return {
      clients: this.#clients.size,
      skipped: this.#skipped,
      disconnected: this.#disconnected,
      refused: this.#refused,
    };
  }

  /** Starts the stream on `res` with a first sample; false (nothing written) when the limit of clients is reached. */
  add(res: ServerResponse, first: string): boolean {
    if (this.#clients.size >= this.#limits.maxClients) {
      this.#refused++;
      return false;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    const client: Client = { res, skipped: 0 };
    this.#clients.add(client);
    // The response closes when the client goes away (the request's 'close' only means its body was read).
    res.on('close', () => this.#clients.delete(client));
    res.write(first);
    return true;
  }

  /** Writes one sample (an SSE message) to every client that has room for it. */
  broadcast(message: string): void {
    for (const c of this.#clients) {
      if (c.res.writableLength > this.#limits.maxBufferedBytes) {
        c.skipped++;
        this.#skipped++;
        if (c.skipped >= this.#limits.maxSkippedSamples) {
          this.#disconnected++;
          this.#clients.delete(c);
          // A reset, not a close: a close would leave what the kernel still holds for it queued behind a FIN.
          if (c.res.socket !== null) c.res.socket.resetAndDestroy();
          else c.res.destroy();
        }
        continue;
      }
      if (c.skipped > 0) {
        c.res.write(`event: skipped\ndata: ${c.skipped}\n\n`);
        c.skipped = 0;
      }
      c.res.write(message);
    }
  }

  /** Ends every stream (at shutdown). */
  closeAll(): void {
    for (const c of this.#clients) c.res.end();
    this.#clients.clear();
  }
}
