import { readdir, realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basename, join, relative, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import type { Node } from '../node/node.js';
import { NodesetError } from '../protocol/errors.js';
import { type BridgeContext, bearerToken } from './bridge-context.js';
import { statusOf, toNodesetError } from './http-errors.js';

/**
 * A route module: a file `NAME.route.mjs` (or `.route.js`) in the --path
 * directory, mounted at `/NAME` (`index.route.mjs` at `/`), like the
 * original's `.rpy` resource scripts. Its default export handles the request
 * with Node's own request and response (the body is left unread for it):
 *
 *   export default async function (req, res, { bridge, node }) { ... }
 *
 * `node` is the requester's node (their bearer token's identity).
 */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse, ctx: { bridge: unknown; node: Node }) => unknown;
export type RouteModules = Map<string, RouteHandler>;

const ROUTE_RE = /^(.+)\.route\.(mjs|js)$/;
/** Methods a route module answers (OPTIONS stays the bridge's CORS preflight). */
const ROUTE_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

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
    if (m === null || file.startsWith('.')) continue;
    const mod = (await import(pathToFileURL(join(dir, file)).href)) as { default?: unknown };
    if (typeof mod.default !== 'function') {
      throw new NodesetError('BAD_OPTION', `route module ${file} must export a default function (req, res, ctx)`);
    }
    routes.set(m[1] === 'index' ? '/' : `/${m[1]}`, mod.default as RouteHandler);
  }
  return routes;
}

/**
 * Mounts route modules, each on its path for every method but OPTIONS, in a
 * context of their own where fastify reads no body. A path the bridge
 * already answers cannot be taken by a module.
 */
export async function mountRouteModules(
  app: FastifyInstance,
  routes: RouteModules,
  bridge: BridgeContext,
  taken: (path: string) => boolean,
): Promise<void> {
  for (const path of routes.keys()) {
    if (taken(path))
      throw new NodesetError('BAD_OPTION', `route module for ${path} would hide the bridge's own ${path}`);
  }
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
    for (const [path, handler] of routes) {
      scope.route({
        method: ROUTE_METHODS,
        url: path,
        exposeHeadRoute: false,
        handler: async (request, reply) => {
          const node = await bridge.nodeFor(bearerToken(request));
          reply.hijack();
          try {
            await handler(request.raw, reply.raw, { bridge, node });
          } catch (err) {
            const e = toNodesetError(err, 0);
            bridge.logger.warn({ err, path }, 'route module failed');
            const res = reply.raw;
            if (res.headersSent) res.destroy();
            else {
              res.writeHead(statusOf(e.code), { 'content-type': 'application/json; charset=utf-8' });
              res.end(JSON.stringify({ code: e.code, message: e.message }));
            }
          }
        },
      });
    }
  });
}

/**
 * The files below a directory that may be served: never a dotfile or
 * anything in a dot-directory, never a route module's source, never a file
 * reached through a symbolic link that leads out of the directory.
 */
export class StaticFiles {
  #root = '';

  constructor(readonly dir: string) {}

  /** The directory, with every symbolic link in its own path resolved. */
  get root(): string {
    return this.#root;
  }

  async open(): Promise<this> {
    try {
      this.#root = await realpath(this.dir);
    } catch (cause) {
      throw new NodesetError('BAD_OPTION', `--path ${this.dir}: ${(cause as Error).message}`, { cause });
    }
    return this;
  }

  /**
   * The file a decoded URL path names, relative to the root with links
   * resolved; null when there is none that may be served. A directory
   * stands for its `index.html`.
   */
  async resolve(urlPath: string): Promise<string | null> {
    if (urlPath.includes('\0')) throw new NodesetError('BAD_REQUEST', 'the request path holds a NUL character');
    const segments = urlPath.split('/').filter((s) => s !== '');
    if (segments.some(hidden)) return null;
    let real = await this.#real(join(this.#root, ...segments));
    if (real === null) return null;
    if ((await kind(real)) === 'directory') {
      real = await this.#real(join(real, 'index.html'));
      if (real === null) return null;
    }
    if ((await kind(real)) !== 'file') return null;
    const inside = relative(this.#root, real);
    // A link inside the directory may still lead to a dotfile or a route module.
    if (inside.split(sep).some(hidden) || ROUTE_RE.test(basename(real))) return null;
    return inside;
  }

  /** The real path of `path` when it exists inside the root, else null. */
  async #real(path: string): Promise<string | null> {
    let real: string;
    try {
      real = await realpath(path);
    } catch {
      return null;
    }
    return real === this.#root || real.startsWith(this.#root + sep) ? real : null;
  }
}

async function kind(path: string): Promise<'file' | 'directory' | 'other'> {
  try {
    const s = await stat(path);
    return s.isFile() ? 'file' : s.isDirectory() ? 'directory' : 'other';
  } catch {
    return 'other';
  }
}

const hidden = (segment: string) => segment.startsWith('.') || ROUTE_RE.test(segment);

/** `@fastify/static` for sending (ranges, ETags, types); which file is decided by `StaticFiles`. */
export async function registerStaticSender(app: FastifyInstance, files: StaticFiles): Promise<void> {
  await app.register(fastifyStatic, { root: files.root, serve: false, dotfiles: 'deny', index: false });
}
