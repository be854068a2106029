/**
 * A string in one piece, for one that is kept for long. V8 keeps a string built by
 * concatenation (a template literal, `+`) of 13 characters or more as a tree of its parts
 * until something reads it whole, and a Map that holds it as a key never does: a
 * rate-limit window's id held that way took about 260 bytes for its 45 characters, a flat
 * copy about 60 (`node bench/memory.js`, per key in use, and a loop of 100,000 such ids).
 * The copy goes through UTF-16 code units, so any string, lone surrogates included,
 * comes back the same.
 */
export function flatString(s: string): string {
  return Buffer.from(s, 'utf16le').toString('utf16le');
}
