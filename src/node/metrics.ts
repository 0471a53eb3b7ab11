/**
 * Node metrics (counter, gauge, absolute, derive), published on
 * `$nodeset.stats` and shown by the monitor.
 */
import { Counter, Gauge, Registry } from 'prom-client';

/** The original's metric kinds. */
export type MetricKind = 'counter' | 'gauge' | 'absolute' | 'derive';

export interface CounterMetric {
  inc(by?: number): void;
}
export interface GaugeMetric {
  set(value: number): void;
  inc(by?: number): void;
  dec(by?: number): void;
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * A node's metrics, on prom-client, with the original's kinds:
 * - counter: only goes up;
 * - gauge: any value;
 * - absolute: a count reset to 0 each time it is read (published);
 * - derive: a counter reported as a rate per second between two readings.
 * `snapshot()` reads them all; the node publishes it on `$nodeset.stats`.
 */
export class NodeMetrics {
  readonly registry = new Registry();
  readonly #kinds = new Map<string, MetricKind>();
  #lastRead = Date.now();
  #lastDerive = new Map<string, number>();

  counter(name: string, help = name): CounterMetric {
    return this.#counter(name, help, 'counter');
  }

  gauge(name: string, help = name): GaugeMetric {
    const existing = this.registry.getSingleMetric(name);
    if (existing !== undefined) return existing as Gauge;
    this.#check(name, 'gauge');
    return new Gauge({ name, help, registers: [this.registry] });
  }

  absolute(name: string, help = name): CounterMetric {
    const existing = this.registry.getSingleMetric(name);
    if (existing !== undefined) return existing as Gauge;
    this.#check(name, 'absolute');
    return new Gauge({ name, help, registers: [this.registry] });
  }

  derive(name: string, help = name): CounterMetric {
    return this.#counter(name, help, 'derive');
  }

  kind(name: string): MetricKind | undefined {
    return this.#kinds.get(name);
  }

  /** Reads every metric: values by name (derive as a rate per second); resets the absolute ones. */
  async snapshot(): Promise<Record<string, number>> {
    const now = Date.now();
    const seconds = Math.max(0.001, (now - this.#lastRead) / 1000);
    this.#lastRead = now;
    const out: Record<string, number> = {};
    for (const metric of await this.registry.getMetricsAsJSON()) {
      const value = metric.values.reduce((sum, v) => sum + v.value, 0);
      const kind = this.#kinds.get(metric.name);
      if (kind === 'derive') {
        const before = this.#lastDerive.get(metric.name) ?? 0;
        this.#lastDerive.set(metric.name, value);
        out[metric.name] = (value - before) / seconds;
      } else {
        out[metric.name] = value;
        if (kind === 'absolute') (this.registry.getSingleMetric(metric.name) as Gauge).set(0);
      }
    }
    return out;
  }

  #counter(name: string, help: string, kind: MetricKind): CounterMetric {
    const existing = this.registry.getSingleMetric(name);
    if (existing !== undefined) return existing as Counter;
    this.#check(name, kind);
    return new Counter({ name, help, registers: [this.registry] });
  }

  #check(name: string, kind: MetricKind): void {
    if (!NAME_RE.test(name)) throw new Error(`metric name ${JSON.stringify(name)} must match ${NAME_RE}`);
    this.#kinds.set(name, kind);
  }
}
