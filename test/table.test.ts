// The CLI's tables: cells of printable ASCII are aligned by queuectl itself, everything else by
// cli-table3; both must draw the same text.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { tableText } from '../src/cli/context.ts';

const paint = fc.constantFrom(['', ''], ['\u001b[1m', '\u001b[22m'], ['\u001b[32m', '\u001b[39m'], ['\u001b[2m', '\u001b[22m']);
const ascii = fc.string({ unit: fc.constantFrom(...' abcXYZ019-:.,()"/\'\\{}_~'.split('')), maxLength: 30 });
const cell = fc.tuple(ascii, paint).map(([text, [open, close]]) => `${open}${text}${close}`);
const anyCell = fc.oneof(cell, fc.string({ maxLength: 12 }), fc.constantFrom('日本語', 'é', 'e\u0301', '😀 x', 'a\nb', '\u001b[2J'));

test('printable ASCII cells (with colours) are aligned as cli-table3 aligns them', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 5 }).chain((n) => fc.array(fc.array(cell, { minLength: n, maxLength: n }), { minLength: 1, maxLength: 6 })), async (cells) => {
      assert.is(await tableText(cells), await tableText(cells, 'cli-table3'));
    }),
    { numRuns: 300 },
  );
});

test('any other cells give the same text too (they go to cli-table3)', async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 4 }).chain((n) => fc.array(fc.array(anyCell, { minLength: n, maxLength: n }), { minLength: 1, maxLength: 4 })), async (cells) => {
      assert.is(await tableText(cells), await tableText(cells, 'cli-table3'));
    }),
    { numRuns: 100 },
  );
});

test('a history table', async () => {
  const text = await tableText([
    ['POS', 'TIME', 'EVENT', 'DETAILS'],
    ['0', '2026-01-01T00:00:00.000Z', 'JobEnqueued', 'command "echo hi", priority 0'],
    ['12', '2026-01-01T00:00:01.000Z', 'JobClaimed', 'attempt 1 by worker w-1, lease until -'],
  ]);
  assert.is(text, await tableText([
    ['POS', 'TIME', 'EVENT', 'DETAILS'],
    ['0', '2026-01-01T00:00:00.000Z', 'JobEnqueued', 'command "echo hi", priority 0'],
    ['12', '2026-01-01T00:00:01.000Z', 'JobClaimed', 'attempt 1 by worker w-1, lease until -'],
  ], 'cli-table3'));
  assert.is(text.split('\n')[0], 'POS  TIME                      EVENT        DETAILS');
});

test.run();
