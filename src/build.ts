// `npm run build`: bundle the CLI into dist/ with esbuild.
//
// Start-up time is most of what a short command costs (see bench/, rows 6-7), so:
//  - the bundles are CommonJS (dist/package.json says so): on Node 20 an ES module entry and
//    its chunks cost ~6-8 ms more to load than the same code as CommonJS (measured: the ESM
//    loader's start, then async linking of each file);
//  - our own code is one bundle, queuectl.js: CommonJS cannot be split into shared chunks, and a
//    module copied into two bundles would exist twice at run time (two QueuectlError classes).
//    Lazily imported modules are wrapped by esbuild and evaluated only when first imported, so
//    a client pays only for parsing the database side, not for running it;
//  - what is big and used by few commands, and keeps no state shared with our code, is a
//    bundle of its own, required when first needed: classic-level (with abstract-level and
//    node-gyp-build; ~110 CommonJS files to resolve one by one if not bundled) by a process
//    that becomes the host, cli-table3 by the commands that print tables, ulid by enqueue;
//  - the job runner (run-job.ts) is a bundle of its own because the worker forks that file.
//  - dist/cli.js (boot.ts) runs those bundles with V8 code caches, made here by running a few
//    commands once the bundles are built.
// Only the native binding of classic-level is loaded from the installed package, found by
// node-gyp-build as classic-level itself finds it.
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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

/** Each separate bundle: its file in dist/, and the import (package or our module) it replaces in queuectl.js. */
const SEPARATE: { out: string; entry: string; imported: RegExp; options?: BuildOptions }[] = [
  { out: 'classic-level', entry: 'classic-level', imported: /^classic-level$/ },
  { out: 'cli-table3', entry: 'cli-table3', imported: /^cli-table3$/ },
  // the PostgreSQL client: loaded only by a command given a database URL
  // (its CommonJS build, which exports the function itself, as the dynamic import expects)
  { out: 'postgres', entry: './node_modules/postgres/cjs/src/index.js', imported: /^postgres$/ },
  // ulid's build for other platforms: the same code without its top-level import of node:crypto
  // (~3 ms to load, a tenth of a short enqueue); enqueue gives it /dev/urandom as its source
  { out: 'ulid', entry: 'ulid', imported: /^ulid$/, options: { platform: 'neutral' } },
  // the worker forks this very file (import.meta.url)
  { out: 'run-job', entry: './src/worker/run-job.ts', imported: /(^|\/)run-job\.ts$/, options: { inject: ['src/import-meta-url.ts'] } },
];

/**
 * In queuectl.js, those imports become require('./<out>.js') of the separate bundle, and a dynamic
 * import of a Node built-in becomes a require too: esbuild would keep `import()` of anything
 * external, and Node 20 then starts its ES module loader (~2.5 ms) and scans a CommonJS file
 * for its exports with cjs-module-lexer (~13 ms for classic-level.js) before running it.
 */
const separate: Plugin = {
  name: 'separate-bundles',
  setup(b) {
    const required = (path: string) => ({ path, namespace: 'required' });
    for (const s of SEPARATE) b.onResolve({ filter: s.imported }, (args) => (args.namespace === 'required' ? undefined : required(`./${s.out}.js`)));
    b.onResolve({ filter: /^node:/ }, (args) => (args.kind === 'dynamic-import' ? required(args.path) : undefined));
    b.onResolve({ filter: /.*/, namespace: 'required' }, (args) => ({ path: args.path, external: true }));
    b.onLoad({ filter: /.*/, namespace: 'required' }, (args) => ({ loader: 'js', contents: `module.exports = require(${JSON.stringify(args.path)});` }));
  },
};

/**
 * In classic-level.js, node:fs/promises (~0.8 ms to load, with the modules it needs) is loaded
 * when first used: classic-level uses it only to create a missing database directory, and
 * connect.ts asks for that only when there is no database yet.
 */
const lazyFsPromises: Plugin = {
  name: 'lazy-fs-promises',
  setup(b) {
    b.onResolve({ filter: /^(node:)?fs\/promises$/ }, (args) => (args.namespace === 'lazy' ? { path: args.path, external: true } : { path: 'fs/promises', namespace: 'lazy' }));
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, () => ({
      loader: 'js',
      contents: `module.exports = new Proxy({}, { get: (_, key) => require('node:fs/promises')[key] });`,
    }));
  },
};

/**
 * postgres 3.4.9 (the latest) crashes the process when the server goes away during a
 * transaction: a query sent on the transaction's connection after it closed schedules a write
 * that runs with no socket and throws from setImmediate, an uncaught TypeError ("Cannot read
 * properties of null (reading 'write')"; porsager/postgres#1154, #1208, unmerged fix #1209).
 * Such a write rejects its queries as CONNECTION_CLOSED instead, as #1209 does, so the caller
 * sees the database as unavailable and tries again. The build fails if the code changed.
 */
const postgresClosedWrite: Plugin = {
  name: 'postgres-closed-write',
  setup(b) {
    b.onLoad({ filter: /[\\/]postgres[\\/]cjs[\\/]src[\\/]connection\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const unguarded = 'function nextWrite(fn) {\n    const x = socket.write(chunk, fn)';
      if (!source.includes(unguarded)) throw new Error(`${args.path}: nextWrite changed; check whether porsager/postgres#1208 is fixed and drop this patch`);
      const guarded = `function nextWrite(fn) {
    if (!socket) {
      nextWriteTimer !== null && clearImmediate(nextWriteTimer)
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options))
      return false
    }
    const x = socket.write(chunk, fn)`;
      return { loader: 'js', contents: source.replace(unguarded, guarded) };
    });
  },
};

const common: BuildOptions = {
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // the sources are ES modules; as CommonJS, import.meta.url is this file's URL (the bundles
  // that use it inject its definition: see SEPARATE)
  define: { 'import.meta.url': '__importMetaUrl' },
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
};

rmSync('dist', { recursive: true, force: true });
mkdirSync('dist');
// package.json at the top level says "type": "module" (the sources); the bundles are CommonJS
writeFileSync('dist/package.json', `${JSON.stringify({ type: 'commonjs' })}\n`);
await Promise.all([
  build({ ...common, entryPoints: { cli: 'src/boot.ts' }, outdir: 'dist' }),
  build({ ...common, entryPoints: { queuectl: 'src/cli.ts' }, outdir: 'dist', plugins: [separate] }),
  // the binding plugin's require.resolve must find the installed classic-level at run time
  ...SEPARATE.map((s) => build({ ...common, entryPoints: { [s.out]: s.entry }, outdir: 'dist', plugins: [levelBinding, lazyFsPromises, postgresClosedWrite], external: ['classic-level/package.json'], ...s.options })),
]);

// The code caches (see boot.ts): the commands whose start-up matters run one after another,
// with no host (the database side compiled too), in a new data directory; each run reads the
// caches the previous one wrote and adds what it compiled.
const home = mkdtempSync(join(tmpdir(), 'queuectl-build-'));
try {
  const run = (args: string[], stderr: 'inherit' | 'ignore' = 'inherit') =>
    execFileSync(process.execPath, ['dist/cli.js', '--home', join(home, 'q'), ...args], { env: { ...process.env, QUEUECTL_WRITE_CODE_CACHE: '1' }, stdio: ['ignore', 'ignore', stderr] });
  run(['enqueue', 'true', '--id', 'build']);
  for (const args of [['status'], ['show', 'build'], ['history', 'build'], ['list']]) run(args);
  // the PostgreSQL side as far as it gets without a server (the client loaded, the URL read, a
  // connection tried to a socket that is not there, the error made): a short command over
  // PostgreSQL then compiles only what runs once connected
  try {
    run(['status', '--database-url', `postgres://queuectl@localhost/queuectl?host=${encodeURIComponent(join(home, 'no-server'))}`], 'ignore');
  } catch {
    // it fails, as it must: its caches are written at exit all the same
  }
} finally {
  rmSync(home, { recursive: true, force: true });
}
