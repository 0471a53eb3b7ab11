import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Node } from '../node/node.js';
import { NodesetError } from '../protocol/errors.js';

/**
 * A route module: a file `NAME.route.mjs` (or `.route.js`) in the --path
 * directory, mounted at `/NAME` (`index.route.mjs` at `/`), like the
 * original's `.rpy` resource scripts. Its default export handles the request:
 *
 *   export default async function (req, res, { bridge, node }) { ... }
 *
 * `node` is the requester's node (their bearer token's identity).
 */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse, ctx: { bridge: unknown; node: Node }) => unknown;
export type RouteModules = Map<string, RouteHandler>;

const ROUTE_RE = /^(.+)\.route\.(mjs|js)$/;

export async function loadRouteModules(dir: string): Promise<RouteModules> {
  const routes: RouteModules = new Map();
  let files: string[];
  try {
    files = await readdir(dir);
  } catch (cause) {
    throw new NodesetError('BAD_OPTION', `--path ${dir}: ${(cause as Error).message}`, { cause });
  }
  for (const file of files.sort()) {
    const m = ROUTE_RE.exec(file);
    if (m === null) continue;
    const mod = (await import(pathToFileURL(join(dir, file)).href)) as { default?: unknown };
    if (typeof mod.default !== 'function') {
      throw new NodesetError('BAD_OPTION', `route module ${file} must export a default function (req, res, ctx)`);
    }
    routes.set(m[1] === 'index' ? '/' : `/${m[1]}`, mod.default as RouteHandler);
  }
  return routes;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
};

/** Serves a file below `dir` (never outside it, never a route module); false when there is none. */
export async function serveStatic(
  dir: string,
  urlPath: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<boolean> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const root = resolve(dir);
  let path = resolve(root, `.${decodeURIComponent(urlPath)}`);
  if (path !== root && !path.startsWith(root + sep)) return false;
  try {
    let s = await stat(path);
    if (s.isDirectory()) {
      path = join(path, 'index.html');
      s = await stat(path);
    }
    if (!s.isFile() || ROUTE_RE.test(path)) return false;
    res.writeHead(200, {
      'content-type': TYPES[extname(path)] ?? 'application/octet-stream',
      'content-length': s.size,
    });
    if (req.method === 'HEAD') res.end();
    else createReadStream(path).pipe(res);
    return true;
  } catch {
    return false;
  }
}
