import type { FastifyInstance } from 'fastify';
import { NodesetError } from '../protocol/errors.js';
import { ACCEPTED_BODIES } from './http-errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The request body's bytes as received (signatures cover them); null when there was none. */
    rawBody: Buffer | null;
  }
}

/**
 * Form fields and query strings, read alike (as the original's `request.args`):
 * a field given once is a string, given more than once a list; `message` is
 * decoded when it is JSON and kept as a string otherwise; `timeout` is a
 * number when it reads as one. No prototype: field names are data.
 */
export function formFields(text: string): Record<string, unknown> {
  const params = new URLSearchParams(text);
  const fields: Record<string, unknown> = Object.create(null);
  for (const key of new Set(params.keys())) {
    const all = params.getAll(key);
    fields[key] = all.length === 1 ? all[0] : all;
  }
  if (typeof fields.message === 'string') fields.message = jsonOrString(fields.message);
  if (typeof fields.timeout === 'string' && /^\s*[0-9.eE+-]+\s*$/.test(fields.timeout)) {
    const n = Number(fields.timeout);
    if (Number.isFinite(n)) fields.timeout = n;
  }
  return fields;
}

function jsonOrString(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * The bodies the bridge reads, strictly by Content-Type: JSON
 * (`application/json`) and form fields (`application/x-www-form-urlencoded`);
 * anything else is refused with 415 UNSUPPORTED_MEDIA_TYPE. A form-typed
 * body that is plainly JSON (what `curl -d '{…}'` sends) is refused with a
 * message that says so, rather than read as a form with no fields.
 */
export function installBodyParsers(app: FastifyInstance, maxBodyBytes: number): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.decorateRequest('rawBody', null);
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'buffer', bodyLimit: maxBodyBytes },
    (request, body: Buffer, done) => {
      request.rawBody = body;
      parseJson(request, body.toString('utf8'), done);
    },
  );
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'buffer', bodyLimit: maxBodyBytes },
    (request, body: Buffer, done) => {
      request.rawBody = body;
      const text = body.toString('utf8');
      if (/^\s*[{[]/.test(text)) {
        done(
          new NodesetError(
            'UNSUPPORTED_MEDIA_TYPE',
            `the body is JSON but Content-Type is application/x-www-form-urlencoded; ${ACCEPTED_BODIES}`,
          ),
          undefined,
        );
        return;
      }
      done(null, formFields(text));
    },
  );
}
