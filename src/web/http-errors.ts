import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { type ErrorCode, NodesetError } from '../protocol/errors.js';

/** HTTP status for each error code the bridge can answer with. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  BAD_REQUEST: 400,
  BAD_URI: 400,
  BAD_FRAME: 400,
  BAD_OPTION: 400,
  VALIDATION: 400,
  AUTH_FAILED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  NO_RESPONDERS: 404,
  METHOD_NOT_ALLOWED: 405,
  TIMEOUT: 504,
  TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  LIMIT_EXCEEDED: 429,
  NO_ROUTE: 502,
  HANDLER_ERROR: 502,
  CONNECTION_LOST: 503,
  NOT_CONNECTED: 503,
  BUFFER_FULL: 503,
  CLOSED: 503,
};

/** The HTTP status of an error code (500 for one the bridge does not expect). */
export function statusOf(code: ErrorCode): number {
  return STATUS[code] ?? 500;
}

export const ACCEPTED_BODIES =
  'send JSON (Content-Type: application/json) or form fields (Content-Type: application/x-www-form-urlencoded)';

/** Fields a route validates, and the code a bad value of each is reported with. */
const FIELD_CODES: Record<string, { code: ErrorCode; message: string }> = {
  event: { code: 'BAD_URI', message: 'field "event" must be an event URI (a string)' },
  mode: { code: 'BAD_OPTION', message: 'field "mode" must be "all" or "direct"' },
  timeout: { code: 'BAD_OPTION', message: 'field "timeout" must be a positive number of ms' },
  headers: { code: 'BAD_OPTION', message: 'field "headers" must be an object of string names to string values' },
  token: { code: 'BAD_OPTION', message: 'field "token" must be given once' },
};

/** A schema validation failure, in the bridge's codes. */
function validationError(err: FastifyError): NodesetError {
  const issue = err.validation?.[0];
  const field =
    issue?.keyword === 'required'
      ? String((issue.params as { missingProperty?: unknown }).missingProperty)
      : (issue?.instancePath.split('/')[1] ?? '');
  if (issue?.keyword === 'required' && field === 'event') {
    return new NodesetError('BAD_URI', 'field "event" is required');
  }
  const known = FIELD_CODES[field];
  if (known !== undefined) return new NodesetError(known.code, known.message);
  if (field === '' && err.validationContext === 'body') {
    return new NodesetError('BAD_FRAME', `request body must be a JSON object or form fields; ${ACCEPTED_BODIES}`);
  }
  return new NodesetError('BAD_FRAME', `${err.validationContext ?? 'request'}: ${err.message}`);
}

/** Any error met while answering a request, as a NodesetError (INTERNAL for anything unexpected). */
export function toNodesetError(err: unknown, maxBodyBytes: number): NodesetError {
  if (err instanceof NodesetError) return err;
  const e = err as Partial<FastifyError> & Error;
  if (e.validation !== undefined) return validationError(e as FastifyError);
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new NodesetError('TOO_LARGE', `request body is over ${maxBodyBytes} bytes`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new NodesetError('UNSUPPORTED_MEDIA_TYPE', `unsupported Content-Type: ${ACCEPTED_BODIES}`);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new NodesetError(
        'BAD_FRAME',
        'request body is not valid JSON (or holds a __proto__ or constructor.prototype key, which are refused)',
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new NodesetError('BAD_FRAME', 'request body is empty: Content-Type is application/json');
    case 'FST_ERR_BAD_URL':
      return new NodesetError('BAD_REQUEST', 'the request path is not valid percent-encoded UTF-8');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new NodesetError('TOO_LARGE', 'the request path is too long');
  }
  if (e instanceof SyntaxError && e.statusCode === 400) {
    return new NodesetError('BAD_FRAME', 'request body is not valid JSON', { cause: e });
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new NodesetError('BAD_REQUEST', e.message, { cause: e });
  }
  return new NodesetError('INTERNAL', 'internal error', { cause: e });
}

/** Answers `{ code, message }` with the status of the code. */
export function sendError(reply: FastifyReply, err: NodesetError, headers: Record<string, string> = {}): void {
  reply.code(statusOf(err.code)).headers(headers).send({ code: err.code, message: err.message });
}

/**
 * Every answer the bridge gives for an error, whoever found it: a route, a
 * schema, a body parser, the router (a bad URL), or no route at all (404, or
 * 405 with `Allow` for a known path). `allowed` lists the methods of each path.
 */
export function installErrorHandling(
  app: FastifyInstance,
  allowed: ReadonlyMap<string, ReadonlySet<string>>,
  maxBodyBytes: number,
  logger: Logger,
): void {
  app.setErrorHandler((err, request, reply) => {
    const e = toNodesetError(err, maxBodyBytes);
    if (e.code === 'INTERNAL') logger.error({ err, url: request.url }, 'web bridge request failed');
    else logger.debug({ code: e.code, url: request.url }, e.message);
    if (reply.sent || reply.raw.headersSent) {
      reply.raw.destroy();
      return;
    }
    sendError(reply, e);
  });
  app.setNotFoundHandler((request, reply) => answerNotFound(request, reply, allowed));
}

/** 405 with `Allow` when the path exists for other methods, else 404. */
export function answerNotFound(
  request: FastifyRequest,
  reply: FastifyReply,
  allowed: ReadonlyMap<string, ReadonlySet<string>>,
): void {
  const path = pathOf(request.url);
  const methods = allowed.get(path);
  if (methods !== undefined && methods.size > 0) {
    const allow = [...methods].sort().join(', ');
    sendError(reply, new NodesetError('METHOD_NOT_ALLOWED', `${request.method} ${path}: use ${allow}`), { allow });
    return;
  }
  sendError(reply, new NodesetError('NOT_FOUND', `no ${request.method} ${path}`));
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** For errors the router finds before any route runs (a bad percent sequence in the path). */
export function frameworkError(maxBodyBytes: number) {
  return (err: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    refuse(request, reply, toNodesetError(err, maxBodyBytes));
  };
}

/**
 * Answers an error before any route ran. An upgrade request's socket is
 * the bridge's own once Node handed it over (no timeout, no keep-alive
 * applies): it is closed once the answer is written.
 */
export function refuse(request: FastifyRequest, reply: FastifyReply, err: NodesetError): void {
  if (request.raw.headers.upgrade !== undefined) {
    const socket = request.raw.socket;
    reply.raw.once('finish', () => socket.destroy());
    reply.header('connection', 'close');
  }
  sendError(reply, err);
}

/**
 * Requests Node's HTTP parser refuses (malformed, headers too large, too
 * slow): answered with the bridge's JSON error where the socket still
 * takes it, then closed.
 */
export function clientErrorHandler(onTimeout: () => void) {
  return (err: NodeJS.ErrnoException, socket: Duplex): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    let status = 400;
    let body: { code: ErrorCode; message: string } = { code: 'BAD_REQUEST', message: 'malformed HTTP request' };
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      onTimeout();
      status = 408;
      body = { code: 'TIMEOUT', message: 'the request was not received in time' };
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      body = { code: 'TOO_LARGE', message: 'request headers are too large' };
    }
    const text = JSON.stringify(body);
    if (socket.writable) {
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
      );
    }
    socket.destroy();
  };
}
