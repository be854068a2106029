/** Human output for the CLI: aligned tables and short dates. `--json` bypasses all of it. */
import stringWidth from 'string-width';
import { utcSecond, utcSecondUp } from '../meters/period.js';

/**
 * Rows under upper-case column names, each column as wide as its widest cell. Widths are
 * the columns a terminal gives the text (string-width), not its UTF-16 length: a name in
 * CJK or with an emoji takes two columns a character, a combining accent none.
 */
export function table(rows: readonly Record<string, unknown>[], columns: readonly string[]): string {
  if (rows.length === 0) return '(none)';
  const measure = (text: string) => ({ text, width: stringWidth(text) });
  const header = columns.map((c) => measure(c.toUpperCase()));
  const cells = rows.map((row) => columns.map((c) => measure(cell(row[c]))));
  const widths = header.map((h, i) => Math.max(h.width, ...cells.map((r) => (r[i] as Measured).width)));
  const line = (values: readonly Measured[]) => values.map((v, i) => v.text + ' '.repeat((widths[i] as number) - v.width)).join('  ').trimEnd();
  return [line(header), ...cells.map(line)].join('\n');
}

/** A cell's text and the terminal columns it takes. */
interface Measured {
  text: string;
  width: number;
}

/** One record, a field a line: its name, then its value (as a table's cell), aligned. */
export function fields(record: Readonly<Record<string, unknown>>, names: readonly string[]): string {
  const width = Math.max(...names.map((name) => name.length));
  return names.map((name) => `${name.padEnd(width)}  ${cell(record[name])}`.trimEnd()).join('\n');
}

function cell(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (Array.isArray(value)) return value.length === 0 ? '-' : visible(value.join(','));
  return visible(String(value));
}

/**
 * Control characters shown as escapes: a name stored before they were refused must not
 * break a row in two or send escape sequences to the operator's terminal.
 */
function visible(text: string): string {
  return text.replace(/\p{Cc}/gu, (c) => `\\u${(c.codePointAt(0) as number).toString(16).padStart(4, '0')}`);
}

export function when(ms: number | null): string {
  if (ms === null) return '-';
  return `${new Date(ms).toISOString().replace('T', ' ').slice(0, 16)}Z`;
}

/**
 * When something in force that one waits for ends (a block, a pause), to the second: such
 * an end is often minutes or seconds away, and "until 20:26Z" would not say whether it has
 * come. Rounded up: at the time shown it has ended.
 */
export function until(ms: number): string {
  return `${utcSecondUp(ms)}Z`;
}

/**
 * When a key stops working (its expiry, an overlap's end), to the second. Still to come:
 * rounded up, as every end is (`until` here, the admin API's refusals, the dashboard to the
 * minute), because an end is what one acts on: at the time shown the key has stopped, so a
 * refusal that says to wait for it is not met again then, and "works until 17:16:43" reads
 * as "open until five" does, the time by which it is over. Past (`expired at`): truncated,
 * as every moment that happened.
 */
export function keyEnd(ms: number, now: number): string {
  return ms > now ? `${utcSecondUp(ms)}Z` : keyMoment(ms);
}

/** When something happened to a key (revoked, expired), to the second and truncated; `-` for none. Created and last used stay to the minute (when). */
export function keyMoment(ms: number | null): string {
  return ms === null ? '-' : `${utcSecond(ms)}Z`;
}
