import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { Node } from '../node/node.js';
import { NodesetError } from '../protocol/errors.js';
import { baseCommand, intOption, type NodeCommandOptions, nodeConnectionOptions, withNodeOptions } from './common.js';
import { resolveOptions } from './config.js';
import { liveView } from './monitor-live.js';
import {
  type EventRow,
  type NodeRow,
  type RatedNode,
  RateTracker,
  renderEvents,
  renderView,
  type Snapshot,
  type Source,
  type ViewState,
} from './monitor-view.js';
import { MONITOR_TOKEN_ENV, secretFromFileOrEnv } from './secrets.js';

interface MonitorCliOptions extends NodeCommandOptions {
  interval: number;
  monitorUrl?: string;
  monitorTokenFile?: string;
  json?: boolean;
  once?: boolean;
  subscribers?: string;
}

function httpSource(base: string, token: string | undefined): Source {
  const get = httpGetter(base, token);
  return {
    snapshot: async () => {
      const [stats, nodes] = await Promise.all([get('/stats'), get('/nodes')]);
      return { stats, nodes } as Snapshot;
    },
    subscribers: (uri) => get(`/subscribers?uri=${encodeURIComponent(uri)}`),
    close: async () => {},
  };
}

/** Snapshots through a node's QUERY frames; rates come from the difference between two snapshots. */
async function dispatcherSource(opts: NodeCommandOptions): Promise<Source> {
  const node = await new Node({ ...nodeConnectionOptions(opts), statsIntervalMs: 0, startTimeoutMs: 5000 }).start();
  let last: { at: number; publishes: number; deliveries: number } | null = null;
  return {
    async snapshot() {
      const [stats, nodes] = (await Promise.all([node.stats(), node.nodes()])) as unknown as [
        Snapshot['stats'],
        NodeRow[],
      ];
      const now = Date.now();
      const secs = last === null ? 0 : (now - last.at) / 1000;
      const rates = {
        publishesPerSec: secs > 0 && last !== null ? (stats.publishes - last.publishes) / secs : 0,
        deliveriesPerSec: secs > 0 && last !== null ? (stats.deliveries - last.deliveries) / secs : 0,
      };
      last = { at: now, publishes: stats.publishes, deliveries: stats.deliveries };
      return { stats: { ...stats, rates, memory: stats.memory ?? { rssBytes: 0 } }, nodes };
    },
    subscribers: (uri) => node.subscribers(uri),
    close: () => node.stop(),
  };
}

/** GETs JSON from the monitoring endpoint, with the token when there is one. */
function httpGetter(base: string, token: string | undefined): (path: string) => Promise<unknown> {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  return async (path) => {
    let res: Response;
    try {
      res = await fetch(new URL(path, base), { headers });
    } catch (cause) {
      throw new NodesetError('CONNECTION_LOST', `cannot reach the monitoring endpoint ${base}`, { cause });
    }
    if (res.status === 401) {
      throw new NodesetError(
        'AUTH_FAILED',
        `${base}${path} needs the monitor token: set ${MONITOR_TOKEN_ENV} or give --monitor-token-file`,
      );
    }
    // A 400 carries its reason (a bad URI) as JSON, printed like any answer.
    if (!res.ok && res.status !== 400) {
      throw new NodesetError('CONNECTION_LOST', `${base}${path} answered ${res.status}`);
    }
    return res.json();
  };
}

/**
 * A plain-text table of a snapshot with rates, as `top` would show it (no
 * colour), then the busiest events with their rates.
 */
export function renderSnapshot(snapshot: Snapshot, rated: RatedNode[], width = 120, events: EventRow[] = []): string {
  const view: ViewState = { pane: 'nodes', sort: 'in', filter: '', editing: null, color: false, width };
  return [...renderView(snapshot.stats, rated, view), '', ...renderEvents(events, view)].join('\n');
}

/** Two snapshots `intervalMs` apart: the second, with rates per node and per event over the interval. */
async function sampleTwice(
  source: Source,
  intervalMs: number,
): Promise<{ snapshot: Snapshot; rated: RatedNode[]; events: EventRow[] }> {
  const tracker = new RateTracker();
  const first = await source.snapshot();
  const at = performance.now();
  tracker.rate(first.nodes, at);
  tracker.rateStats(first.stats, at);
  tracker.rateEvents(first.stats, at);
  await sleep(intervalMs);
  const second = await source.snapshot();
  const now = performance.now();
  const snapshot = { ...second, stats: tracker.rateStats(second.stats, now) };
  return { snapshot, rated: tracker.rate(second.nodes, now), events: tracker.rateEvents(second.stats, now) };
}

/** `nodeset-monitor`: a live terminal view of a dispatcher, from its monitoring endpoint. */
export function monitorCommand(name = 'nodeset-monitor'): Command {
  return withNodeOptions(
    baseCommand(
      name,
      'Watch a dispatcher: nodes, rates and subscriptions, refreshed every second (keys: q quit, e events, s sort, / filter).',
    ),
  )
    .addHelpText(
      'after',
      `
Keys of the live view:
  q, Ctrl-C   quit
  e           switch between the nodes and the busiest events (publishes per second per event name)
  s           sort the nodes by in, out, bytes, name or rtt
  /           filter by node name or subscription (events: by event name); Enter applies, Esc clears
--once prints the nodes, then the busiest events with their rates.`,
    )
    .option(
      '--monitor-url <url>',
      "the dispatcher's monitoring endpoint (default http://127.0.0.1:8222, unless --dispatcher-url is given)",
    )
    .option(
      '--monitor-token-file <file>',
      `file holding the monitoring endpoint's token (first line); or set ${MONITOR_TOKEN_ENV}`,
    )
    .option('--json', 'print one snapshot as JSON and exit')
    .option('--once', 'print the table once, with rates over one interval, and exit')
    .option('--interval <ms>', 'time between two samples', intOption('--interval', 100), 1000)
    .option('--subscribers <uri>', 'print who would receive a publish to this URI, and exit')
    .action(async (_opts: unknown, command: Command) => {
      const opts = resolveOptions<MonitorCliOptions>(command);
      const viaDispatcher =
        opts.monitorUrl === undefined && command.getOptionValueSource('dispatcherUrl') !== 'default';
      const source = viaDispatcher
        ? await dispatcherSource(opts)
        : httpSource(
            opts.monitorUrl ?? 'http://127.0.0.1:8222',
            secretFromFileOrEnv('--monitor-token-file', opts.monitorTokenFile, MONITOR_TOKEN_ENV),
          );
      if (opts.subscribers !== undefined || opts.json || opts.once || !process.stdout.isTTY) {
        try {
          if (opts.subscribers !== undefined) {
            process.stdout.write(`${JSON.stringify(await source.subscribers(opts.subscribers), null, 2)}\n`);
          } else if (opts.json) {
            process.stdout.write(`${JSON.stringify(await source.snapshot(), null, 2)}\n`);
          } else {
            const { snapshot, rated, events } = await sampleTwice(source, opts.interval);
            process.stdout.write(`${renderSnapshot(snapshot, rated, process.stdout.columns ?? 160, events)}\n`);
          }
        } finally {
          await source.close();
        }
        return;
      }
      await liveView(source, opts.interval);
    });
}
