// OpenTelemetry across processes: a publisher and a subscriber, each its own
// process with an in-memory exporter, talk through a dispatcher process; the
// spans they print make one trace (the dispatcher forwards the W3C trace
// context in the message headers untouched and makes no span of its own).
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { after, describe, test } from 'node:test';
import { Node } from '../src/index.js';
import {
  type CliProcess,
  ROOT,
  spawnDispatcher,
  spawnOwned,
  startDispatcher,
  stopProcess,
  WAIT_SCALE,
} from './helpers.js';

const require = createRequire(import.meta.url);
const MISSING = ['@opentelemetry/api', '@opentelemetry/sdk-trace-base', '@opentelemetry/context-async-hooks'].filter(
  (name) => {
    try {
      require.resolve(name);
      return false;
    } catch {
      return true;
    }
  },
);
const SKIP = MISSING.length > 0 ? `OpenTelemetry packages not installed: ${MISSING.join(', ')}` : false;

interface SpanLine {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  attributes: Record<string, unknown>;
}

/** Starts the fixture; resolves with a function that waits for its next stdout line matching `re`. */
function tracedNode(role: string, url: string): { child: ChildProcess; line(re: RegExp): Promise<string> } {
  const child = spawnOwned(process.execPath, ['--import', 'tsx', 'test/fixtures/traced-node.ts', role, url], {
    cwd: ROOT,
    env: { ...process.env, NODESET_LOGLEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const stderr: string[] = [];
  const waiters: { re: RegExp; resolve(l: string): void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) {
      if (w.re.test(l)) w.resolve(l);
      else waiters.push(w);
    }
  });
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  return {
    child,
    line: (re) => {
      const seen = lines.find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${role}: no line ${re}; stdout ${lines.join('\n')}; stderr ${stderr.join('\n')}`)),
          20_000 * WAIT_SCALE,
        );
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`${role} exited (${code}); stdout ${lines.join('\n')}; stderr ${stderr.join('\n')}`));
        });
        waiters.push({
          re,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      });
    },
  };
}

describe('OpenTelemetry tracing', { skip: SKIP }, () => {
  let dispatcher: CliProcess | null = null;
  const children: ChildProcess[] = [];
  after(async () => {
    await Promise.all(children.map((c) => stopProcess(c)));
    await dispatcher?.kill();
  });

  test('publish, delivery, request and reply make one trace across publisher, dispatcher and subscriber processes', async () => {
    const d = await spawnDispatcher();
    dispatcher = d.proc;
    const sub = tracedNode('subscriber', d.url);
    children.push(sub.child);
    await sub.line(/^ready$/);
    const pub = tracedNode('publisher', d.url);
    children.push(pub.child);
    const pubSpans = JSON.parse(await pub.line(/^\[/)) as SpanLine[];
    const subSpans = JSON.parse(await sub.line(/^\[/)) as SpanLine[];
    const byName = (spans: SpanLine[], name: string): SpanLine => {
      const s = spans.find((x) => x.name === name);
      assert.ok(s, `a span ${name} among ${spans.map((x) => x.name).join(', ')}`);
      return s;
    };
    const checkout = byName(pubSpans, 'checkout');
    const publish = byName(pubSpans, 'publish otel.orders');
    const request = byName(pubSpans, 'request otel.ask');
    const processed = byName(subSpans, 'process otel.orders');
    const responded = byName(subSpans, 'respond otel.ask');
    for (const s of [publish, request, processed, responded]) assert.equal(s.traceId, checkout.traceId, s.name);
    assert.equal(publish.parentSpanId, checkout.spanId);
    assert.equal(request.parentSpanId, checkout.spanId);
    assert.equal(processed.parentSpanId, publish.spanId, 'the delivery continues the publish across processes');
    assert.equal(responded.parentSpanId, request.spanId, 'the answer continues the request across processes');
    // Kinds: PRODUCER, CLIENT, CONSUMER, SERVER.
    assert.deepEqual([publish.kind, request.kind, processed.kind, responded.kind], [3, 2, 4, 1]);
    assert.equal(processed.attributes['messaging.destination.name'], 'otel.orders');
    assert.equal(processed.attributes['nodeset.from'], 'traced-publisher');
  });

  test('without a registered tracer provider nothing is traced and no header is added', async () => {
    // This process registers no provider: the node checks once at start and adds nothing.
    const d = await startDispatcher();
    const sub = await new Node({ dispatcherUrl: d.url, name: 'untraced-sub' }).start();
    const pub = await new Node({ dispatcherUrl: d.url, name: 'untraced-pub' }).start();
    let resolve: (h: unknown) => void = () => {};
    const got = new Promise<unknown>((r) => {
      resolve = r;
    });
    await sub.subscribe('plain.t', (_m, info) => resolve(info.headers));
    pub.publish('plain.t', 1);
    assert.deepEqual(await got, {});
    await pub.stop();
    await sub.stop();
    await d.stop();
  });
});
