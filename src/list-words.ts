/**
 * Lists as a sentence says them, the project's way (no comma before the last word):
 * `a`, `a and b`, `a, b and c`; `a, b or c`. Intl's list formats do it (British English
 * leaves out the serial comma), so every message lists alike.
 *
 * @example
 * andList(['units', 'rows', 'credits']) // 'units, rows and credits'
 * orList(['on', 'off']) // 'on or off'
 */
const AND = new Intl.ListFormat('en-GB', { style: 'long', type: 'conjunction' });
const OR = new Intl.ListFormat('en-GB', { style: 'long', type: 'disjunction' });

/** "“units”, “rows” and “credits”": things as a sentence lists them, all of them. */
export function andList(items: readonly string[]): string {
  return AND.format(items);
}

/** "Never, In 30 days or In one year": choices as a sentence lists them, any one of them. */
export function orList(items: readonly string[]): string {
  return OR.format(items);
}
