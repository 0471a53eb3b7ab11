import type { Command } from 'commander';
import { NodesetError } from '../protocol/errors.js';
import { baseCommand } from './common.js';
import { resolveOptions } from './config.js';

interface MonitorCliOptions {
  monitorUrl: string;
  json?: boolean;
  once?: boolean;
  interval: number;
}

interface NodeRow {
  name: string;
  host: string;
  address: string;
  connectedAt: string;
  subscriptions: string[];
  msgsIn: number;
  msgsOut: number;
  heartbeatRttMs: number | null;
}

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

async function fetchSnapshot(base: string): Promise<Snapshot> {
  const get = async (path: string) => {
    let res: Response;
    try {
      res = await fetch(new URL(path, base));
    } catch (cause) {
      throw new NodesetError('CONNECTION_LOST', `cannot reach the monitoring endpoint ${base}`, { cause });
    }
    if (!res.ok) throw new NodesetError('CONNECTION_LOST', `${base}${path} answered ${res.status}`);
    return res.json();
  };
  const [stats, nodes] = await Promise.all([get('/stats'), get('/nodes')]);
  return { stats, nodes } as Snapshot;
}

const num = (n: number) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : String(Math.round(n));

/** A plain-text table of a snapshot, as `top` would show it. */
export function renderSnapshot({ stats, nodes }: Snapshot, width = 120): string {
  const lines = [
    `nodeset dispatcher ${stats.host}   nodes ${stats.connections}   subscriptions ${stats.subscriptions}   ` +
      `publishes/s ${num(stats.rates.publishesPerSec)}   deliveries/s ${num(stats.rates.deliveriesPerSec)}   ` +
      `dropped ${num(stats.dropped)}   rss ${(stats.memory.rssBytes / 1048576).toFixed(0)} MB`,
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
  return baseCommand(name, 'Watch a dispatcher: nodes, rates and subscriptions, refreshed every second.')
    .option('--monitor-url <url>', "the dispatcher's monitoring endpoint", 'http://127.0.0.1:8222')
    .option('--json', 'print one snapshot as JSON and exit')
    .option('--once', 'print the table once and exit')
    .action(async (_opts: unknown, command: Command) => {
      const opts = resolveOptions<MonitorCliOptions>(command);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(await fetchSnapshot(opts.monitorUrl), null, 2)}\n`);
        return;
      }
      if (opts.once || !process.stdout.isTTY) {
        process.stdout.write(`${renderSnapshot(await fetchSnapshot(opts.monitorUrl))}\n`);
        return;
      }
      const draw = async () => {
        try {
          const text = renderSnapshot(await fetchSnapshot(opts.monitorUrl), process.stdout.columns);
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
        process.exit(0);
      });
    });
}
