import type { FastifyInstance, FastifyRequest } from 'fastify';
import { parseEventUri } from '../protocol/event-uri.js';
import { type BridgeContext, bearerToken } from './bridge-context.js';

/** The fields of a publish or request: a JSON body, form fields, or (`GET /publish`) the query string. */
interface PublishFields {
  event: string;
  message?: unknown;
  mode?: 'all' | 'direct';
  timeout?: number;
  /** Message headers (a JSON body only): string names to string values. */
  headers?: Record<string, string>;
}

const publishSchema = {
  type: 'object',
  required: ['event'],
  properties: {
    event: { type: 'string' },
    message: {},
    mode: { type: 'string', enum: ['all', 'direct'] },
    timeout: { type: 'number', exclusiveMinimum: 0 },
    // Names, values and bounds are checked by publish itself (BAD_OPTION, TOO_LARGE).
    headers: { type: 'object' },
  },
} as const;

/** Default reply timeout of `POST /request`, in ms. */
const DEFAULT_REQUEST_TIMEOUT_MS = 5000;

/**
 * `POST /publish` (JSON or form), `GET /publish?event=…&message=…` (the
 * original's form), `POST /request`. Signed requests are checked before
 * their fields are looked at.
 */
export function publishRoutes(app: FastifyInstance, bridge: BridgeContext): void {
  const preValidation = async (request: FastifyRequest) => bridge.verify(request);
  app.post<{ Body: PublishFields }>('/publish', { schema: { body: publishSchema }, preValidation }, (request) =>
    publish(bridge, request, request.body),
  );
  app.get<{ Querystring: PublishFields }>(
    '/publish',
    { schema: { querystring: publishSchema }, preValidation, exposeHeadRoute: false },
    (request) => publish(bridge, request, request.query),
  );
  app.post<{ Body: PublishFields }>('/request', { schema: { body: publishSchema }, preValidation }, async (request) => {
    const { event, message, timeout, headers } = request.body;
    parseEventUri(event, false);
    const node = await bridge.nodeFor(bearerToken(request));
    const reply = await node.request(event, message, { timeoutMs: timeout ?? DEFAULT_REQUEST_TIMEOUT_MS, headers });
    return { event, reply: reply ?? null };
  });
}

async function publish(
  bridge: BridgeContext,
  request: FastifyRequest,
  fields: PublishFields,
): Promise<{ event: string; delivered: number }> {
  parseEventUri(fields.event, false);
  const node = await bridge.nodeFor(bearerToken(request));
  const delivered = await node.publish(fields.event, fields.message, {
    ack: true,
    mode: fields.mode,
    timeoutMs: fields.timeout,
    headers: fields.headers,
  });
  return { event: fields.event, delivered };
}
