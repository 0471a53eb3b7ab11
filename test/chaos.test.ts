// Chaos: processes killed, frozen and restarted under traffic. `npm test` runs
// a shortened version; `npm run test:chaos` the full one (NODESET_CHAOS=full).
// Every scenario is bounded in count and time and prints its figures.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { type Node, NodesetError } from '../src/index.js';
import { encodeFrame, FrameKind } from '../src/protocol/frames.js';
import { CliProcess, ROOT, spawnDispatcher, spawnOwned, startNode, until, WAIT_SCALE } from './helpers.js';
import { RawClient } from './raw-client.js';

const FULL = process.env.NODESET_CHAOS === 'full';

describe(`chaos (${FULL ? 'full' : 'short'})`, () => {
  test('dispatcher SIGKILL and restart during an acked publish stream: every promise settles, nothing reported delivered is missing', async (t) => {
    const total = FULL ? 50_000 : 5_000;
    const first = await spawnDispatcher(['--heartbeat-interval', '500']);
    const opts = {
      statsIntervalMs: 0,
      reconnect: { initialMs: 50, maxMs: 500 },
      ackTimeoutMs: 5000,
      offlineMaxMessages: 50_000,
    };
    const sub = await startNode(first.url, { name: 'chaos-sub', ...opts });
    const pub = await startNode(first.url, { name: 'chaos-pub', ...opts });
    const received = new Set<number>();
    await sub.subscribe('chaos.stream', (i: number) => void received.add(i));
    let second: Awaited<ReturnType<typeof spawnDispatcher>> | null = null;
    try {
      const delivered: number[] = [];
      let notRouted = 0;
      let rejected = 0;
      let restartedAt = 0;
      let firstAfterRestart = 0;
      const window = 64;
      const inFlight = new Set<Promise<void>>();
      for (let i = 0; i < total; i++) {
        if (i === Math.floor(total / 3)) {
          await first.proc.kill('SIGKILL');
          second = await spawnDispatcher(['--listen', `127.0.0.1:${first.port}`, '--heartbeat-interval', '500']);
          restartedAt = Date.now();
        }
        const p = pub.publish('chaos.stream', i, { ack: true }).then(
          (n) => {
            if (n === 1) {
              delivered.push(i);
              if (restartedAt > 0 && firstAfterRestart === 0) firstAfterRestart = Date.now();
            } else notRouted++;
          },
          (err: unknown) => {
            assert.ok(err instanceof NodesetError && ['CONNECTION_LOST', 'TIMEOUT'].includes(err.code), String(err));
            rejected++;
          },
        );
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
        if (inFlight.size >= window) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      assert.equal(delivered.length + notRouted + rejected, total, 'every promise settled');
      await until(() => delivered.every((i) => received.has(i)), 10_000, 'every message reported delivered to arrive');
      const resumeMs = firstAfterRestart - restartedAt;
      t.diagnostic(
        `${total} acked publishes: ${delivered.length} delivered (all received), ${notRouted} routed to nobody, ${rejected} rejected; delivering again ${resumeMs} ms after the restart`,
      );
      assert.ok(firstAfterRestart > 0, 'delivering again after the restart');
      assert.ok(resumeMs < 3000 * WAIT_SCALE, `resumed ${resumeMs} ms after the restart`);
    } finally {
      await pub.stop();
      await sub.stop();
      await first.proc.kill('SIGKILL');
      if (second !== null) await second.proc.kill('SIGTERM');
    }
  });

  test('subscriber SIGKILL in a work queue of 4: the others receive every later message', async (t) => {
    const { proc, url } = await spawnDispatcher();
    const workers = [0, 1, 2, 3].map(
      (i) =>
        new CliProcess('nodeset-node', [
          'subscriber',
          '--dispatcher-url',
          url,
          '--name',
          `w${i}`,
          '--event',
          'chaos.jobs',
        ]),
    );
    const pub = await startNode(url, { statsIntervalMs: 0 });
    try {
      await until(async () => ((await pub.subscribers('chaos.jobs')) as unknown[]).length === 4, 10_000, 'workers');
      const before = FULL ? 2000 : 200;
      for (let i = 0; i < before; i++)
        assert.equal(await pub.publish('chaos.jobs', i, { mode: 'direct', ack: true }), 1);
      await workers[2]!.kill('SIGKILL');
      const deadCount = workers[2]!.lines.length;
      await until(
        async () => ((await pub.subscribers('chaos.jobs')) as unknown[]).length === 3,
        5000,
        'dead worker dropped',
      );
      const after = FULL ? 6000 : 600;
      for (let i = before; i < before + after; i++) {
        assert.equal(await pub.publish('chaos.jobs', i, { mode: 'direct', ack: true }), 1);
      }
      const live = [workers[0]!, workers[1]!, workers[3]!];
      await until(
        () =>
          live.reduce((n, w) => n + w.lines.filter((l) => Number(JSON.parse(l).message) >= before).length, 0) === after,
        10_000,
        'later messages',
      );
      assert.equal(workers[2]!.lines.length, deadCount, 'nothing went to the dead worker');
      t.diagnostic(
        `${after} messages after the kill, spread ${live.map((w) => w.lines.length).join('/')} over the 3 live workers`,
      );
    } finally {
      await pub.stop();
      await Promise.all(workers.map((w) => w.kill('SIGTERM')));
      await proc.kill('SIGTERM');
    }
  });

  test('dispatcher frozen (SIGSTOP) past the heartbeat timeout, then resumed: nodes reconnect, traffic resumes, dead nodes are dropped', async (t) => {
    const { proc, url } = await spawnDispatcher(['--heartbeat-interval', '200']);
    const opts = { statsIntervalMs: 0, reconnect: { initialMs: 50, maxMs: 300 }, connectTimeoutMs: 1000 };
    const sub = await startNode(url, { name: 'frozen-sub', ...opts });
    const pub = await startNode(url, { name: 'frozen-pub', ...opts });
    const doomed = new CliProcess('nodeset-node', [
      'subscriber',
      '--dispatcher-url',
      url,
      '--name',
      'doomed',
      '--event',
      'x',
    ]);
    const got: number[] = [];
    let waiting: Node[] = [];
    try {
      await sub.subscribe('frozen.ev', (n: number) => void got.push(n));
      await until(async () => ((await pub.nodes()) as unknown[]).length === 3, 10_000, 'three nodes');
      const lost = [once(sub, 'disconnect'), once(pub, 'disconnect')];
      proc.child.kill('SIGSTOP');
      const frozenAt = Date.now();
      await Promise.all(lost);
      const detectMs = Date.now() - frozenAt;
      await doomed.kill('SIGKILL'); // dies while the dispatcher is frozen
      waiting = [sub, pub];
      const back = [once(sub, 'reconnect'), once(pub, 'reconnect')];
      proc.child.kill('SIGCONT');
      const resumedAt = Date.now();
      await Promise.all(back);
      await until(async () => (await pub.publish('frozen.ev', 1, { ack: true })) === 1, 5000, 'traffic');
      await until(() => got.includes(1));
      await until(
        async () => !((await pub.nodes()) as { name: string }[]).some((n) => n.name === 'doomed'),
        5000,
        'dead node dropped',
      );
      t.diagnostic(`silence detected after ${detectMs} ms; traffic again ${Date.now() - resumedAt} ms after SIGCONT`);
    } finally {
      if (proc.child.exitCode === null) proc.child.kill('SIGCONT');
      for (const n of waiting.length ? waiting : [sub, pub]) await n.stop();
      await doomed.kill('SIGKILL');
      await proc.kill('SIGTERM');
    }
  });

  test('reconnect storm: nodes in several processes all re-subscribe after a dispatcher restart, spread out', async (t) => {
    const perProcess = FULL ? 125 : 25;
    const processes = 4;
    const total = perProcess * processes;
    const first = await spawnDispatcher();
    const children = Array.from({ length: processes }, () =>
      spawnOwned(process.execPath, ['--import', 'tsx', 'test/fixtures/many-nodes.ts', first.url, String(perProcess)], {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, NODESET_LOGLEVEL: 'silent' },
      }),
    );
    let second: Awaited<ReturnType<typeof spawnDispatcher>> | null = null;
    let watcher: Node | null = null;
    try {
      await Promise.all(
        children.map(
          (c) => new Promise<void>((resolve) => createInterface({ input: c.stdout! }).once('line', () => resolve())),
        ),
      );
      await first.proc.kill('SIGKILL');
      second = await spawnDispatcher(['--listen', `127.0.0.1:${first.port}`]);
      const restartedAt = Date.now();
      watcher = await startNode(second.url, { statsIntervalMs: 0 });
      const marks: Record<string, number> = {};
      const count = async () => ((await watcher!.stats()) as { subscriptions: number }).subscriptions;
      await until(
        async () => {
          const n = await count();
          for (const q of [0.25, 0.5, 0.9, 1])
            if (n >= total * q && marks[`${q * 100}%`] === undefined) marks[`${q * 100}%`] = Date.now() - restartedAt;
          return n >= total;
        },
        10_000,
        'all re-subscribed',
      );
      t.diagnostic(
        `${total} nodes re-subscribed after the restart: ${Object.entries(marks)
          .map(([k, v]) => `${k} at ${v} ms`)
          .join(', ')}`,
      );
      assert.ok((marks['100%'] ?? Infinity) < 5000 * WAIT_SCALE, 'all re-subscribed in time');
      // With 500 nodes the jittered back-off must spread them out; 100 may all fit in one poll.
      if (FULL) assert.ok((marks['25%'] ?? 0) < (marks['100%'] ?? 0), 'spread out, not all at once');
    } finally {
      await watcher?.stop();
      for (const c of children) c.kill('SIGTERM');
      await Promise.all(children.map((c) => (c.exitCode === null ? once(c, 'exit') : undefined)));
      await first.proc.kill('SIGKILL');
      if (second !== null) await second.proc.kill('SIGTERM');
    }
  });

  test('soak: many nodes with 10 subscriptions each under a steady rate: no errors, no loss, dispatcher memory flat', async (t) => {
    const perProcess = FULL ? 250 : 25;
    const processes = 4;
    const subsPerNode = 10;
    const rate = FULL ? 20_000 : 5_000;
    const seconds = FULL ? 60 : 4;
    const warmupSeconds = FULL ? 20 : 1;
    const { proc, url } = await spawnDispatcher();
    const rss = () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.child.pid}/status`, 'utf8'));
      return Number(m?.[1] ?? 0) / 1024;
    };
    const children = Array.from({ length: processes }, () =>
      spawnOwned(
        process.execPath,
        ['--import', 'tsx', 'test/fixtures/many-nodes.ts', url, String(perProcess), String(subsPerNode)],
        {
          cwd: ROOT,
          stdio: ['ignore', 'pipe', 'inherit'],
          env: { ...process.env, NODESET_LOGLEVEL: 'silent' },
        },
      ),
    );
    const counts = new Map<number, number>();
    const pub = await startNode(url, { statsIntervalMs: 0 });
    try {
      const pids = await Promise.all(
        children.map(
          (c) =>
            new Promise<number>((resolve) => {
              createInterface({ input: c.stdout! }).on('line', (line) => {
                const ready = /^ready (\d+)$/.exec(line);
                if (ready) resolve(Number(ready[1]));
                const got = /^received (\d+)$/.exec(line);
                if (got) counts.set(c.pid!, Number(got[1]));
              });
            }),
        ),
      );
      let published = 0;
      let errors = 0;
      let afterWarmup = 0;
      const started = Date.now();
      await new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          const elapsed = (Date.now() - started) / 1000;
          if (elapsed >= seconds) {
            clearInterval(timer);
            resolve();
            return;
          }
          if (afterWarmup === 0 && elapsed >= warmupSeconds) afterWarmup = rss();
          // Paced by the clock, not by the timer: catch up on what is due.
          const due = Math.floor(rate * elapsed) - published;
          for (let i = 0; i < due; i++) {
            const n = published++;
            const pid = pids[n % processes];
            const node = Math.floor(n / processes) % perProcess;
            try {
              pub.publish(`storm.${pid}.${node}.${n % subsPerNode}`, n);
            } catch {
              errors++;
            }
          }
        }, 10);
      });
      await pub.drain();
      const atEnd = rss();
      await until(
        async () => {
          for (const c of children) c.kill('SIGUSR2');
          await new Promise((r) => setTimeout(r, 100));
          return [...counts.values()].reduce((a, b) => a + b, 0) === published;
        },
        20_000,
        'every message received',
      );
      const achieved = published / seconds;
      t.diagnostic(
        `${processes * perProcess} nodes, ${processes * perProcess * subsPerNode} subscriptions, ${published} messages in ${seconds} s (${Math.round(achieved)}/s), ${errors} errors, all received; dispatcher RSS ${afterWarmup.toFixed(0)} MB after warm-up, ${atEnd.toFixed(0)} MB at the end`,
      );
      assert.equal(errors, 0);
      assert.ok(atEnd <= afterWarmup * (FULL ? 1.1 : 1.25), `memory grew from ${afterWarmup} to ${atEnd} MB`);
    } finally {
      await pub.stop();
      for (const c of children) c.kill('SIGTERM');
      await Promise.all(children.map((c) => (c.exitCode === null ? once(c, 'exit') : undefined)));
      await proc.kill('SIGTERM');
    }
  });

  // The `cut` policy (docs/guarantees.md): a connection more than
  // --max-pending behind is cut off, counted, and told (its SLOW_CONSUMER
  // notice goes ahead of the queue that is discarded, so it reads it once it
  // runs again). On a busy machine a live subscriber can fall that far behind
  // too; it is then cut the same way, counted, and never silently short.
  // Throughput is printed, not asserted.
  test('a subscriber frozen (SIGSTOP) under load is cut off and told; the others get everything unless cut themselves; dispatcher memory stays bounded', async (t) => {
    const count = FULL ? 300_000 : 60_000;
    const maxPending = 4 * 1024 * 1024;
    const worker = (url: string, role: string) => {
      const child = spawnOwned(
        process.execPath,
        ['--import', 'tsx', 'bench/suite-worker.ts', 'nodeset', url, role, 'chaos.load', String(count), '128'],
        {
          cwd: ROOT,
          stdio: ['pipe', 'pipe', 'inherit'],
          env: { ...process.env, NODESET_LOGLEVEL: 'silent' },
        },
      );
      const lines: string[] = [];
      createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
      return { child, lines };
    };
    /** One run: 2 subscribers (+ a frozen one), 1 publisher; returns the slower subscriber's rate. */
    const run = async (withFrozen: boolean) => {
      const { proc, url } = await spawnDispatcher(['--max-pending', String(maxPending)]);
      const all: ReturnType<typeof worker>[] = [];
      let observer: Node | null = null;
      try {
        const subs = [worker(url, 'sub'), worker(url, 'sub')];
        all.push(...subs);
        let frozen: ReturnType<typeof worker> | null = null;
        if (withFrozen) {
          // A subscriber that reports the dispatcher's slow-consumer words on stdout.
          const child = spawnOwned(
            process.execPath,
            ['--import', 'tsx', 'test/fixtures/counting-subscriber.ts', url, 'chaos.load', String(count), 'cut'],
            { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, NODESET_LOGLEVEL: 'silent' } },
          );
          const lines: string[] = [];
          createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
          frozen = { child, lines };
          all.push(frozen);
        }
        await until(() => all.every((w) => w.lines.includes('ready')), 20_000, 'subscribers ready');
        const watcher = await startNode(url, { statsIntervalMs: 0 });
        observer = watcher;
        const frozenName = `counter-${frozen?.child.pid}`;
        if (frozen !== null) frozen.child.kill('SIGSTOP');
        const rssBefore = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.child.pid}/status`, 'utf8'))![1];
        const pub = worker(url, 'pub');
        all.push(pub);
        await until(() => pub.lines.includes('ready'), 20_000, 'publisher ready');
        pub.child.stdin!.write('go\n');
        let told = false;
        if (frozen !== null) {
          // Cut off: its connection is gone from the dispatcher's list. Run again, it reads the notice
          // that went ahead of its discarded queue (within the dispatcher's 5 s close grace).
          await until(
            async () => !(await watcher.nodes()).some((n) => n.name === frozenName),
            60_000,
            'the frozen subscriber to be cut off',
          );
          frozen.child.kill('SIGCONT');
          const reported = frozen.lines;
          await until(() => reported.some((l) => l.includes('"cut":true')), 15_000, 'the frozen subscriber to be told');
          told = true;
        }
        await until(() => subs.every((w) => w.lines.some((l) => l.startsWith('{'))), 60_000, 'subscribers done');
        const results = subs.map(
          (w) => JSON.parse(w.lines.find((l) => l.startsWith('{'))!) as { received: number; ms: number },
        );
        const peak = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.child.pid}/status`, 'utf8'))![1];
        const slowConsumers = (await watcher.stats()).slowConsumers;
        // Every live subscriber that is short of messages was cut, and counted, as a slow consumer.
        const short = results.filter((r) => r.received !== count).length;
        assert.ok(
          short <= slowConsumers - (withFrozen ? 1 : 0),
          `${short} live subscribers are short of messages, ${slowConsumers} connections were cut`,
        );
        const whole = results.filter((r) => r.received === count);
        return {
          told,
          short,
          rate: whole.length === 0 ? 0 : Math.min(...whole.map((r) => r.received / (r.ms / 1000))),
          growthMb: (Number(peak) - Number(rssBefore)) / 1024,
          slowConsumers,
        };
      } finally {
        await observer?.stop();
        for (const w of all) {
          if (w.child.exitCode === null) {
            w.child.kill('SIGCONT');
            w.child.kill('SIGKILL');
          }
        }
        await proc.kill('SIGTERM');
      }
    };
    /** The slower live subscriber's rate; n/a when every live one was cut. */
    const rate = (r: number) => (r > 0 ? `${Math.round(r)}/s` : 'n/a (all cut)');
    const base = await run(false);
    const frozen = await run(true);
    t.diagnostic(
      `${count} messages: ${rate(base.rate)} per subscriber without a frozen one, ${rate(frozen.rate)} with (ratio ${base.rate > 0 && frozen.rate > 0 ? (frozen.rate / base.rate).toFixed(2) : 'n/a'}); connections cut: ${base.slowConsumers} without, ${frozen.slowConsumers} with (live subscribers cut: ${base.short} and ${frozen.short}); dispatcher RSS growth ${frozen.growthMb.toFixed(0)} MB (limit per connection ${maxPending / 1048576} MiB)`,
    );
    assert.ok(frozen.slowConsumers >= 1, 'the frozen subscriber was cut');
    assert.ok(frozen.told, 'the frozen subscriber was told why');
    assert.ok(frozen.growthMb < 64, `dispatcher memory grew ${frozen.growthMb} MB`);
  });

  test('dispatcher SIGTERM: what it accepted is delivered before it exits, even to a subscriber that reads late', async (t) => {
    const total = FULL ? 20_000 : 2_000;
    const { proc, url, port } = await spawnDispatcher();
    const raw = await RawClient.connect(port, 'late-reader');
    const pub = await startNode(url, { statsIntervalMs: 0 });
    try {
      raw.send(encodeFrame(FrameKind.SUB, { sid: 1, uri: 'sigterm.ev', r: 1 }));
      await raw.next((f) => f.kind === FrameKind.OK);
      raw.socket.pause(); // reads nothing for now: the dispatcher holds what it routed
      const payload = Buffer.alloc(1024, 7);
      let delivered = 0;
      for (let i = 0; i < total; i += 100) {
        const acks = [];
        for (let j = i; j < Math.min(total, i + 100); j++) acks.push(pub.publish('sigterm.ev', payload, { ack: true }));
        for (const n of await Promise.all(acks)) delivered += n;
      }
      assert.equal(delivered, total, 'all accepted and routed to the late reader');
      const exited = once(proc.child, 'exit');
      proc.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 200));
      raw.socket.resume();
      await until(
        () => raw.frames.filter((f) => f.kind === FrameKind.MSG).length === total,
        10_000,
        'everything delivered',
      );
      const [code] = (await exited) as [number | null];
      t.diagnostic(
        `${total} messages of 1 KiB routed before SIGTERM, all ${total} read after it; dispatcher exit code ${code}`,
      );
      assert.equal(code, 0);
      assert.ok(
        raw.frames.some((f) => f.kind === FrameKind.GOODBYE),
        'told it was going away',
      );
    } finally {
      raw.destroy();
      await pub.stop();
      await proc.kill('SIGKILL');
    }
  });

  test('node SIGTERM: what it published before the signal is delivered before it exits', async (t) => {
    const total = FULL ? 100_000 : 10_000;
    const { proc, url } = await spawnDispatcher();
    const sub = await startNode(url, { statsIntervalMs: 0 });
    try {
      let got = 0;
      await sub.subscribe('node.sigterm', () => void got++);
      const child = spawnOwned(
        process.execPath,
        ['--import', 'tsx', 'test/fixtures/publish-then-sigterm.ts', url, String(total)],
        {
          cwd: ROOT,
          stdio: ['ignore', 'inherit', 'inherit'],
          env: { ...process.env, NODESET_LOGLEVEL: 'silent' },
        },
      );
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 0);
      await until(() => got === total, 10_000, 'every message published before SIGTERM');
      t.diagnostic(`${total} messages published, SIGTERM right after: ${got} delivered, exit code ${code}`);
    } finally {
      await sub.stop();
      await proc.kill('SIGTERM');
    }
  });
});
