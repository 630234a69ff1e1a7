// `npm run build`: bundle the CLI into dist/ with esbuild.
//
// Start-up time is most of what a short command costs (see bench/, rows 6-7), and on Node 20
// every ES module file costs ~1 ms to load and every 100 KB ~3 ms to compile, so:
//  - code is split so that each command loads what it runs and little else: the client code
//    of the everyday commands is in cli.js; the database side (engine, projections, host and
//    LevelDB) in one chunk loaded only by a process that becomes the host;
//  - classic-level, abstract-level and node-gyp-build are bundled too (~110 CommonJS files,
//    ~10 ms to resolve and load one by one); only the native binding is loaded from the
//    installed package, found by node-gyp-build as classic-level itself finds it.
import { build, type Plugin } from 'esbuild';
import { rmSync } from 'node:fs';

const levelBinding: Plugin = {
  name: 'classic-level-binding',
  setup(b) {
    b.onResolve({ filter: /^\.\/binding(\.js)?$/ }, (args) =>
      /[\\/]classic-level[\\/]/.test(args.importer) ? { path: 'classic-level-binding', namespace: 'queuectl', pluginData: args.resolveDir } : undefined,
    );
    b.onLoad({ filter: /^classic-level-binding$/, namespace: 'queuectl' }, (args) => ({
      loader: 'js',
      resolveDir: args.pluginData as string,
      contents: `const { dirname } = require('node:path');
module.exports = require('node-gyp-build')(dirname(require.resolve('classic-level/package.json')));`,
    }));
  },
};

rmSync('dist', { recursive: true, force: true });
await build({
  entryPoints: ['src/cli.ts'],
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  plugins: [levelBinding],
  banner: { js: "import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);" },
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
});
