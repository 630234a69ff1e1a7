// Text from jobs (commands, cwd, errors, output) reaches the operator's terminal only through
// here: a terminal obeys control characters (ESC starts sequences that can clear the screen,
// hide text or write the clipboard; CR overwrites a line), so human output shows them as
// visible escapes instead. `--json` and `logs --raw` are left as they are.

// C0 controls but tab and newline, DEL, and C1 (U+0080-U+009F: 0x9b is CSI on some terminals)
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;
const CONTROLS = new RegExp(CONTROL.source, 'g');

const hex = (c: string): string => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;

/** Multi-line text (show, logs): every control character but newline and tab as `\xNN`. */
export const visible = (text: string): string => (CONTROL.test(text) ? text.replace(CONTROLS, hex) : text);

/**
 * One line of at most `max` characters (a table cell, a worker line, an error): runs of
 * whitespace become one space, control characters `\xNN`, and a longer text ends in `…`,
 * cut between characters of the original so that an escape is never cut in half.
 */
export const oneLine = (text: string, max = Number.POSITIVE_INFINITY): string => {
  const spaced = text.replace(/\s+/g, ' ');
  const flat = visible(spaced);
  if (flat.length <= max) return flat;
  let out = '';
  for (const ch of spaced) {
    const shown = visible(ch);
    if (out.length + shown.length > max - 1) break;
    out += shown;
  }
  return `${out}…`;
};
