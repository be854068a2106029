/**
 * Text with a NUL character (U+0000) in it: PostgreSQL's text cannot hold one (it answers
 * `invalid byte sequence for encoding "UTF8": 0x00` to any statement that carries one, a
 * lookup as much as a write), and SQLite's C interfaces read text only up to it. Anyone
 * can send one (`/v1/keys/%00`, an email typed into the sign-in form), so the store
 * decides what it means, the same on every backend, before a statement is sent:
 *
 * - a lookup by such text finds nothing: no stored text holds a NUL, every write refusing
 *   it (nor does a page after a place named by one: keygate gives no such place);
 * - a write of such text is refused with an UnstorableTextError, which the admin API and
 *   the dashboard answer 400 (what was sent is invalid), not a database failure.
 *
 * JSON columns (scopes, audit details, limits) are written by JSON.stringify, which
 * writes a NUL as `\u0000`: those hold one as six plain characters, and are read back as sent.
 */

const NUL = '\u0000';

export class UnstorableTextError extends Error {
  /** `table` and `column`: where the text was to go (never the text itself: it may be a secret). */
  constructor(
    readonly table: string,
    readonly column: string,
  ) {
    super(`${table}.${column} cannot hold text with a NUL character (U+0000)`);
    this.name = 'UnstorableTextError';
  }
}

/** Whether `value` (text, texts, or nothing) has a NUL in it: as a lookup's value, it matches no row. */
export function holdsNul(value: string | readonly string[] | null | undefined): boolean {
  if (typeof value === 'string') return value.includes(NUL);
  return value != null && value.some((text) => text.includes(NUL));
}

/** `texts` without those that hold a NUL (the values of an `in` list, none of which such a value can match). */
export function matchable(texts: readonly string[]): readonly string[] {
  return holdsNul(texts) ? texts.filter((text) => !text.includes(NUL)) : texts;
}

/** `row` as given, once none of its text columns holds a NUL; else an UnstorableTextError naming the first that does. */
export function storable<Row extends object>(table: string, row: Row): Row {
  for (const [column, value] of Object.entries(row)) {
    if (typeof value === 'string' && value.includes(NUL)) throw new UnstorableTextError(table, column);
  }
  return row;
}
