#!/usr/bin/env node
// dist/cli.js: runs the CLI bundle (dist/queuectl.js) and the bundles it requires with the V8
// code caches that `npm run build` made for them (<bundle>.cache beside each bundle).
//
// Why: on Node 20 a short command spends ~6-7 ms compiling the functions it runs (parsing is
// lazy: each function is compiled when first called). A code cache holds them compiled; Node 20
// has no compile cache of its own (module.enableCompileCache is Node 22). The caches are made
// at build time, by running a few commands (see build.ts), so nothing is written at run time.
// A cache that V8 rejects (another Node version, other V8 flags, a bundle of another length)
// costs nothing but its read: the code is then compiled as usual. V8 checks a cache against the
// source's length only, not its content (hashing ~180 KB would cost ~2 ms of the ~7 saved), so
// `npm run build` always makes the caches anew, and a bundle edited by hand needs its
// dist/<bundle>.cache deleted (README, "Architecture").
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Script } from 'node:vm';

type Loader = (exports: unknown, require: NodeJS.Require, module: { exports: unknown }, filename: string, dirname: string) => void;

/** Set by build.ts only: write each bundle's cache (with what this run compiled) at exit. */
const writing = process.env.QUEUECTL_WRITE_CODE_CACHE === '1';
const scripts: { script: Script; cache: string }[] = [];
const loaded = new Map<string, { exports: unknown }>();

/**
 * Node's CommonJS wrapper (Module.wrap), written out: loading node:module for it would cost
 * ~0.3 ms. V8 rejects a cache made for a source of another length (test/build.test.ts).
 */
const wrap = (source: string): string => `(function (exports, require, module, __filename, __dirname) { ${source}\n});`;

/**
 * Our bundles require each other as './<name>.js' (see build.ts); everything else is this
 * file's require, which resolves as theirs would: they all sit in this directory.
 */
const requireBundle = Object.assign((id: string): unknown => (/^\.\/[\w-]+\.js$/.test(id) ? load(id.slice(2)) : require(id)), require);

const load = (name: string): unknown => {
  const done = loaded.get(name);
  if (done) return done.exports;
  const filename = join(__dirname, name);
  const cache = `${filename}.cache`;
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(cache);
  } catch {
    // no cache (a build without one): compile as usual
  }
  const script = new Script(wrap(readFileSync(filename, 'utf8')), { filename, cachedData });
  if (writing) scripts.push({ script, cache });
  const module = { exports: {} };
  loaded.set(name, module);
  (script.runInThisContext() as Loader).call(module.exports, module.exports, requireBundle as NodeJS.Require, module, filename, __dirname);
  return module.exports;
};

if (writing) process.on('exit', () => scripts.forEach(({ script, cache }) => writeFileSync(cache, script.createCachedData())));

load('queuectl.js');
