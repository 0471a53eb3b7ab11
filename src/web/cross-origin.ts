import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { NodesetError } from '../protocol/errors.js';
import { refuse } from './http-errors.js';

/** Paths that act for the requester's identity: a page of another site may not drive them. */
const GUARDED = new Set(['/publish', '/request', '/subscribe', '/ws']);

/**
 * CORS for the origins in `allowed` (`*` for any), and a guard against
 * cross-site requests a browser makes on a visitor's behalf: a page of
 * another origin may not publish, request, subscribe or open `/ws` unless
 * its origin is allowed. Browsers name the origin (`Origin`, and
 * `Sec-Fetch-Site` even for an image or a link); clients that are not
 * browsers send neither and are not concerned.
 */
export function installCrossOrigin(app: FastifyInstance, allowed: readonly string[]): void {
  const any = allowed.includes('*');
  const isAllowed = (origin: string) => any || allowed.includes(origin);
  app.addHook('onRequest', (request, reply, done) => {
    const origin = request.headers.origin;
    if (typeof origin === 'string' && isAllowed(origin)) setCorsHeaders(reply, any ? '*' : origin);
    const refusal = GUARDED.has(pathOf(request.url)) ? crossSite(request, isAllowed) : null;
    if (refusal === null) {
      done();
      return;
    }
    refuse(request, reply, new NodesetError('PERMISSION_DENIED', refusal));
  });
}

/** Why a request is a cross-site one that is not allowed, or null. */
function crossSite(request: FastifyRequest, isAllowed: (origin: string) => boolean): string | null {
  const origin = request.headers.origin;
  if (typeof origin === 'string') {
    if (isAllowed(origin) || sameOrigin(origin, request.headers.host)) return null;
    return `requests from ${origin} are refused: the bridge allows its own origin and those given to --cors`;
  }
  const site = request.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') {
    return 'a request another site made the browser send is refused (Sec-Fetch-Site): use --cors for the origins to allow';
  }
  return null;
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}

function setCorsHeaders(reply: FastifyReply, origin: string): void {
  // On the raw response, so that streams written past fastify carry them too.
  const res = reply.raw;
  res.setHeader('access-control-allow-origin', origin);
  if (origin !== '*') res.setHeader('vary', 'origin');
  res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
  res.setHeader(
    'access-control-allow-headers',
    'content-type, authorization, x-nodeset-key, x-nodeset-timestamp, x-nodeset-signature',
  );
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
