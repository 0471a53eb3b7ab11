import type { Command } from 'commander';
import type { NodeInfo } from '../dispatcher/dispatcher.js';
import { Node } from '../node/node.js';
import { NodesetError } from '../protocol/errors.js';
import { baseCommand, type NodeCommandOptions, nodeConnectionOptions, withNodeOptions } from './common.js';
import { resolveOptions } from './config.js';
import { MONITOR_TOKEN_ENV, secretFromFileOrEnv } from './secrets.js';

interface MonitorCliOptions extends NodeCommandOptions {
  monitorUrl?: string;
  monitorTokenFile?: string;
  json?: boolean;
  once?: boolean;
  subscribers?: string;
}

/** Where snapshots come from: the monitoring endpoint (HTTP) or the dispatcher itself (a node's queries). */
interface Source {
  snapshot(): Promise<Snapshot>;
  subscribers(uri: string): Promise<unknown>;
  close(): Promise<void>;
}

type NodeRow = Pick<
  NodeInfo,
  'name' | 'host' | 'address' | 'connectedAt' | 'subscriptions' | 'msgsIn' | 'msgsOut' | 'heartbeatRttMs'
>;

interface Snapshot {
  stats: {
    host: string;
    connections: number;
    subscriptions: number;
    publishes: number;
    deliveries: number;
    dropped: number;
    rates: { publishesPerSec: number; deliveriesPerSec: number };
    memory: { rssBytes: number };
  };
  nodes: NodeRow[];
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
      const [stats, nodes] = (await Promise.all([node.stats(), node.nodes()])) as [Snapshot['stats'], NodeRow[]];
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

const num = (n: number) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : String(Math.round(n));

/** A plain-text table of a snapshot, as `top` would show it. */
export function renderSnapshot({ stats, nodes }: Snapshot, width = 120): string {
  const lines = [
    `nodeset dispatcher ${stats.host}   nodes ${stats.connections}   subscriptions ${stats.subscriptions}   ` +
      `publishes/s ${num(stats.rates.publishesPerSec)}   deliveries/s ${num(stats.rates.deliveriesPerSec)}   ` +
      `dropped ${num(stats.dropped)}${stats.memory.rssBytes > 0 ? `   rss ${(stats.memory.rssBytes / 1048576).toFixed(0)} MB` : ''}`,
    '',
  ];
  const header = ['NAME', 'HOST', 'ADDRESS', 'IN', 'OUT', 'RTT', 'SUBSCRIPTIONS'];
  const rows = nodes.map((n) => [
    n.name,
    n.host,
    n.address,
    num(n.msgsIn),
    num(n.msgsOut),
    n.heartbeatRttMs === null ? '-' : `${n.heartbeatRttMs}ms`,
    n.subscriptions.join(','),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number)))
      .join('  ')
      .slice(0, width);
  lines.push(line(header), ...rows.map(line));
  if (rows.length === 0) lines.push('(no nodes)');
  return lines.join('\n');
}

/** `nodeset-monitor`: a live terminal view of a dispatcher, from its monitoring endpoint. */
export function monitorCommand(name = 'nodeset-monitor'): Command {
  return withNodeOptions(
    baseCommand(name, 'Watch a dispatcher: nodes, rates and subscriptions, refreshed every second.'),
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
    .option('--once', 'print the table once and exit')
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
            process.stdout.write(`${renderSnapshot(await source.snapshot())}\n`);
          }
        } finally {
          await source.close();
        }
        return;
      }
      const draw = async () => {
        try {
          const text = renderSnapshot(await source.snapshot(), process.stdout.columns);
          process.stdout.write(`\x1b[H\x1b[2J${text}\n\n(ctrl-c to quit)`);
        } catch (err) {
          process.stdout.write(`\x1b[H\x1b[2J${(err as Error).message}; retrying…`);
        }
      };
      await draw();
      const timer = setInterval(() => void draw(), 1000);
      process.once('SIGINT', () => {
        clearInterval(timer);
        process.stdout.write('\n');
        void source.close().then(() => process.exit(0));
      });
    });
}
