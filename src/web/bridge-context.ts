import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Node } from '../node/node.js';
import type { NodePool } from './node-pool.js';

/** What the bridge's routes use of it. */
export interface BridgeContext {
  readonly logger: Logger;
  readonly pool: NodePool;
  /** Counters the routes keep. */
  readonly stats: { wsDropped: number };
  /** The node of a request's identity (its bearer token, else the bridge's own token). */
  nodeFor(token: string | null): Promise<Node>;
  /** Throws PERMISSION_DENIED (or LIMIT_EXCEEDED) unless the request is signed, when keys are configured. */
  verify(request: FastifyRequest): void;
}

/** The bearer token of a request (`Authorization: Bearer …`, else `?token=`), if any. */
export function bearerToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (typeof header === 'string' && header.startsWith('Bearer ')) return header.slice(7).trim() || null;
  const token = (request.query as Record<string, unknown> | undefined)?.token;
  return typeof token === 'string' && token !== '' ? token : null;
}
