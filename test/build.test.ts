// The built CLI's start-up rules (see src/build.ts and src/boot.ts): CommonJS bundles that
// require each other (an import() would start Node's ES module loader), run with V8 code caches
// that V8 accepts, made at build time and never written by a run.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import Module from 'node:module';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';
import { CLI, cli, newHome, ok } from './helpers/cli.ts';

const DIST = dirname(CLI);
const bundles = readdirSync(DIST).filter((f) => f.endsWith('.js'));
const caches = readdirSync(DIST).filter((f) => f.endsWith('.js.cache'));

test('the bundles are CommonJS and load each other with require, never import()', () => {
  assert.equal(JSON.parse(readFileSync(join(DIST, 'package.json'), 'utf8')), { type: 'commonjs' });
  for (const f of bundles) assert.not.match(readFileSync(join(DIST, f), 'utf8'), /\bimport\(/, `${f} has an import()`);
});

test('our bundles and classic-level run as strict code, as their ES module sources did', () => {
  for (const name of ['cli.js', 'queuectl.js', 'classic-level.js', 'run-job.js']) {
    const code = readFileSync(join(DIST, name), 'utf8').replace(/^#!.*\n/, '');
    // a directive counts only as the very first statement: anything before it makes the file sloppy
    assert.ok(code.startsWith('"use strict";'), `${name} does not start with "use strict"`);
  }
});

test('the bundles of the short commands have code caches that V8 accepts', () => {
  for (const name of ['queuectl.js', 'classic-level.js', 'cli-table3.js', 'ulid.js', 'postgres.js']) assert.ok(caches.includes(`${name}.cache`), `no cache for ${name}`);
  for (const c of caches) {
    const filename = join(DIST, c.slice(0, -'.cache'.length));
    // compiled as boot.ts compiles it: same wrapper, same file name
    const script = new Script(Module.wrap(readFileSync(filename, 'utf8')), { filename, cachedData: readFileSync(join(DIST, c)) });
    assert.is(script.cachedDataRejected, false, `V8 rejects ${c}`);
  }
});

test('a run writes no code cache', async () => {
  const before = caches.map((c) => readFileSync(join(DIST, c)));
  const q = cli(newHome('build'));
  ok(await q('enqueue', 'true', '--id', 'a'));
  ok(await q('history', 'a'));
  caches.forEach((c, i) => assert.ok(readFileSync(join(DIST, c)).equals(before[i]!), `${c} changed`));
});

test.run();
