import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ErrorCode, NodesetError } from '../protocol/errors.js';

/** HTTP status for each error code the bridge can answer with. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  BAD_URI: 400,
  BAD_FRAME: 400,
  BAD_OPTION: 400,
  VALIDATION: 400,
  AUTH_FAILED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  NO_RESPONDERS: 404,
  TOO_LARGE: 413,
  LIMIT_EXCEEDED: 429,
  NO_ROUTE: 502,
  CONNECTION_LOST: 503,
  NOT_CONNECTED: 503,
  BUFFER_FULL: 503,
  TIMEOUT: 504,
  HANDLER_ERROR: 502,
};

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Answers with `{ code, message }` and the status of the code (500 for anything unexpected). */
export function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err instanceof NodesetError) {
    sendJson(res, STATUS[err.code] ?? 500, { code: err.code, message: err.message });
  } else {
    sendJson(res, 500, { code: 'INTERNAL', message: 'internal error' });
  }
}

/** Reads a request body up to `limit` bytes; TOO_LARGE past it (without buffering the rest). */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      reject(new NodesetError('TOO_LARGE', `request body of ${declared} bytes is over ${limit}`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new NodesetError('TOO_LARGE', `request body is over ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks, size)));
    req.on('error', reject);
  });
}

export interface PublishBody {
  event: string;
  message: unknown;
  /** The message as it was sent (signed text). */
  raw: string;
  mode?: string;
  timeout?: number;
}

/**
 * Parses `{ event, message, mode?, timeout? }` from JSON, or form fields
 * `event` and `message` (a message that is valid JSON is decoded, else kept
 * as a string, as the original's form posts were).
 */
export function parsePublishBody(req: IncomingMessage, body: Buffer): PublishBody {
  const type = String(req.headers['content-type'] ?? '')
    .split(';')[0]
    ?.trim();
  let fields: Record<string, unknown>;
  let raw: string;
  if (type === 'application/x-www-form-urlencoded') {
    const form = new URLSearchParams(body.toString('utf8'));
    raw = form.get('message') ?? '';
    let message: unknown = raw;
    try {
      message = JSON.parse(raw);
    } catch {
      // a plain string
    }
    fields = {
      event: form.get('event'),
      message,
      mode: form.get('mode') ?? undefined,
      timeout: form.get('timeout') ?? undefined,
    };
  } else {
    try {
      fields = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    } catch (cause) {
      throw new NodesetError('BAD_FRAME', 'request body is not valid JSON', { cause });
    }
    if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
      throw new NodesetError('BAD_FRAME', 'request body must be a JSON object');
    }
    raw = JSON.stringify(fields.message ?? null);
  }
  if (typeof fields.event !== 'string') throw new NodesetError('BAD_URI', 'field "event" is required');
  const timeout = fields.timeout === undefined ? undefined : Number(fields.timeout);
  if (timeout !== undefined && (!Number.isFinite(timeout) || timeout <= 0)) {
    throw new NodesetError('BAD_OPTION', 'field "timeout" must be a positive number of ms');
  }
  const mode = fields.mode === undefined ? undefined : String(fields.mode);
  return { event: fields.event, message: fields.message, raw, mode, timeout };
}

/** The bearer token of a request, if any. */
export function bearerToken(req: IncomingMessage, url?: URL): string | null {
  const header = req.headers.authorization;
  if (typeof header === 'string' && header.startsWith('Bearer ')) return header.slice(7).trim() || null;
  return url?.searchParams.get('token') || null;
}
