import {
  type EventRow,
  type RatedNode,
  RateTracker,
  renderView,
  type Snapshot,
  SORT_KEYS,
  type Source,
  statusLine,
  type ViewState,
} from './monitor-view.js';

const ALT_SCREEN_ON = '\x1b[?1049h\x1b[?25l';
const ALT_SCREEN_OFF = '\x1b[?25h\x1b[?1049l';
/** Home, then each line followed by erase-to-end-of-line, then erase below: redrawn in place, no flicker. */
const HOME = '\x1b[H';
const ERASE_LINE = '\x1b[K';
const ERASE_BELOW = '\x1b[J';

/**
 * The live view: the terminal's alternate screen, redrawn in place every
 * interval; keys q (or Ctrl-C) quit, e switches between the nodes and the
 * busiest events, s changes the sort, / filters by node name or subscription
 * (or by event name).
 */
export async function liveView(source: Source, intervalMs: number): Promise<void> {
  const out = process.stdout;
  const color = process.env.NO_COLOR === undefined || process.env.NO_COLOR === '';
  const view: ViewState = { pane: 'nodes', sort: 'in', filter: '', editing: null, color, width: out.columns ?? 120 };
  const tracker = new RateTracker();
  let last: { snapshot: Snapshot; rated: RatedNode[]; events: EventRow[] } | null = null;
  let problem: string | null = null;

  const paint = () => {
    view.width = out.columns ?? 120;
    const rows = out.rows ?? 40;
    const lines =
      last === null
        ? [problem ?? 'connecting…']
        : renderView(last.snapshot.stats, last.rated, view, last.events).slice(0, rows - 2);
    if (problem !== null && last !== null) lines.push('', `${problem}; retrying…`);
    out.write(
      `${HOME}${lines.map((l) => `${l}${ERASE_LINE}`).join('\n')}\n\n${statusLine(view)}${ERASE_LINE}${ERASE_BELOW}`,
    );
  };
  const sample = async () => {
    try {
      const sampled = await source.snapshot();
      const at = performance.now();
      const snapshot = { ...sampled, stats: tracker.rateStats(sampled.stats, at) };
      last = { snapshot, rated: tracker.rate(sampled.nodes, at), events: tracker.rateEvents(sampled.stats, at) };
      problem = null;
    } catch (err) {
      problem = (err as Error).message;
    }
    paint();
  };

  out.write(ALT_SCREEN_ON);
  let timer: NodeJS.Timeout | null = null;
  const quit = () => {
    if (timer !== null) clearInterval(timer);
    out.write(ALT_SCREEN_OFF);
    if (process.stdin.isTTY) process.stdin.setRawMode(false);
    void source.close().then(
      () => process.exit(0),
      () => process.exit(0),
    );
  };
  process.once('SIGINT', quit);
  process.once('SIGTERM', quit);
  out.on('resize', paint);
  if (process.stdin.isTTY) {
    process.stdin.setRawMode(true);
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (key: string) => {
      if (view.editing !== null) {
        if (key === '\r' || key === '\n') {
          view.filter = view.editing;
          view.editing = null;
        } else if (key === '\x1b') {
          view.filter = '';
          view.editing = null;
        } else if (key === '\x7f' || key === '\b') view.editing = view.editing.slice(0, -1);
        else if (key === '\x03') quit();
        else if (key >= ' ') view.editing += key;
      } else if (key === 'q' || key === '\x03') quit();
      else if (key === 'e') view.pane = view.pane === 'nodes' ? 'events' : 'nodes';
      else if (key === 's') view.sort = SORT_KEYS[(SORT_KEYS.indexOf(view.sort) + 1) % SORT_KEYS.length] ?? 'in';
      else if (key === '/') view.editing = '';
      paint();
    });
  }
  await sample();
  timer = setInterval(() => void sample(), intervalMs);
}
