/**
 * OpenTelemetry tracing of publishes, requests and deliveries, when
 * `@opentelemetry/api` is installed (an optional peer dependency) and a
 * tracer provider is registered. Both are looked at once, when a node
 * starts: without them the node holds null and its hot path pays one
 * null check. The trace context travels in the message headers as W3C
 * `traceparent` and `tracestate`.
 */
import type { Context, Span, Tracer } from '@opentelemetry/api';
import type { MessageHeaders } from '../protocol/headers.js';

type Api = typeof import('@opentelemetry/api');

const TRACER_NAME = 'nodeset';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
/** Span kinds of @opentelemetry/api (a const enum there). */
const SpanKind = { SERVER: 1, CLIENT: 2, PRODUCER: 3, CONSUMER: 4 } as const;
const STATUS_ERROR = 2;

let loading: Promise<Api | null> | null = null;

/** The OpenTelemetry API module, or null when it is not installed (imported once per process). */
function loadApi(): Promise<Api | null> {
  loading ??= import('@opentelemetry/api').then(
    (m) => ((m as { trace?: unknown }).trace === undefined ? (m as unknown as { default: Api }).default : m),
    () => null,
  );
  return loading;
}

/**
 * The tracing of one node, or null when there is nothing to trace into:
 * the API is not installed, or no tracer provider is registered (register
 * it before starting the node).
 */
export async function startTracing(nodeName: string): Promise<MessageTracing | null> {
  const api = await loadApi();
  if (api === null) return null;
  const provider = api.trace.getTracerProvider();
  const delegate = provider instanceof api.ProxyTracerProvider ? provider.getDelegate() : provider;
  // A proxy without a delegate answers with the API's no-op provider.
  if (delegate === new api.ProxyTracerProvider().getDelegate()) return null;
  return new MessageTracing(api, nodeName);
}

/**
 * A span or context of the OpenTelemetry API, opaque outside this module: the
 * API is optional, so no declaration a user compiles against names its types.
 */
export type TraceSpan = object;
export type TraceContext = object;

/** A span and the headers that carry its context to the receivers. */
export interface SentSpan {
  span: TraceSpan;
  headers: MessageHeaders;
}

export class MessageTracing {
  readonly #api: Api;
  readonly #tracer: Tracer;
  readonly #node: string;

  constructor(api: unknown, nodeName: string) {
    this.#api = api as Api;
    this.#tracer = this.#api.trace.getTracer(TRACER_NAME);
    this.#node = nodeName;
  }

  /** A span for a publish (PRODUCER) or request (CLIENT), child of the active one; its context goes in the headers. */
  startSend(uri: string, headers: MessageHeaders | null, request: boolean): SentSpan {
    const api = this.#api;
    const span = this.#tracer.startSpan(
      `${request ? 'request' : 'publish'} ${uri}`,
      {
        kind: request ? SpanKind.CLIENT : SpanKind.PRODUCER,
        attributes: {
          'messaging.system': 'nodeset',
          'messaging.destination.name': uri,
          'messaging.operation.type': request ? 'send' : 'publish',
          'messaging.client.id': this.#node,
        },
      },
      api.context.active(),
    );
    const out: MessageHeaders = headers === null ? {} : { ...headers };
    const sc = span.spanContext();
    out.traceparent = `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
    const state = sc.traceState?.serialize();
    if (state !== undefined && state !== '') out.tracestate = state;
    else delete out.tracestate;
    return { span, headers: out };
  }

  /**
   * A span for a delivered message (CONSUMER) or an answered request
   * (SERVER), child of the sender's span when its headers carry one.
   */
  startReceive(
    uri: string,
    from: string,
    headers: MessageHeaders | null,
    request: boolean,
  ): { span: TraceSpan; context: TraceContext } {
    const api = this.#api;
    let parent = api.ROOT_CONTEXT;
    const tp = headers?.traceparent;
    const m = tp === undefined ? null : TRACEPARENT.exec(tp);
    if (m !== null) {
      const ts = headers?.tracestate;
      const sc = {
        traceId: m[1] as string,
        spanId: m[2] as string,
        traceFlags: Number.parseInt(m[3] as string, 16),
        isRemote: true,
        ...(ts === undefined ? {} : { traceState: api.createTraceState(ts) }),
      };
      if (api.isSpanContextValid(sc)) parent = api.trace.setSpanContext(parent, sc);
    }
    const span = this.#tracer.startSpan(
      `${request ? 'respond' : 'process'} ${uri}`,
      {
        kind: request ? SpanKind.SERVER : SpanKind.CONSUMER,
        attributes: {
          'messaging.system': 'nodeset',
          'messaging.destination.name': uri,
          'messaging.operation.type': 'process',
          'messaging.client.id': this.#node,
          'nodeset.from': from,
        },
      },
      parent,
    );
    return { span, context: api.trace.setSpan(parent, span) };
  }

  /** Runs `fn` with `context` active (the handler's own publishes join the trace). */
  within<T>(context: TraceContext, fn: () => T): T {
    return this.#api.context.with(context as Context, fn);
  }

  /** Ends a span, marked failed when `err` is given. */
  end(traceSpan: TraceSpan, err?: unknown): void {
    const span = traceSpan as Span;
    if (err !== undefined) {
      span.recordException(err instanceof Error ? err : String(err));
      span.setStatus({ code: STATUS_ERROR, message: err instanceof Error ? err.message : String(err) });
    }
    span.end();
  }
}
