/**
 * Percent-escapes read byte by byte, in one pass over the text: the path rule and the log
 * redaction both look through them, and a request target may hold thousands (16 KB of
 * headers), so neither may cost more than a scan.
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

/** UTF-8, lenient: a byte that is no character decodes to U+FFFD and the rest still decodes. */
const UTF8 = new TextDecoder();

/** An ASCII text (a request target) with every escape decoded, as UTF-8. */
export function percentDecoded(text: string): string {
  const bytes = new Uint8Array(text.length);
  let length = 0;
  for (let i = 0; i < text.length; i++) {
    const byte = escapedByte(text, i);
    if (byte === -1) bytes[length++] = text.charCodeAt(i) & 0xff;
    else {
      bytes[length++] = byte;
      i += 2;
    }
  }
  return UTF8.decode(bytes.subarray(0, length));
}
