import type { NodeInfo } from '../dispatcher/dispatcher.js';

/** What nodeset-monitor shows of a node: counters since it connected. */
export type NodeRow = Pick<
  NodeInfo,
  'name' | 'host' | 'address' | 'connectedAt' | 'subscriptions' | 'msgsIn' | 'msgsOut' | 'heartbeatRttMs'
> &
  Partial<Pick<NodeInfo, 'id' | 'bytesIn' | 'bytesOut' | 'pendingBytes'>>;

export interface Snapshot {
  stats: {
    host: string;
    connections: number;
    subscriptions: number;
    publishes: number;
    deliveries: number;
    dropped: number;
    rates: { publishesPerSec: number; deliveriesPerSec: number };
    memory: { rssBytes: number };
    /** Publishes per event name since the start, the busiest (QUERY `stats` and /stats). */
    events?: Record<string, number>;
    /** Publishes per second per event name, measured by the monitoring endpoint (/stats only). */
    topEvents?: EventRow[];
  };
  nodes: NodeRow[];
}

/** Where snapshots come from: the monitoring endpoint (HTTP) or the dispatcher itself (a node's queries). */
export interface Source {
  snapshot(): Promise<Snapshot>;
  subscribers(uri: string): Promise<unknown>;
  close(): Promise<void>;
}

/** A node with its rates over the last interval (0 for a node seen once). */
export interface RatedNode extends NodeRow {
  inPerSec: number;
  outPerSec: number;
  bytesPerSec: number;
}

/** An event name with its publishes per second over the last interval and since the start. */
export interface EventRow {
  event: string;
  perSec: number;
  total: number;
}

/** Event names shown with their rates. */
export const TOP_EVENTS = 20;

export const SORT_KEYS = ['in', 'out', 'bytes', 'name', 'rtt'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

/** Rates per node from the difference between two snapshots. */
export class RateTracker {
  #lastStats: { at: number; publishes: number; deliveries: number } | null = null;
  #last = new Map<string, { at: number; msgsIn: number; msgsOut: number; bytes: number }>();
  #lastEvents: { at: number; counts: Record<string, number> } | null = null;

  /**
   * Publishes per second per event name, busiest first: the endpoint's own
   * (`topEvents`) when it measured them, else from the difference between the
   * per-event counts of two snapshots (a name missing before had none).
   */
  rateEvents(stats: Snapshot['stats'], at: number): EventRow[] {
    if (stats.topEvents !== undefined) return stats.topEvents.slice(0, TOP_EVENTS);
    const counts = stats.events ?? {};
    const before = this.#lastEvents;
    this.#lastEvents = { at, counts };
    const secs = before === null ? 0 : (at - before.at) / 1000;
    return Object.entries(counts)
      .map(([event, total]) => ({
        event,
        total,
        perSec: before !== null && secs > 0 ? Math.max(0, total - (before.counts[event] ?? 0)) / secs : 0,
      }))
      .sort((a, b) => b.perSec - a.perSec || b.total - a.total || a.event.localeCompare(b.event))
      .slice(0, TOP_EVENTS);
  }

  /** The dispatcher's rates over the last interval, measured here (the endpoint's own may lag or be absent). */
  rateStats(stats: Snapshot['stats'], at: number): Snapshot['stats'] {
    const before = this.#lastStats;
    this.#lastStats = { at, publishes: stats.publishes, deliveries: stats.deliveries };
    // The endpoint samples its counters on its own clock: unchanged ones mean no newer sample, keep its rates.
    if (before === null || at <= before.at) return stats;
    if (before.publishes === stats.publishes && before.deliveries === stats.deliveries) {
      this.#lastStats = before;
      return stats;
    }
    const secs = (at - before.at) / 1000;
    return {
      ...stats,
      rates: {
        publishesPerSec: Math.max(0, stats.publishes - before.publishes) / secs,
        deliveriesPerSec: Math.max(0, stats.deliveries - before.deliveries) / secs,
      },
    };
  }

  rate(nodes: NodeRow[], at: number): RatedNode[] {
    const next = new Map<string, { at: number; msgsIn: number; msgsOut: number; bytes: number }>();
    const rows = nodes.map((n) => {
      const key = `${n.id ?? ''}|${n.name}|${n.address}`;
      const now = { at, msgsIn: n.msgsIn, msgsOut: n.msgsOut, bytes: (n.bytesIn ?? 0) + (n.bytesOut ?? 0) };
      next.set(key, now);
      const before = this.#last.get(key);
      const secs = before === undefined ? 0 : (at - before.at) / 1000;
      const per = (a: number, b: number) => (secs > 0 ? Math.max(0, a - b) / secs : 0);
      return {
        ...n,
        inPerSec: before === undefined ? 0 : per(now.msgsIn, before.msgsIn),
        outPerSec: before === undefined ? 0 : per(now.msgsOut, before.msgsOut),
        bytesPerSec: before === undefined ? 0 : per(now.bytes, before.bytes),
      };
    });
    this.#last = next;
    return rows;
  }
}

export interface ViewState {
  /** The table shown under the summary: nodes, or the busiest events. */
  pane: 'nodes' | 'events';
  sort: SortKey;
  filter: string;
  /** Typing a filter: the text so far, or null. */
  editing: string | null;
  color: boolean;
  width: number;
}

const num = (n: number) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : String(Math.round(n));
const bytes = (n: number) =>
  n >= 1048576 ? `${(n / 1048576).toFixed(1)}MB` : n >= 1024 ? `${(n / 1024).toFixed(1)}kB` : `${Math.round(n)}B`;

function sortRows(rows: RatedNode[], key: SortKey): RatedNode[] {
  const by: Record<SortKey, (a: RatedNode, b: RatedNode) => number> = {
    in: (a, b) => b.inPerSec - a.inPerSec,
    out: (a, b) => b.outPerSec - a.outPerSec,
    bytes: (a, b) => b.bytesPerSec - a.bytesPerSec,
    name: (a, b) => a.name.localeCompare(b.name),
    rtt: (a, b) => (b.heartbeatRttMs ?? -1) - (a.heartbeatRttMs ?? -1),
  };
  return [...rows].sort((a, b) => by[key](a, b) || a.name.localeCompare(b.name));
}

/**
 * The busiest events as lines: a header, then each event name with its
 * publishes per second and since the start, filtered by name.
 */
export function renderEvents(events: EventRow[], view: ViewState): string[] {
  const paint = (code: string, text: string) => (view.color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const filter = view.filter.toLowerCase();
  const shown = events.filter((e) => filter === '' || e.event.toLowerCase().includes(filter));
  const rows = shown.map((e) => [num(e.perSec), num(e.total), e.event]);
  const w0 = Math.max('MSG/s'.length + 1, ...rows.map((r) => (r[0] as string).length));
  const w1 = Math.max('TOTAL'.length, ...rows.map((r) => (r[1] as string).length));
  const lines = [paint('1', `${'MSG/s▼'.padStart(w0)}  ${'TOTAL'.padStart(w1)}  EVENT`)];
  for (const [i, r] of rows.entries()) {
    const perSec = (shown[i] as EventRow).perSec;
    const cell = (r[0] as string).padStart(w0);
    // Colour codes take no room on screen: cut the event name to what is left of the width.
    const name = (r[2] as string).slice(0, Math.max(0, view.width - w0 - w1 - 4));
    lines.push(`${perSec > 0 ? paint('32', cell) : paint('2', cell)}  ${(r[1] as string).padStart(w1)}  ${name}`);
  }
  if (rows.length === 0) lines.push(filter === '' ? '(no events)' : `(no events match "${view.filter}")`);
  return lines;
}

/**
 * The screen as lines: a summary line, then a table of nodes with their rates,
 * sorted and filtered, or (pane `events`) the busiest events with theirs;
 * colour when asked (zero rates dim, drops red).
 */
export function renderView(
  stats: Snapshot['stats'],
  nodes: RatedNode[],
  view: ViewState,
  events: EventRow[] = [],
): string[] {
  const paint = (code: string, text: string) => (view.color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const rate = (n: number, text: string) => (n > 0 ? paint('32', text) : paint('2', text));
  const summary =
    `nodeset dispatcher ${paint('1', stats.host)}   nodes ${stats.connections}   subscriptions ${stats.subscriptions}   ` +
    `publishes/s ${rate(stats.rates.publishesPerSec, num(stats.rates.publishesPerSec))}   ` +
    `deliveries/s ${rate(stats.rates.deliveriesPerSec, num(stats.rates.deliveriesPerSec))}   ` +
    `dropped ${stats.dropped > 0 ? paint('31', num(stats.dropped)) : '0'}` +
    (stats.memory.rssBytes > 0 ? `   rss ${(stats.memory.rssBytes / 1048576).toFixed(0)} MB` : '');
  if (view.pane === 'events') return [summary, '', ...renderEvents(events, view)];
  const filter = view.filter.toLowerCase();
  const shown = sortRows(
    nodes.filter(
      (n) =>
        filter === '' ||
        n.name.toLowerCase().includes(filter) ||
        n.subscriptions.some((s) => s.toLowerCase().includes(filter)),
    ),
    view.sort,
  );
  const header = ['NAME', 'HOST', 'ADDRESS', 'IN/s', 'OUT/s', 'BYTES/s', 'PENDING', 'RTT', 'SUBSCRIPTIONS'];
  const rows = shown.map((n) => [
    n.name,
    n.host,
    n.address,
    num(n.inPerSec),
    num(n.outPerSec),
    bytes(n.bytesPerSec),
    bytes(n.pendingBytes ?? 0),
    n.heartbeatRttMs === null ? '-' : `${n.heartbeatRttMs}ms`,
    n.subscriptions.join(','),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const numeric = new Set([3, 4, 5, 6, 7]);
  const line = (cells: string[], colour: (i: number, text: string) => string) =>
    cells
      .map((c, i) => {
        if (i === cells.length - 1) return c;
        const padded = numeric.has(i) ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number);
        return colour(i, padded);
      })
      .join('  ');
  // Colour codes do not take room on screen: cut the plain text, then paint.
  const fit = (text: string) => text.slice(0, view.width);
  const sortIndex = { in: 3, out: 4, bytes: 5, name: 0, rtt: 7 }[view.sort];
  const lines = [summary, ''];
  lines.push(
    line(
      header.map((h, i) => (i === sortIndex ? `${h}▼` : h)).map((h, i) => (i === 8 ? fit(h) : h)),
      (i, t) => paint(i === sortIndex ? '1;4' : '1', t),
    ),
  );
  for (const [i, r] of rows.entries()) {
    const n = shown[i] as RatedNode;
    const cells = r.map((c, j) => (j === 8 ? c.slice(0, Math.max(0, view.width - 60)) : c));
    lines.push(
      line(cells, (j, t) => {
        if (j === 3) return rate(n.inPerSec, t);
        if (j === 4) return rate(n.outPerSec, t);
        if (j === 6 && (n.pendingBytes ?? 0) > 0) return paint('33', t);
        return t;
      }),
    );
  }
  if (rows.length === 0) lines.push(filter === '' ? '(no nodes)' : `(no nodes match "${view.filter}")`);
  return lines;
}

/** The key help and the filter prompt, shown at the bottom of the live view. */
export function statusLine(view: ViewState): string {
  if (view.editing !== null) return `filter: ${view.editing}█  (enter to apply, esc to clear)`;
  const filter = view.filter === '' ? '' : `   filter "${view.filter}"`;
  if (view.pane === 'events') return `q quit   e nodes   / filter${filter}`;
  return `q quit   e events   s sort (${view.sort})   / filter${filter}`;
}
