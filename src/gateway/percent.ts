/**
 * Percent-escapes read byte by byte, in one pass over the text: the path rule looks
 * through them, and a request target may hold thousands (16 KB of headers), so it may
 * cost no more than a scan.
 */

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
