/**
 * Percent-escapes read byte by byte, in one pass over the text: the path rule looks
 * through them, and a request target may hold thousands (16 KB of headers), so it may
 * cost no more than a scan.
 */
import { isUtf8 } from 'node:buffer';

/** The value of a hex digit's character code, or -1. */
function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/** The byte the escape at `text[i]` stands for (`%2F` → 0x2f), or -1 where there is none. */
export function escapedByte(text: string, i: number): number {
  if (text.charCodeAt(i) !== 0x25 || i + 2 >= text.length) return -1;
  const high = hexValue(text.charCodeAt(i + 1));
  const low = high === -1 ? -1 : hexValue(text.charCodeAt(i + 2));
  return low === -1 ? -1 : high * 16 + low;
}

/** `%` not followed by two hex digits: decodeURIComponent would throw. */
const BROKEN_ESCAPE = /%(?![0-9A-Fa-f]{2})/;
/** Consecutive escapes: decodeURIComponent reads a character's UTF-8 bytes within one run. */
const ESCAPE_RUN = /(?:%[0-9A-Fa-f]{2})+/g;
/** An escape of a byte over 0x7F, which must be part of a whole UTF-8 character. */
const HIGH_ESCAPE = /%[89A-Fa-f]/;

/**
 * A query component (`+` is a space) decoded as decodeURIComponent does, or undefined
 * where it would throw, without the exception: a target may hold thousands of broken
 * escapes (`?%zz&%zz&…`, 16 KB), and an exception each made one request cost tens of
 * milliseconds, before any key was read.
 */
export function decodeQueryComponent(text: string): string | undefined {
  const spaced = text.includes('+') ? text.replaceAll('+', ' ') : text;
  if (!spaced.includes('%')) return spaced;
  if (BROKEN_ESCAPE.test(spaced)) return undefined;
  if (HIGH_ESCAPE.test(spaced)) {
    for (const run of spaced.match(ESCAPE_RUN) ?? []) {
      if (HIGH_ESCAPE.test(run) && !isUtf8(Buffer.from(run.replaceAll('%', ''), 'hex'))) return undefined;
    }
  }
  return decodeURIComponent(spaced);
}

/**
 * How many percent-decodings a text is read through where a key is looked for in it
 * (`sk%5Flive…`, escaped again `sk%255Flive…`): by the log's redaction (keys/redact.ts) and
 * by what is forwarded (auth/credential.ts) alike. A key escaped more often than this is no
 * key to a reader.
 */
export const KEY_DECODINGS = 4;

/** An escape of an ASCII character (a key is made of nothing else), escaped once. */
const ASCII_ESCAPE = /%([0-7][0-9A-Fa-f])/g;

/**
 * Percent-escapes of ASCII characters decoded, once; any other text (`%E9`, a broken `%`)
 * left as it is: where a key is looked for, it never fails as decodeURIComponent would.
 */
export function asciiDecoded(text: string): string {
  return text.replace(ASCII_ESCAPE, (_escape, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}
