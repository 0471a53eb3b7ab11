/**
 * Import rules for src/, checked by `npm run lint`: no circles (type-only
 * imports included), and the layers point one way: protocol ← transport ←
 * dispatcher and node ← bridges (web, monitor, federation) ← cli.
 */
const layer = (name, mayNotImport) => ({
  name: `${name}-layer`,
  severity: 'error',
  comment: `src/${name} does not import from ${mayNotImport.join(', ')}`,
  from: { path: `^src/${name}/` },
  to: { path: `^src/(${mayNotImport.join('|')})/` },
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Modules import each other, directly or through others',
      from: {},
      to: { circular: true },
    },
    layer('protocol', ['transport', 'security', 'dispatcher', 'node', 'web', 'monitor', 'federation', 'cli']),
    layer('transport', ['security', 'dispatcher', 'node', 'web', 'monitor', 'federation', 'cli']),
    layer('security', ['transport', 'dispatcher', 'node', 'web', 'monitor', 'federation', 'cli']),
    layer('dispatcher', ['node', 'web', 'monitor', 'federation', 'cli']),
    layer('node', ['dispatcher', 'web', 'monitor', 'federation', 'cli']),
    layer('web', ['dispatcher', 'monitor', 'federation', 'cli']),
    layer('monitor', ['web', 'federation', 'cli']),
    layer('federation', ['node', 'web', 'monitor', 'cli']),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
