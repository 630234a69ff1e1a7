// Properties of src/cli/escape.ts (pure): whatever a job holds, what reaches the terminal has
// no control character but newline and tab (oneLine: none at all), fits its width, and is the
// escaped text itself or a cut of it between whole escapes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { oneLine, visible } from '../src/cli/escape.ts';

const RUNS = Number(process.env.QUEUECTL_PROP_RUNS ?? 300);
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;
// text full of controls, escapes' look-alikes and wide characters
const hostile = fc.string({ unit: fc.oneof(fc.constantFrom('\x1b', '\x07', '\r', '\n', '\t', '\x7f', '\u009b', '\x00', '\\', 'x', '[', '1', 'é', '😀'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 120 });

test('visible: no control character but newline and tab; each one becomes its \\xNN', () => {
  fc.assert(fc.property(hostile, (s) => {
    const out = visible(s);
    assert.not.match(out, RAW_CONTROL);
    assert.is(out.replace(/\\x([0-9a-f]{2})/g, (m, h: string) => (RAW_CONTROL.test(String.fromCharCode(Number.parseInt(h, 16))) ? String.fromCharCode(Number.parseInt(h, 16)) : m)), s);
  }), { numRuns: RUNS });
});

test('oneLine: one line, at most max characters, a cut of the escaped text between whole escapes', () => {
  fc.assert(fc.property(hostile, fc.integer({ min: 1, max: 60 }), (s, max) => {
    const out = oneLine(s, max);
    assert.not.match(out, /[\x00-\x1f\x7f-\x9f]/);
    assert.ok(out.length <= max, `${out.length} > ${max}`);
    const full = visible(s.replace(/\s+/g, ' '));
    if (out === full) return;
    assert.ok(out.endsWith('…'));
    const kept = out.slice(0, -1);
    // the kept text is the escapes of a whole number of the original's characters
    let prefix = '';
    for (const ch of s.replace(/\s+/g, ' ')) {
      if (prefix.length >= kept.length) break;
      prefix += visible(ch);
    }
    assert.is(prefix, kept, 'cut between whole characters (and so whole escapes)');
  }), { numRuns: RUNS });
});

test('oneLine: a cut never leaves half an escape (the boundary cases)', () => {
  for (let k = 40; k <= 50; k++) {
    const out = oneLine(`${'a'.repeat(k)}\x1b[31m${'b'.repeat(20)}`, 48);
    // ESC is whole as \x1b or absent; '[31m' are ordinary characters and may be cut anywhere
    assert.match(out, /^a+(\\x1b\[?3?1?m?b*)?…$/, out);
  }
});

test.run();
