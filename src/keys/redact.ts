/**
 * Keys taken out of text that is logged or sent back (a request target, an error's
 * detail), also where they hide behind percent-escapes.
 */
import type { KeyFormat } from './format.js';
import { REDACTED } from '../log.js';

/** How many percent-decodings `withoutKeys` looks through (a key escaped more often than this is no key to a reader). */
const DECODING_HOPS = 4;

/**
 * `text` with anything shaped like one of the profile's keys (or most of one) replaced by `[REDACTED]`. A
 * key written with percent-escapes (`sk%5Flive%5F…`, escaped again `%255F`) is a key to
 * whoever decodes it: then the text is given decoded as far as the key showed.
 */
export function withoutKeys(keyFormat: Pick<KeyFormat, 'scrub' | 'scrubBodies'>, text: string): string {
  const scrubbed = keyFormat.scrub(text, REDACTED, true);
  let layer = scrubbed;
  for (let hop = 0; hop < DECODING_HOPS && layer.includes('%'); hop++) {
    const decoded = asciiDecoded(layer);
    if (decoded === layer) break;
    // With a key that lost its prefix (`?token=<the rest>`, the rest being the whole secret), looked for last.
    const decodedScrubbed = keyFormat.scrubBodies(keyFormat.scrub(decoded, REDACTED, true), REDACTED);
    if (decodedScrubbed !== decoded) return decodedScrubbed;
    layer = decoded;
  }
  return keyFormat.scrubBodies(scrubbed, REDACTED);
}

/** Percent-escapes of ASCII characters (all a key is made of) decoded; any other text left as it is. */
function asciiDecoded(text: string): string {
  return text.replace(/%([0-7][0-9A-Fa-f])/g, (_escape, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}
