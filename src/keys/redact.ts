/**
 * Keys taken out of text that is logged or sent back (a request target, an error's
 * detail), also where they hide behind percent-escapes.
 */
import type { KeyFormat } from './format.js';
import { REDACTED } from '../log.js';
import { asciiDecoded, KEY_DECODINGS } from '../gateway/percent.js';

/**
 * `text` with anything shaped like one of the profile's keys (or most of one) replaced by `[REDACTED]`. A
 * key written with percent-escapes (`sk%5Flive%5F…`, escaped again `%255F`) is a key to
 * whoever decodes it: then the text is given decoded as far as the key showed.
 */
export function withoutKeys(keyFormat: Pick<KeyFormat, 'scrub' | 'scrubBodies'>, text: string): string {
  const scrubbed = withoutEscapedRest(keyFormat.scrub(text, REDACTED, true));
  let layer = scrubbed;
  for (let hop = 0; hop < KEY_DECODINGS && layer.includes('%'); hop++) {
    const decoded = asciiDecoded(layer);
    if (decoded === layer) break;
    // With a key that lost its prefix (`?token=<the rest>`, the rest being the whole secret), looked for last.
    const decodedScrubbed = keyFormat.scrubBodies(withoutEscapedRest(keyFormat.scrub(decoded, REDACTED, true)), REDACTED);
    if (decodedScrubbed !== decoded) return decodedScrubbed;
    layer = decoded;
  }
  return keyFormat.scrubBodies(scrubbed, REDACTED);
}

/** A character keys are made of (any alphabet's, `.` and `~` too), as a regular expression's class. */
const KEY_CHARACTERS = '[0-9A-Za-z_.~-]';

/**
 * A percent-escape of a character keys are made of (a digit, a letter, `_`, `-`, and for
 * imported keys of the `unreserved` alphabet `.` and `~`, escaped once or more: `%41`,
 * `%2541`, `%2E`). No URL needs one: where it follows a key's hidden part, the key goes on
 * through it.
 */
const ESCAPED_KEY_CHARACTER = '%(?:25)*(?:3[0-9]|4[1-9a-f]|5[0-9a]|5f|6[1-9a-f]|7[0-9a]|2d|2e|7e)';

/** What follows a hidden key when the key goes on past an escape of one of its characters (`sk_live_[REDACTED]%41bc…`, `[REDACTED]%2Esecret~…`). */
const ESCAPED_REST = new RegExp(`${REDACTED.replace(/[[\]]/g, '\\$&')}(?:(?:${ESCAPED_KEY_CHARACTER})+${KEY_CHARACTERS}*)+`, 'gi');

/**
 * `text` without the rest of a key split by a percent-escape past the part `scrub` hid: a
 * key is hidden from the prefix on up to the escape, and what comes after it, escapes
 * included, is as much the secret.
 */
function withoutEscapedRest(text: string): string {
  return text.includes('%') ? withoutEscapedStart(text.replace(ESCAPED_REST, REDACTED)) : text;
}

/** A hidden key whose first characters were the digits of an escape (`…%[REDACTED]`): what `scrub` left of the key before the escape. */
const HIDDEN_AFTER_ESCAPE = `%${REDACTED}`;
/** An escape of a key's character (ESCAPED_KEY_CHARACTER) starting at `lastIndex`. */
const ESCAPE_AT = new RegExp(ESCAPED_KEY_CHARACTER, 'iy');
const KEY_CHARACTER = new RegExp(KEY_CHARACTERS);

/**
 * `text` without the start of a key split by a percent-escape before the part `scrub` hid
 * (`bob-8gy7TC6PD0Ypy%6Eop-…`: the run after the `%`, its digits included, was long
 * enough to be hidden alone, the 17 characters before it were not): the key's characters
 * and escapes of them just before `%[REDACTED]` go with it. Walked back from each such
 * place, each character once: no regular expression tried from every position of a run.
 */
function withoutEscapedStart(text: string): string {
  let at = text.indexOf(HIDDEN_AFTER_ESCAPE);
  if (at === -1) return text;
  let out = '';
  let done = 0;
  while (at !== -1) {
    let start = at;
    while (start > done) {
      const before = text[start - 1] as string;
      if (KEY_CHARACTER.test(before)) {
        start--;
        continue;
      }
      // A `%` whose escape (its digits already taken back) is of a key's character.
      ESCAPE_AT.lastIndex = start - 1;
      if (before === '%' && ESCAPE_AT.test(text)) {
        start--;
        continue;
      }
      break;
    }
    out += text.slice(done, start) + REDACTED;
    done = at + HIDDEN_AFTER_ESCAPE.length;
    at = text.indexOf(HIDDEN_AFTER_ESCAPE, done);
  }
  return out + text.slice(done);
}
