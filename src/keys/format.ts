/**
 * Key formats: what a key looks like, generating one, and rejecting a mistyped or
 * foreign string before any lookup.
 *
 * `prefixed` keys are `<prefix><random><checksum>`: 24 base62 characters of randomness
 * (≈143 bits) and a CRC32 of prefix + random, written as 6 base62 characters. A typo
 * or a key from another system fails the checksum without touching the store.
 *
 * `hex` keys are bare lowercase hex tokens (e.g. 40 characters, 160 bits) for APIs
 * migrating keys that look like that already; they carry no checksum, only a shape.
 *
 * `shape` is the cheap part of `check` (prefix and length), for a caller that can answer
 * a key it has verified before without the rest (the gateway's key cache): a string of
 * the right length whose alphabet or checksum is wrong was never verified, so it is not
 * in that cache, and `check` refuses it before the store is asked.
 *
 * @example
 * const format = createKeyFormat({ format: 'prefixed', prefix: { live: 'rk_live_', test: 'rk_test_' }, hexLength: 40 });
 * const secret = format.generate('test');   // rk_test_3F9v...
 * format.check(secret);                     // { ok: true, mode: 'test' }
 */
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { KeyFormatConfig } from '../config/schema.js';

export type KeyMode = 'live' | 'test';

export const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const RANDOM_LENGTH = 24;
const CHECKSUM_LENGTH = 6;
/** Length of what follows the prefix: the random part and the checksum. */
const BODY_LENGTH = RANDOM_LENGTH + CHECKSUM_LENGTH;
/** What is hidden in logs after a key's prefix: half its random part, or more. */
const PARTIAL_BODY_LENGTH = RANDOM_LENGTH / 2;
/** Random part and checksum, tested from `lastIndex` (just past the prefix) to the end. */
const BASE62_BODY = new RegExp(`[0-9A-Za-z]{${BODY_LENGTH}}$`, 'y');
const PERCENT = 0x25;
/** Between the prefix and the last four characters in a key's hint (`rk_live_…x4Qz`). */
export const HINT_MARK = '…';
/** Runs of base62 at least a key body long, wherever they are. */
const BASE62_RUNS = new RegExp(`[0-9A-Za-z]{${BODY_LENGTH},}`, 'g');
/**
 * A run of base62 a key body long: what a key without a prefix needs. Tried only where a
 * run begins (the lookbehind): from every character, a long text of runs one short would
 * be read a body's length over again each time.
 */
const BASE62_BODY_RUN = new RegExp(`(?<![0-9A-Za-z])[0-9A-Za-z]{${BODY_LENGTH}}`);
/** A key body in one case (upper or lower), tested from `lastIndex` (just past a prefix), ending there: a key upper- or lower-cased. */
const FOLDED_BODY = new RegExp(`(?:[0-9A-Z]{${BODY_LENGTH}}|[0-9a-z]{${BODY_LENGTH}})(?![0-9A-Za-z])`, 'y');

/**
 * Where a prefix begins a key, as a regular expression's lookbehind: not after a letter or
 * a digit, where it would continue a word (`network_configuration.settings` holds `rk_`),
 * or else right after a percent-escape (`Bearer%20rk_…`, `%2520` escaped again), which
 * stands for a delimiter as often as not, or a backslash escape (`line\nrk_…`, `\t`,
 * `\u0022`, `\x22` in a JSON or C string), which ends in a letter or digit but is no
 * word. `_`, `-`, `.` and `~` are delimiters here (`old_rk_<key>`, `X-rk_<key>`,
 * `keys.rk_<key>`): what follows them begins a word.
 */
const KEY_START = '(?:(?<![0-9A-Za-z])|(?<=%(?:25)*[0-9A-Fa-f]{2})|(?<=\\\\(?:[A-Za-z]|u[0-9A-Fa-f]{4}|x[0-9A-Fa-f]{2})))';
const KEY_START_AT = new RegExp(KEY_START, 'y');

/** Whether a prefix found at `at` in `text` begins a key there (KEY_START). */
export function beginsKey(text: string, at: number): boolean {
  KEY_START_AT.lastIndex = at;
  return KEY_START_AT.test(text);
}

export type KeyCheck = { ok: true; mode: KeyMode | undefined } | { ok: false };

/** The answers `check` gives, made once: it runs on every request. */
const NOT_A_KEY: KeyCheck = Object.freeze({ ok: false });
const A_KEY = {
  live: Object.freeze({ ok: true, mode: 'live' }),
  test: Object.freeze({ ok: true, mode: 'test' }),
  unknown: Object.freeze({ ok: true, mode: undefined }),
} as const satisfies Record<string, KeyCheck>;

export interface KeyFormat {
  /** Modes this profile issues keys in. */
  readonly modes: readonly KeyMode[];
  /**
   * The prefixes the keys `recognises` takes begin with (keygate's own and imported ones;
   * an empty one left out): a text without any of them holds no such key but a bare one.
   */
  readonly prefixes: readonly string[];
  /**
   * Those of `prefixes` that keys keygate issued begin with: such a key carries a checksum,
   * so a prefix of these is a key's start wherever it is (in a header's name too, after a
   * letter); an imported key's prefix begins one only where it does not continue a word.
   */
  readonly issuedPrefixes: readonly string[];
  /**
   * Whether some keys have no prefix (`hex`, an empty live prefix, imported bare keys):
   * where a text is searched cheaply (request headers), such a key is looked for as the
   * caller's own only.
   */
  readonly bareKeys: boolean;
  /** The length of the longest key this format takes: a longer string is no key (what a search for one may skip unread). */
  readonly longest: number;
  generate(mode: KeyMode): string;
  /** Shape and checksum only; `mode` is undefined when the format cannot tell. */
  check(candidate: string): KeyCheck;
  /** Prefix and length only: `check` without the alphabet and the checksum. */
  shape(candidate: string): KeyCheck;
  /**
   * Whether `candidate` is a key by what only keys have, a checksum or a prefix: `check`
   * but for what it takes by shape alone (a bare hex key, an imported key without a
   * prefix), which a hash or an id may have as well.
   */
  recognises(candidate: string): boolean;
  /**
   * Whether `text` holds, anywhere in it, a string `recognises` takes: a key inside a
   * longer value (`Bearer <key>`, `key:<key>,abc`). Looked for at each of the format's
   * prefixes, or, for keys without one, where a run of their characters begins or ends:
   * linear in `text`.
   */
  recognisesWithin(text: string): boolean;
  /**
   * Whether `text` may hold one of this format's keys anywhere in it: a prefix, or where
   * keys have none, a run of their characters as long as the shortest key. Misses no key
   * (recognised or not), and costs an `indexOf` a prefix or one regular expression pass:
   * what is asked before anything costlier (reading a request's own key, decoding).
   */
  mayHold(text: string): boolean;
  /** What is shown instead of the secret: prefix and last four characters. */
  hint(secret: string): string;
  /**
   * What the hint of every key this format takes begins with: each prefix and HINT_MARK
   * (HINT_MARK alone for a key without one). A stored key whose hint begins with none of
   * them was issued under another `keys` and is refused as `malformed_key` now.
   */
  readonly hintStarts: readonly string[];
  /**
   * `text` with anything shaped like one of this format's keys replaced by `censor` (a
   * prefixed key keeps its prefix): for what is logged, where a client may have put a
   * key somewhere keygate does not read it from (a path segment, an unknown parameter).
   * With `partial`, also what could be a key cut short (most of one gives the rest away:
   * a prefixed key's checksum is computed from the part before it, and one character
   * more is 62 guesses).
   */
  scrub(text: string, censor: string, partial?: boolean): string;
  /**
   * `text` with any key that lost its prefix replaced by `censor` (a client that dropped
   * or mangled it: `?token=<the rest>`): where a format can tell one, by its checksum.
   */
  scrubBodies(text: string, censor: string): string;
  /**
   * Whether a name (an account's, a key's) holds a whole key by what only keys have:
   * keygate's own by its checksum (after a prefix in any case, or having lost it), an
   * imported one by its prefix in any case where it begins a key (KEY_START) and a
   * shortest body after it; bare hex keys by their shape. Imported keys without a prefix
   * have none of that, nor an imported prefix glued to a word: see `storedKeyCandidates`.
   */
  heldInName(name: string): boolean;
  /**
   * The parts of `name` that are an imported key only if the store holds one: without a
   * prefix, every part of each run of the alphabet that has a key's length (keygate's ids
   * left out), since such a key has no checksum or prefix and a long word
   * (`acme-industries.co.uk`) has its shape; with one, the prefix glued to a word
   * (`prodrk_<key>`, which `heldInName` leaves: `network_configuration` holds `rk_` too)
   * and each body length the run after it allows. A name is refused for one only where
   * the store holds a key of it. None for other formats.
   */
  storedKeyCandidates(name: string): StoredKeyCandidates;
}

/**
 * A name's parts that may be an imported key (`KeyFormat.storedKeyCandidates`), given in
 * two steps so that only those that can be one of the account's keys are hashed: a run of
 * 100 characters of the alphabet has 3,655 parts a bare key (16 and up) long, and a key's
 * hint says how it begins and ends, which most of those parts do not.
 */
export interface StoredKeyCandidates {
  /** The last four characters of every part, each once: a key whose hint ends with none of them is in no part. */
  readonly endings: readonly string[];
  /**
   * The parts that can be a key of one of `hints` (`rk_…x4Qz`: a key begins with its
   * hint's prefix, if any, and ends with its last four characters), each once, found as
   * they are taken: a caller that takes a few stops the search there.
   */
  matching(hints: readonly string[]): Iterable<string>;
}

/** A name without parts the store has to be asked about. */
const NO_STORED_KEY_CANDIDATES: StoredKeyCandidates = Object.freeze({ endings: [], matching: () => [] });

/** How many of a key's last characters its hint shows (`hint`: prefix, HINT_MARK, then these). */
const HINT_TAIL_LENGTH = 4;

/**
 * Where a name's parts that may be a key lie: each begins at a place from `first` to
 * `last` and, `skip` characters (a prefix) further on, has a body of `min` to `max`
 * characters that ends at `runEnd` at the latest.
 */
interface CandidateStretch {
  first: number;
  last: number;
  skip: number;
  runEnd: number;
}

/**
 * The parts of `name` that `stretches` lay out (`withoutIds`: keygate's ids left out), as
 * StoredKeyCandidates: the places a part ends are listed once, and `matching` looks at the
 * parts ending at a place only where a hint ends with what the name has there, and at
 * their beginnings only where one of those hints' prefixes is.
 */
function storedKeyParts(name: string, stretches: readonly CandidateStretch[], min: number, max: number, withoutIds: boolean): StoredKeyCandidates {
  if (stretches.length === 0) return NO_STORED_KEY_CANDIDATES;
  const ends = (stretch: CandidateStretch): [number, number] => [stretch.first + stretch.skip + min, Math.min(stretch.runEnd, stretch.last + stretch.skip + max)];
  const endings = new Set<string>();
  for (const stretch of stretches) {
    const [from, to] = ends(stretch);
    for (let end = from; end <= to; end++) endings.add(name.slice(end - HINT_TAIL_LENGTH, end));
  }
  return {
    endings: [...endings],
    *matching(hints) {
      const prefixesByEnding = new Map<string, string[]>();
      for (const hint of hints) {
        // Every hint is `hint`'s; one that were not would be taken to have no prefix, which keeps more parts, never fewer.
        const mark = hint.indexOf(HINT_MARK);
        const prefix = mark === -1 ? '' : hint.slice(0, mark);
        const ending = hint.slice(-HINT_TAIL_LENGTH);
        const prefixes = prefixesByEnding.get(ending);
        if (prefixes === undefined) prefixesByEnding.set(ending, [prefix]);
        else if (!prefixes.includes(prefix)) prefixes.push(prefix);
      }
      const given = new Set<string>();
      for (const stretch of stretches) {
        const [from, to] = ends(stretch);
        for (let end = from; end <= to; end++) {
          const prefixes = prefixesByEnding.get(name.slice(end - HINT_TAIL_LENGTH, end));
          if (prefixes === undefined) continue;
          const latest = Math.min(stretch.last, end - stretch.skip - min);
          for (let start = Math.max(stretch.first, end - stretch.skip - max); start <= latest; start++) {
            if (!prefixes.some((prefix) => prefix.length <= end - start && name.startsWith(prefix, start))) continue;
            const part = name.slice(start, end);
            if (given.has(part) || (withoutIds && isRecordId(part))) continue;
            given.add(part);
            yield part;
          }
        }
      }
    },
  };
}

/** `text` as a literal inside a regular expression. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** What a key looks like, from the part of `keys` that says it. */
export function createKeyFormat(config: Pick<KeyFormatConfig, 'format' | 'prefix' | 'hexLength' | 'imported'>): KeyFormat {
  const own = config.format === 'hex' ? hexFormat(config.hexLength) : prefixedFormat(config.prefix);
  return config.imported === undefined ? own : withImported(own, config.imported);
}

/** `keys.imported.length` as a range: a number is both ends. */
export function importedLengthRange(length: number | { min: number; max: number }): { min: number; max: number } {
  return typeof length === 'number' ? { min: length, max: length } : length;
}

/** Each imported alphabet in words, for a refusal that says what it takes. */
const IMPORTED_ALPHABET_WORDS = { base62: 'letters and digits', hex: '0-9 and a-f, in either case', base64url: 'letters, digits, "-" and "_"', unreserved: 'letters, digits, "-", "_", "." and "~"' } as const;

/**
 * The shape `keys.imported` takes, in words (`rk_live_ or rk_test_, then 24 base62
 * characters (letters and digits)`): what an import of a key of another shape is told.
 */
export function importedShapeWords(imported: NonNullable<KeyFormatConfig['imported']>): string {
  const prefixes = [imported.prefix.live, imported.prefix.test].filter((prefix) => prefix !== undefined);
  const { min, max } = importedLengthRange(imported.length);
  const length = min === max ? `${min}` : `${min} to ${max}`;
  const start = prefixes.length === 0 ? 'no prefix' : prefixes.join(' or ');
  return `${start}, then ${length} ${imported.alphabet} characters (${IMPORTED_ALPHABET_WORDS[imported.alphabet]})`;
}

/** The characters of an imported key's body, as a regular expression class. */
const IMPORTED_ALPHABETS = { base62: '0-9A-Za-z', hex: '0-9A-Fa-f', base64url: '0-9A-Za-z_\\-', unreserved: '0-9A-Za-z_.~\\-' } as const;

/**
 * keygate's own record ids (src/ids.ts: `acc_`, `key_`, `mem_`, `chk_` and 16 base62; `aud_`,
 * 13 base36 and 16 base62). An imported key without a prefix in an alphabet with `_`
 * (base64url, unreserved) could have that shape, so such a key is refused: an id in an
 * error (`no key "key_…"`) is then said as it is, not hidden as a key.
 */
const RECORD_ID = /^(?:(?:acc|key|mem|chk)_[0-9A-Za-z]{16}|aud_[0-9a-z]{13}[0-9A-Za-z]{16})$/;
/** The lengths of RECORD_ID's shapes: most candidates are judged by their length alone. */
const RECORD_ID_LENGTHS = new Set([20, 33]);

function isRecordId(text: string): boolean {
  return RECORD_ID_LENGTHS.has(text.length) && RECORD_ID.test(text);
}

/**
 * The randomness an imported key needs at least, in bits. Guesses at unknown keys (each
 * one lookup) are throttled at most per client address (`auth.unknownKeys`, off unless
 * set), so a short key can be found by trying: 32 bits (8 hex
 * characters) fell in 3,800 tries at 880 requests a second where many keys were imported.
 * keygate's own keys carry 143 (prefixed) or 128 up (hex).
 */
export const LEAST_IMPORTED_KEY_BITS = 96;
/** The bits one character of each imported alphabet carries (hex either case is still 16 values). */
const IMPORTED_ALPHABET_BITS = { base62: Math.log2(62), hex: 4, base64url: 6, unreserved: Math.log2(66) } as const;

/** Imported keys too short to withstand guessing: what `keygate check` and a start warn of. */
export interface WeakImportedKeys {
  /** The profile field that says it. */
  field: 'keys.imported.length';
  /** The shortest key's characters after its prefix, and their alphabet. */
  length: number;
  alphabet: keyof typeof IMPORTED_ALPHABET_BITS;
  /** The randomness of the shortest key (rounded down). */
  bits: number;
}

/**
 * Whether the profile's imported keys are shorter than LEAST_IMPORTED_KEY_BITS of
 * randomness: the length after the prefix (the prefix is fixed, no secret) times the bits
 * of each character, for the shortest length taken.
 */
export function weakImportedKeys(keys: Pick<KeyFormatConfig, 'imported'>): WeakImportedKeys | undefined {
  if (keys.imported === undefined) return undefined;
  const { alphabet } = keys.imported;
  const { min } = importedLengthRange(keys.imported.length);
  const bits = Math.floor(min * IMPORTED_ALPHABET_BITS[alphabet]);
  return bits < LEAST_IMPORTED_KEY_BITS ? { field: 'keys.imported.length', length: min, alphabet, bits } : undefined;
}

/**
 * The warning for `weakImportedKeys`: the field, the bits, the risk and what to do.
 * `unknownKeysThrottled`: the profile sets `auth.unknownKeys`, which slows one address's
 * guesses, not those of a client with many addresses.
 */
export function describeWeakImportedKeys({ field, length, alphabet, bits }: WeakImportedKeys, unknownKeysThrottled = false): string {
  const risk = unknownKeysThrottled
    ? 'guesses at unknown keys are throttled only per client address and process (auth.unknownKeys), so a client with many addresses can find a working key by trying (the more keys imported, the sooner). '
    : 'guesses at unknown keys are not throttled, so a client can find a working key by trying (the more keys imported, the sooner). ';
  return (
    `${field}: imported keys of ${length} ${alphabet} characters after their prefix carry ${bits} bits of randomness, fewer than ${LEAST_IMPORTED_KEY_BITS}: ` +
    risk +
    "Move their owners to keygate's own keys (keygate keys rotate <id>), then remove keys.imported; see docs/authentication.md#key-formats."
  );
}

/**
 * `own`, also taking keys the API issued before keygate (`keys.imported`: their prefixes
 * by mode, alphabet and length), so that its customers keep the keys they have. Such a
 * key carries no keygate checksum: a string of its shape is looked up (and is
 * `unknown_key` unless a key was imported with it) instead of refused as
 * `malformed_key`. Every test is a prefix and one character class: linear in the key,
 * and in a logged target.
 */
function withImported(own: KeyFormat, imported: NonNullable<KeyFormatConfig['imported']>): KeyFormat {
  const { min, max } = importedLengthRange(imported.length);
  const chars = IMPORTED_ALPHABETS[imported.alphabet];
  // Longest first: "rk_test_" before "rk_", where one extends the other.
  const byPrefix = (['live', 'test'] as const)
    .flatMap((mode): [KeyMode, string][] => (imported.prefix[mode] === undefined ? [] : [[mode, imported.prefix[mode]]]))
    .sort((a, b) => b[1].length - a[1].length);
  /** The body, tested from `lastIndex` (just past the prefix) to the end. */
  const body = new RegExp(`[${chars}]{${min},${max}}$`, 'y');
  const longest = max + (byPrefix[0]?.[1].length ?? 0);

  function importedShape(candidate: string): KeyCheck {
    if (candidate.length > longest) return NOT_A_KEY;
    if (byPrefix.length === 0) {
      body.lastIndex = 0;
      return body.test(candidate) && !isRecordId(candidate) ? A_KEY.unknown : NOT_A_KEY;
    }
    for (const [mode, prefix] of byPrefix) {
      if (!candidate.startsWith(prefix)) continue;
      body.lastIndex = prefix.length;
      if (body.test(candidate)) return A_KEY[mode];
    }
    return NOT_A_KEY;
  }

  // In what is logged, like keygate's own: a prefix in any case keeps it, the rest hidden (with `partial`, from half
  // a body on); without prefixes, any run of the alphabet a key long (with `partial`, shorter by two).
  const alternatives = byPrefix.map(([, prefix]) => literal(prefix)).join('|');
  const scrubbing = (least: number) => new RegExp(byPrefix.length > 0 ? `(${alternatives})[${chars}]{${least},}` : `()[${chars}]{${least},}`, 'gi');
  const anywhere = scrubbing(min);
  const partly = scrubbing(byPrefix.length > 0 ? Math.ceil(min / 2) : Math.max(1, min - 2));
  /** A shortest key's body, tested from `lastIndex` (just past a prefix found in a longer text). */
  const bodyAt = new RegExp(`[${chars}]{${min}}`, 'y');
  // In a name, the same in any case (`scrub` hides a prefix in any case too).
  const inName = byPrefix.length > 0 ? new RegExp(`${KEY_START}(?:${alternatives})[${chars}]{${min}}`, 'i') : undefined;
  const bareRun = new RegExp(`(?<![${chars}])[${chars}]{${min}}`);
  const bareRuns = new RegExp(`[${chars}]{${min},}`, 'g');
  /** A run of the alphabet, tested from `lastIndex` (just past a prefix). */
  const runAt = new RegExp(`[${chars}]+`, 'y');

  /**
   * An imported prefix glued to a word in a name (`prodrk_<key>`, `v2rk_<key>`): a key to
   * whoever drops the word, so each body length the run after it allows is a candidate for
   * the store. A prefix that begins a key there is `heldInName`'s.
   */
  function gluedStretches(name: string): CandidateStretch[] {
    const stretches: CandidateStretch[] = [];
    for (const [, prefix] of byPrefix) {
      for (let at = name.indexOf(prefix); at !== -1; at = name.indexOf(prefix, at + 1)) {
        if (beginsKey(name, at)) continue;
        runAt.lastIndex = at + prefix.length;
        const run = runAt.exec(name)?.[0] ?? '';
        if (run.length >= min) stretches.push({ first: at, last: at, skip: prefix.length, runEnd: at + prefix.length + run.length });
      }
    }
    return stretches;
  }

  /** Every part of a run a bare key long: a key pasted beside a word of its alphabet (`prod-<key>`) is in one. */
  function bareStretches(name: string): CandidateStretch[] {
    return [...name.matchAll(bareRuns)].map((run) => ({ first: run.index, last: run.index + run[0].length - min, skip: 0, runEnd: run.index + run[0].length }));
  }

  /**
   * Whether `text` holds a prefix (in its own case, as `recognises` takes it) where it begins a key (KEY_START), and a
   * shortest key's body after it: inside a word the prefix is text (`network_configuration.settings`), forwarded as
   * sent. Only where a prefix is found is more asked than an `indexOf`.
   */
  function prefixedWithin(text: string): boolean {
    for (const [, prefix] of byPrefix) {
      for (let at = text.indexOf(prefix); at !== -1; at = text.indexOf(prefix, at + 1)) {
        bodyAt.lastIndex = at + prefix.length;
        if (beginsKey(text, at) && bodyAt.test(text)) return true;
      }
    }
    return false;
  }

  return {
    modes: own.modes,
    prefixes: [...new Set([...own.prefixes, ...byPrefix.map(([, prefix]) => prefix)])],
    issuedPrefixes: own.issuedPrefixes,
    bareKeys: own.bareKeys || byPrefix.length === 0,
    longest: Math.max(own.longest, longest),
    generate: (mode) => own.generate(mode),
    check(candidate) {
      const ownCheck = own.check(candidate);
      return ownCheck.ok ? ownCheck : importedShape(candidate);
    },
    shape(candidate) {
      const ownShape = own.shape(candidate);
      if (!ownShape.ok) return importedShape(candidate);
      // A string of both shapes (a prefix that extends another) may be either mode: the key found says which.
      const other = importedShape(candidate);
      return other.ok && other.mode !== ownShape.mode ? A_KEY.unknown : ownShape;
    },
    recognises: (candidate) => own.recognises(candidate) || (byPrefix.length > 0 && importedShape(candidate).ok),
    recognisesWithin: (text) => own.recognisesWithin(text) || prefixedWithin(text),
    mayHold: (text) => own.mayHold(text) || (byPrefix.length > 0 ? byPrefix.some(([, prefix]) => text.indexOf(prefix) !== -1) : bareRun.test(text)),
    hint(secret) {
      if (own.check(secret).ok) return own.hint(secret);
      const prefix = byPrefix.find(([, p]) => secret.startsWith(p))?.[1] ?? '';
      return `${prefix}${HINT_MARK}${secret.slice(-HINT_TAIL_LENGTH)}`;
    },
    // A key of neither shape is hinted without a prefix; an imported key without one is such a key.
    hintStarts: [...new Set([...own.hintStarts, ...(byPrefix.length === 0 ? [''] : byPrefix.map(([, prefix]) => prefix)).map((prefix) => prefix + HINT_MARK)])],
    // Without a prefix, a run that is one of keygate's ids is left (no such key can be imported: importedShape).
    scrub: (text, censor, partial) => own.scrub(text, censor, partial).replace(partial ? partly : anywhere, (match: string, prefix: string) => (byPrefix.length === 0 && isRecordId(match) ? match : prefix + censor)),
    scrubBodies: (text, censor) => own.scrubBodies(text, censor),
    heldInName: (name) => own.heldInName(name) || (inName !== undefined && inName.test(name)),
    // Without a prefix, a run that is one of keygate's ids is left (no such key can be imported: importedShape).
    storedKeyCandidates: (name) => (byPrefix.length > 0 ? storedKeyParts(name, gluedStretches(name), min, max, false) : storedKeyParts(name, bareStretches(name), min, max, true)),
  };
}

function prefixedFormat(prefixes: KeyFormatConfig['prefix']): KeyFormat {
  const byMode: [KeyMode, string][] = [['live', prefixes.live]];
  if (prefixes.test !== undefined) byMode.push(['test', prefixes.test]);
  /**
   * The mode whose prefix the candidate begins with, at that prefix's key length. The
   * length decides between prefixes where one extends the other ("rk_" and "rk_test_",
   * "sk" and "sk1": a live key may begin with the test prefix).
   */
  function modeOf(candidate: string): [KeyMode, string] | undefined {
    for (const entry of byMode) {
      const prefix = entry[1];
      if (candidate.length === prefix.length + BODY_LENGTH && candidate.startsWith(prefix)) return entry;
    }
    return undefined;
  }
  function shape(candidate: string): KeyCheck {
    const found = modeOf(candidate);
    return found ? A_KEY[found[0]] : NOT_A_KEY;
  }
  function check(candidate: string): KeyCheck {
    const found = modeOf(candidate);
    if (!found) return NOT_A_KEY;
    BASE62_BODY.lastIndex = found[1].length;
    return BASE62_BODY.test(candidate) && endsWithChecksum(candidate) ? A_KEY[found[0]] : NOT_A_KEY;
  }
  // A prefix in any case and at least a key's worth of base62 after it (longer prefixes
  // tried first), with any `_` in the run: two keys written back to back (a prefix holds
  // `_`) are one run, all of it hidden, not the first key and the second's prefix.
  const prefixAlternatives = byMode.map(([, prefix]) => prefix).sort((a, b) => b.length - a.length).map(literal);
  const anywhere = new RegExp(`(${prefixAlternatives.join('|')})[0-9A-Za-z_]{${BODY_LENGTH},}`, 'gi');
  // A key cut short: half its random part or more (the other half, 71 bits, stays unknown).
  // Only after a prefix: with none (a profile may issue bare keys), any word of 12
  // characters would look like one.
  const unprefixed = byMode.some(([, prefix]) => prefix === '');
  /** Each prefix and a search for it in any case (none for an empty prefix). */
  const prefixesInAnyCase = byMode.map(([, prefix]): [string, RegExp | undefined] => [prefix, prefix === '' ? undefined : new RegExp(literal(prefix), 'gi')]);
  const partly = prefixes.live !== '' && prefixes.test !== '' ? new RegExp(`(${prefixAlternatives.join('|')})[0-9A-Za-z_]{${PARTIAL_BODY_LENGTH},}`, 'gi') : anywhere;
  /** The prefixes keys begin with, an empty one left out: every one keygate's own. */
  const nonEmptyPrefixes = byMode.map(([, prefix]) => prefix).filter((prefix) => prefix !== '');
  return {
    modes: byMode.map(([mode]) => mode),
    prefixes: nonEmptyPrefixes,
    issuedPrefixes: nonEmptyPrefixes,
    bareKeys: unprefixed,
    longest: Math.max(...byMode.map(([, prefix]) => prefix.length)) + BODY_LENGTH,
    generate(mode) {
      const prefix = byMode.find(([m]) => m === mode)?.[1];
      if (prefix === undefined) throw new Error(`this profile issues no ${mode} keys`);
      const body = prefix + randomBase62(RANDOM_LENGTH);
      return body + checksum(body);
    },
    check,
    shape,
    // Its checksum tells a key, with a prefix or without.
    recognises: (candidate) => check(candidate).ok,
    recognisesWithin,
    // A key without a prefix (an empty live prefix) is a run of base62; a test key's body is one too.
    mayHold: (text) => (unprefixed ? BASE62_BODY_RUN.test(text) : byMode.some(([, prefix]) => text.indexOf(prefix) !== -1)),
    hint(secret) {
      const prefix = modeOf(secret)?.[1] ?? '';
      return `${prefix}${HINT_MARK}${secret.slice(-HINT_TAIL_LENGTH)}`;
    },
    hintStarts: byMode.map(([, prefix]) => prefix + HINT_MARK),
    scrub: (text, censor, partial) => text.replace(partial ? partly : anywhere, (_match, prefix: string) => prefix + censor),
    scrubBodies: (text, censor) => withoutBareBodies(text, censor),
    heldInName: (name) => keyWithin(name) || withoutBareBodies(name, '') !== name,
    storedKeyCandidates: () => NO_STORED_KEY_CANDIDATES,
  };

  /**
   * Whether a whole key is in `name`: after a prefix in any case, told by its checksum
   * (`RK_LIVE_<body>`, the checksum taken with the prefix as issued), or written all in one
   * case (`SK_LIVE_<BODY>`), which the checksum no longer tells: a key body's length of
   * digits and letters of one case, ending there (guessing each letter's case back is a few
   * million checksums, seconds offline: such a key is as good as the key); for keys without
   * a prefix, as any key-long stretch of a run of base62 told by its checksum. A name is
   * short and set rarely: a checksum at each place costs nothing that matters, and a word
   * after a prefix (`task_runner_for_…` under `sk_`) is not taken for a key.
   */
  function keyWithin(name: string): boolean {
    for (const [prefix, anyCase] of prefixesInAnyCase) {
      if (anyCase === undefined) {
        for (const [run] of name.matchAll(BASE62_RUNS)) {
          for (let at = 0; at + BODY_LENGTH <= run.length; at++) if (endsWithChecksum(run.slice(at, at + BODY_LENGTH))) return true;
        }
        continue;
      }
      for (const found of name.matchAll(anyCase)) {
        const start = found.index + found[0].length;
        if (check(prefix + name.slice(start, start + BODY_LENGTH)).ok) return true;
        FOLDED_BODY.lastIndex = start;
        if (FOLDED_BODY.test(name)) return true;
      }
    }
    return false;
  }

  /**
   * Whether a key is inside `text`: one of each prefix's length from wherever the prefix
   * is (`0<key>1` too); without a prefix, at the start or end of a run of base62
   * (`Bearer <key>`, `<key>abc`). A key with letters or digits on both sides and no prefix
   * is not looked for: each place a run holds would cost a checksum.
   */
  function recognisesWithin(text: string): boolean {
    for (const [, prefix] of byMode) {
      if (prefix === '') {
        for (const [run] of text.matchAll(BASE62_RUNS)) {
          if (endsWithChecksum(run.slice(0, BODY_LENGTH)) || (run.length > BODY_LENGTH && endsWithChecksum(run.slice(-BODY_LENGTH)))) return true;
        }
        continue;
      }
      for (let at = text.indexOf(prefix); at !== -1; at = text.indexOf(prefix, at + 1)) {
        if (check(text.slice(at, at + prefix.length + BODY_LENGTH)).ok) return true;
      }
    }
    return false;
  }

  /**
   * `text` with any key body that lost its prefix hidden (a client that dropped or
   * mangled it: `?token=<body>`, `kg-live-<body>`, `Bearer%20<body>`): the prefix is
   * public, so the body is the whole secret, and its checksum, taken with one of the
   * prefixes, gives it away (a run that merely looks like one passes 1 time in 4 billion).
   * A body is looked for where one begins or ends a run of base62, and after the two hex
   * digits of an escape that begins one (`%20<body>`): a few checksums a run, however long
   * (a long URL costs no more than a short one to log).
   */
  function withoutBareBodies(text: string, censor: string): string {
    const isBody = (candidate: string) => byMode.some(([, prefix]) => endsWithChecksum(prefix + candidate));
    return text.replace(BASE62_RUNS, (run: string, offset: number) => {
      let out = '';
      let rest = run;
      // Past an escape's digits, where the run begins right after a `%`.
      let start = offset > 0 && text.charCodeAt(offset - 1) === PERCENT ? 2 : 0;
      while (rest.length >= start + BODY_LENGTH) {
        const end = rest.length - BODY_LENGTH;
        const at = isBody(rest.slice(start, start + BODY_LENGTH)) ? start : end > start && isBody(rest.slice(end)) ? end : -1;
        if (at === -1) break;
        out += rest.slice(0, at) + censor;
        rest = rest.slice(at + BODY_LENGTH);
        start = 0;
      }
      return out + rest;
    });
  }
}

function hexFormat(length: number): KeyFormat {
  const pattern = new RegExp(`^[0-9a-f]{${length}}$`);
  // Any run at least a key long: a key beside another hex digit (`?q=0<key>`, two keys
  // in a row) is still a key; a longer hash is hidden with it.
  const anywhere = new RegExp(`[0-9a-f]{${length},}`, 'gi');
  // A key cut short by a digit or two (16 or 256 guesses). Shorter runs are left: they are
  // what hashes and ids look like (an MD5 is 32 digits).
  const partly = new RegExp(`[0-9a-f]{${Math.max(1, length - 2)},}`, 'gi');
  // A run a key long, tried where a run begins: what holds a key (keys are lower case: `check`).
  const keyRun = new RegExp(`(?<![0-9a-f])[0-9a-f]{${length}}`);
  return {
    modes: ['live'],
    prefixes: [],
    issuedPrefixes: [],
    bareKeys: true,
    longest: length,
    generate() {
      return randomBytes(Math.ceil(length / 2)).toString('hex').slice(0, length);
    },
    // No checksum: the length and the alphabet are all there is to check.
    check: (candidate) => (candidate.length === length && pattern.test(candidate) ? A_KEY.unknown : NOT_A_KEY),
    shape: (candidate) => (candidate.length === length ? A_KEY.unknown : NOT_A_KEY),
    // Any run of hex digits of the key's length (a SHA-1 is 40) passes `check`.
    recognises: () => false,
    recognisesWithin: () => false,
    mayHold: (text) => keyRun.test(text),
    hint(secret) {
      return `${HINT_MARK}${secret.slice(-HINT_TAIL_LENGTH)}`;
    },
    hintStarts: [HINT_MARK],
    scrub: (text, censor, partial) => text.replace(partial ? partly : anywhere, censor),
    // A hex key has no prefix to lose: `scrub` finds it wherever it is.
    scrubBodies: (text) => text,
    // Nothing but the shape tells a hex key: a run of hex a key long is taken for one.
    heldInName: (name) => name.replace(anywhere, '') !== name,
    storedKeyCandidates: () => NO_STORED_KEY_CANDIDATES,
  };
}

/** Unbiased base62: bytes ≥ 248 (the largest multiple of 62 below 256) are redrawn. */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248) out += BASE62[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

/** `checksum(body) === candidate.slice(-CHECKSUM_LENGTH)`, digit by digit from the end. */
function endsWithChecksum(candidate: string): boolean {
  let value = crc32(candidate.slice(0, candidate.length - CHECKSUM_LENGTH));
  for (let i = candidate.length - 1; i >= candidate.length - CHECKSUM_LENGTH; i--) {
    if (candidate.charCodeAt(i) !== BASE62.charCodeAt(value % 62)) return false;
    value = Math.floor(value / 62);
  }
  return true;
}

/** The checksum part of a prefixed key: CRC32 of prefix + random part, 6 base62 characters. */
export function checksum(text: string): string {
  let value = crc32(text);
  let out = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = BASE62[value % 62] + out;
    value = Math.floor(value / 62);
  }
  return out;
}
