import { setTimeout as sleep } from 'node:timers/promises';
import type { Node } from '../node/node.js';
import type { DeliveryMode } from '../protocol/frames.js';
import type { MessageHeaders } from '../protocol/headers.js';
import { parseMessage } from './connect.js';

/** Messages from a template repeated `count` times (0: until stopped), or one per line of text. */
export type PublishSource =
  | { kind: 'template'; template: string; count: number }
  | { kind: 'lines'; lines: AsyncIterable<string> };

export interface PublishLoopOptions {
  ack: boolean;
  raw: boolean;
  mode: DeliveryMode;
  /** Headers of every message (-H); undefined: none. */
  headers?: MessageHeaders;
  timeoutMs: number;
  /** Pause between messages (from --rate or --sleep); 0: as fast as the connection takes them. */
  intervalMs: number;
  /** Where the progress line goes (a terminal), or null. */
  progress: NodeJS.WriteStream | null;
}

export interface PublishSummary {
  sent: number;
  deliveries: number | null;
  seconds: number;
  interrupted: boolean;
  text: string;
}

/** Unacknowledged publishes wait for the socket to drain past this many queued bytes. */
const DRAIN_ABOVE_BYTES = 256 * 1024;
/** Acknowledged publishes kept in flight at once. */
const ACK_WINDOW = 256;
const PROGRESS_EVERY_MS = 250;

/** Fills `{{count}}` (1, 2, …) and `{{time}}` (ISO 8601) in a message template. */
export function fillTemplate(template: string, count: number): string {
  if (!template.includes('{{')) return template;
  return template.replace(/\{\{(count|time)\}\}/g, (_, what: string) =>
    what === 'count' ? String(count) : new Date().toISOString(),
  );
}

function* repeat(template: string, count: number): Iterable<string> {
  for (let i = 0; count === 0 || i < count; i++) yield template;
}

/**
 * Publishes until the source ends or SIGINT: without acknowledgements by
 * default (flow-controlled by the connection's drain), or acknowledged with a
 * window of requests in flight. Ctrl-C stops the loop; the summary still prints.
 */
export async function publishLoop(
  node: Node,
  uri: string,
  source: PublishSource,
  o: PublishLoopOptions,
): Promise<PublishSummary> {
  let interrupted = false;
  const onInterrupt = () => {
    interrupted = true;
  };
  process.once('SIGINT', onInterrupt);
  const started = performance.now();
  let sent = 0;
  let deliveries = 0;
  const inFlight = new Set<Promise<void>>();
  let lastProgress = 0;
  const showProgress = (force = false) => {
    if (o.progress === null) return;
    const now = performance.now();
    if (!force && now - lastProgress < PROGRESS_EVERY_MS) return;
    lastProgress = now;
    const rate = sent / Math.max((now - started) / 1000, 0.001);
    o.progress.write(`\r\x1b[Kpublished ${sent} (${Math.round(rate)}/s)`);
  };
  const texts = source.kind === 'template' ? repeat(source.template, source.count) : source.lines;
  // A template is JSON or text once and for all: decided on its first filling, not by a failed parse per message.
  const templateIsJson =
    source.kind === 'template' && !o.raw && typeof parseMessage(fillTemplate(source.template, 1), false) !== 'string';
  const toMessage = (text: string) => {
    if (source.kind === 'lines') return parseMessage(text, o.raw);
    const filled = fillTemplate(text, sent + 1);
    return templateIsJson ? JSON.parse(filled) : filled;
  };
  try {
    for await (const text of texts) {
      if (interrupted) break;
      const message = toMessage(text);
      if (o.ack) {
        const acked = node
          .publish(uri, message, { ack: true, mode: o.mode, timeoutMs: o.timeoutMs, headers: o.headers })
          .then((n) => {
            deliveries += n;
          })
          .finally(() => inFlight.delete(acked));
        inFlight.add(acked);
        if (inFlight.size >= ACK_WINDOW) await Promise.race(inFlight);
      } else {
        node.publish(uri, message, { mode: o.mode, headers: o.headers });
        if (node.pendingBytes > DRAIN_ABOVE_BYTES) await node.drain();
      }
      sent++;
      showProgress();
      if (o.intervalMs > 0) {
        // Paced against the start, so the time each publish takes does not slow the rate down.
        const ahead = started + sent * o.intervalMs - performance.now();
        if (ahead > 0) await sleep(ahead);
      }
    }
    await Promise.all(inFlight);
    await node.drain();
  } finally {
    process.removeListener('SIGINT', onInterrupt);
    if (o.progress !== null && sent > 0) o.progress.write('\r\x1b[K');
  }
  const seconds = (performance.now() - started) / 1000;
  const what = sent === 1 ? '1 message' : `${sent} messages`;
  let text = `published ${what} to ${uri}`;
  if (o.ack) text += `: ${deliveries} deliver${deliveries === 1 ? 'y' : 'ies'}`;
  if (sent > 1) text += ` in ${seconds.toFixed(2)} s (${Math.round(sent / Math.max(seconds, 0.001))}/s)`;
  if (interrupted) text += ' (interrupted)';
  return { sent, deliveries: o.ack ? deliveries : null, seconds, interrupted, text };
}
