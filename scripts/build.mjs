// `npm run build`: everything the package ships, from a clean dist/.
// - dist/: the ES modules and their declarations (tsc, tsconfig.build.json);
// - dist/cjs/: one CommonJS file for require('nodeset'), with the same
//   declarations read as CommonJS (dist/cjs/package.json says so);
// - dist/browser/: the browser client the web bridge serves at /nodeset.js,
//   as a module of its own, with its declarations.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
const CJS = join(DIST, 'cjs');
const BROWSER = join(DIST, 'browser');

// Files of an earlier build (source maps, renamed modules) must not reach the package.
rmSync(DIST, { recursive: true, force: true });

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
if (compiled.status !== 0) process.exit(compiled.status ?? 1);

// One bundle of our code; dependencies stay require() calls (they all ship CommonJS).
// import.meta.url (module-relative files) becomes the bundle's own file URL.
await build({
  entryPoints: [join(ROOT, 'src/index.ts')],
  outfile: join(CJS, 'index.js'),
  bundle: true,
  packages: 'external',
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  define: { 'import.meta.url': '__nodesetModuleUrl' },
  banner: { js: "const __nodesetModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});
writeFileSync(join(CJS, 'package.json'), '{ "type": "commonjs" }\n');
copyDeclarations(DIST, CJS, (dir) => dir !== CJS && dir !== BROWSER && relative(DIST, dir) !== 'cli');

// The client is kept as the text the bridge serves; the package gets that same text.
const { BROWSER_CLIENT_JS } = await import(pathToFileURL(join(DIST, 'web/client-assets.js')).href);
mkdirSync(BROWSER, { recursive: true });
writeFileSync(join(BROWSER, 'nodeset.js'), BROWSER_CLIENT_JS);
copyFileSync(join(ROOT, 'src/browser/nodeset.d.ts'), join(BROWSER, 'nodeset.d.ts'));

for (const file of readdirSync(join(DIST, 'cli'))) {
  if (file.endsWith('.js')) chmodSync(join(DIST, 'cli', file), 0o755);
}

function copyDeclarations(from, to, enter) {
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const path = join(from, entry.name);
    if (entry.isDirectory()) {
      if (enter(path)) copyDeclarations(path, join(to, entry.name), enter);
    } else if (entry.name.endsWith('.d.ts')) {
      mkdirSync(dirname(join(to, entry.name)), { recursive: true });
      copyFileSync(path, join(to, entry.name));
    }
  }
}
