/**
 * Finding the credential in a request, from the places the profile lists, in order.
 *
 * How odd input is treated (documented in docs/authentication.md):
 * - Leading and trailing spaces/tabs of a header value are ignored, and so are spaces,
 *   tabs and line breaks around a query parameter's value (`%0A` from a key read out of a
 *   file); an empty value counts as absent, and the next location is tried.
 * - With a scheme (`Bearer`, `Token`, ...) the scheme word is matched case-insensitively
 *   and may be followed by one or more spaces or tabs. A bare key, or a different scheme word,
 *   is `malformed_key`, whose challenge has no `error` (another authentication method, RFC
 *   6750 §3.1). The scheme word alone is `missing_key`.
 * - Without a scheme (`scheme: none`) the whole value is the key; a value with inner
 *   whitespace (e.g. "Bearer tkn_...") is `malformed_key`.
 * - A header or query parameter that is given twice is `malformed_key` (Node joins most
 *   repeated headers with ", ", which a key cannot contain, and keeps only the first
 *   `Authorization`, `Proxy-Authorization` and a few others: their copies are read from
 *   the raw headers). An empty copy (or one of
 *   spaces only) is absent, as a lone empty one is: `Authorization: Bearer <key>` beside
 *   an empty `Authorization:`, or `?apikey=<key>&apikey=`, is the key given once.
 */
import type { CredentialLocation } from '../config/schema.js';
import { beginsKey, type KeyFormat } from '../keys/format.js';
import { asciiDecoded, decodeQueryComponent, escapedByte, KEY_DECODINGS } from '../gateway/percent.js';

export type CredentialResult = FoundCredential | { kind: 'missing' } | MalformedCredential;

export interface MalformedCredential {
  kind: 'malformed';
  location: CredentialLocation;
  /**
   * Sent by another authentication scheme than the header's (a bare key where `Bearer`
   * goes, `Token` for a `Bearer` API): RFC 6750 §3.1's "unsupported authentication
   * method", whose challenge carries no error code.
   */
  otherScheme?: true;
}

const OTHER_SCHEME = 'other-scheme';

export interface FoundCredential {
  kind: 'found';
  secret: string;
  location: CredentialLocation;
  /** The header value as sent (before trimming and the scheme), where the key came from a header. */
  sent?: string;
}

/**
 * A credential found before (src/keys/key-memo.ts): a header that sends the very value it
 * was read from again, at the same location, holds it again.
 */
export interface KnownCredential {
  readonly found: FoundCredential | undefined;
  /** Whether `sent` is the header value `found` was read from (compared in constant time). */
  holds(sent: string): boolean;
}

export interface RequestView {
  headers: Record<string, string | string[] | undefined>;
  /** The raw request target: path plus query string. */
  url: string;
  /** Node's raw header list (name, value, ...), where a repeated `Authorization` (or any header Node keeps one copy of) still shows. */
  rawHeaders?: readonly string[];
}

/**
 * Headers whose later copies Node drops from `req.headers`, keeping the first alone (its
 * `IncomingMessage`); every other repeated header it joins with ", " (which no key holds).
 * A second copy of one of these shows only in the raw headers.
 */
const FIRST_COPY_ONLY = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since', 'if-unmodified-since',
  'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent',
]);

/** How a credential header is read: its lower-case form, as Node keys headers, and whether Node keeps only its first copy. */
interface HeaderReading {
  key: string;
  firstCopyOnly: boolean;
}

/** Header name → how it is read: decided once per name (a profile's few), not per request. */
const HEADER_READINGS = new Map<string, HeaderReading>();

function headerReading(name: string): HeaderReading {
  let reading = HEADER_READINGS.get(name);
  if (reading === undefined) {
    const key = name.toLowerCase();
    reading = { key, firstCopyOnly: FIRST_COPY_ONLY.has(key) };
    HEADER_READINGS.set(name, reading);
  }
  return reading;
}
const SPACE = 32;
const TAB = 9;
const LF = 0x0a;
const CR = 0x0d;

export function extractCredential(request: RequestView, locations: readonly CredentialLocation[], known?: KnownCredential): CredentialResult {
  let query: Map<string, string[]> | undefined;
  for (const location of locations) {
    if (location.in === 'header') {
      const reading = headerReading(location.name);
      const header = request.headers[reading.key];
      if (header === undefined) continue;
      const raw = sentOnce(header, reading, request.rawHeaders);
      if (raw === undefined) continue;
      if (raw === TWICE) return { kind: 'malformed', location };
      // The value a credential was read from before, sent again: the same credential, read no further.
      if (known?.found !== undefined && known.found.location === location && known.found.sent !== undefined && known.holds(raw)) return known.found;
      const value = trimmed(raw, false);
      if (value === '') continue;
      const result = readHeaderValue(value, location.scheme);
      if (result === 'missing') continue;
      if (result === 'malformed') return { kind: 'malformed', location };
      if (result === OTHER_SCHEME) return { kind: 'malformed', location, otherScheme: true };
      return { kind: 'found', secret: result, location, sent: raw };
    }
    query ??= parseQuery(request.url);
    const values = query.get(location.name);
    if (!values) continue;
    const present = values.map((sent) => trimmed(decodeQueryComponent(sent) ?? sent, true)).filter((v) => v !== '');
    if (present.length === 0) continue;
    if (present.length > 1) return { kind: 'malformed', location };
    return { kind: 'found', secret: present[0] as string, location };
  }
  return { kind: 'missing' };
}

/** Two copies of the credential's header hold something (or one list where one value goes): `malformed_key`. A symbol: no header value is it. */
const TWICE: unique symbol = Symbol('twice');

/**
 * The credential header's value as given once: where it was sent more than once, the one
 * copy that holds anything (filledCopy).
 */
function sentOnce(header: string | string[], reading: HeaderReading, rawHeaders: readonly string[] | undefined): string | undefined | typeof TWICE {
  // A list where one value goes (or none: what src/library.ts cannot read as a header) is not a header sent once.
  if (Array.isArray(header)) return header.length > 1 ? filledCopy(header) : TWICE;
  if (rawHeaders === undefined || !mayBeRepeated(reading, header) || headerCount(rawHeaders, reading.key) < 2) return header;
  return filledCopy(headerValues(rawHeaders, reading.key));
}

/**
 * Whether Node may have made one value of `header` sent more than once: it keeps the
 * first copy alone of some (FIRST_COPY_ONLY: `Authorization`, `Proxy-Authorization`, ...),
 * and joins the others with ", " (no key holds a `,`).
 */
function mayBeRepeated(reading: HeaderReading, header: string): boolean {
  return reading.firstCopyOnly || header.indexOf(',') !== -1;
}

/**
 * The one copy of a header sent more than once that holds anything: an empty one (or
 * only spaces) is absent, as a lone empty header is, and a key given beside it is given
 * once. undefined where no copy holds anything; TWICE where two do, whichever is a key.
 */
function filledCopy(copies: readonly string[]): string | undefined | typeof TWICE {
  let filled: string | undefined;
  for (const copy of copies) {
    if (trimmed(copy, false) === '') continue;
    if (filled !== undefined) return TWICE;
    filled = copy;
  }
  return filled;
}

/** The values of a header (lower-case name) in a raw header list, in the order sent. */
function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const candidate = rawHeaders[i] as string;
    if (candidate.length === name.length && (candidate === name || sameIgnoringCase(candidate, name))) values.push(rawHeaders[i + 1] as string);
  }
  return values;
}

/**
 * How many times a header (lower-case name) appears in a raw header list: Node keeps only
 * the first `Authorization` (and FIRST_COPY_ONLY's others) in `headers`, so a second one shows only here.
 */
export function headerCount(rawHeaders: readonly string[], name: string): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const candidate = rawHeaders[i] as string;
    if (candidate.length === name.length && (candidate === name || sameIgnoringCase(candidate, name))) count++;
  }
  return count;
}

/** `text` equals `lower` (lower case, a header name) but for the case of its letters; no copy made. */
function sameIgnoringCase(text: string, lower: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    // Upper-case ASCII letters compare as lower case; nothing else changes.
    if ((code >= 0x41 && code <= 0x5a ? code | 0x20 : code) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** `value` (already trimmed) read as `<scheme> <key>`, or as a bare key for scheme "none". */
function readHeaderValue(value: string, scheme: string): string | 'missing' | 'malformed' | typeof OTHER_SCHEME {
  if (scheme.length === 4 && scheme.toLowerCase() === 'none') return hasInnerSpace(value) ? 'malformed' : value;
  let end = 0;
  while (end < value.length && !isSpace(value.charCodeAt(end))) end++;
  // The scheme as configured (the usual case) is a prefix test; any other case is compared lower-cased.
  if (end !== scheme.length || !(value.startsWith(scheme) || value.slice(0, end).toLowerCase() === scheme.toLowerCase())) return OTHER_SCHEME;
  let start = end;
  while (start < value.length && isSpace(value.charCodeAt(start))) start++;
  if (start === value.length) return 'missing';
  const key = value.slice(start);
  return hasInnerSpace(key) ? 'malformed' : key;
}

/** A space or tab inside (the ends are trimmed already): two `indexOf`s cost less than a regular expression. */
function hasInnerSpace(text: string): boolean {
  return text.indexOf(' ') !== -1 || text.indexOf('\t') !== -1;
}

function isSpace(code: number): boolean {
  return code === SPACE || code === TAB;
}

/**
 * Without leading and trailing spaces and tabs, and with `lineBreaks` line breaks too (a
 * query value can hold them, a header value cannot). Most values have none: no copy then.
 * A loop: a regular expression for the trailing run was tried again from every space of a
 * long inner run (`+` is a space in a query), which took 0.2 s for 15 KB of them, before
 * any key was looked at.
 */
function trimmed(value: string, lineBreaks: boolean): string {
  let start = 0;
  let end = value.length;
  while (start < end && isBlank(value.charCodeAt(start), lineBreaks)) start++;
  while (end > start && isBlank(value.charCodeAt(end - 1), lineBreaks)) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

function isBlank(code: number, lineBreaks: boolean): boolean {
  return isSpace(code) || (lineBreaks && (code === LF || code === CR));
}

/**
 * Query parameters by decoded name, values as sent: `extractCredential` decodes the ones
 * it reads (one that cannot be decoded is taken as sent: a copy of the parameter all the
 * same, with a `%` no key has). A name that cannot be decoded yields no entry (removal
 * before forwarding reads it as PHP does: `credentialParamRemover`).
 */
function parseQuery(url: string): Map<string, string[]> {
  const params = new Map<string, string[]>();
  const start = url.indexOf('?');
  if (start === -1) return params;
  for (const pair of url.slice(start + 1).split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = decodeQueryComponent(eq === -1 ? pair : pair.slice(0, eq));
    if (name === undefined) continue;
    const sent = eq === -1 ? '' : pair.slice(eq + 1);
    const list = params.get(name);
    if (list) list.push(sent);
    else params.set(name, [sent]);
  }
  return params;
}

/**
 * The request target with every configured credential query parameter removed, and every
 * parameter an upstream may read as one (`API_KEY`, `api.key`, `api_key[]`: readAsName),
 * other parameters byte-for-byte as the client sent them. Used for logs; forwarding drops
 * keys in other parameters too (`forwardedTargetOf`).
 *
 * Parameters are read from `&`-separated pairs only (as browsers and URLSearchParams do),
 * but removed after a `;` as well: an upstream that also splits on `;` (Python's
 * `parse_qs` before 3.9.2, Go before 1.17, some Java and PHP set-ups) would read the
 * key in `?a=1;apikey=…` even though keygate took it from the header.
 */
export function withoutCredentialParams(url: string, locations: readonly CredentialLocation[], replacement?: string): string {
  let remover = removers.get(locations);
  if (remover === undefined) {
    remover = credentialParamRemover(locations);
    removers.set(locations, remover);
  }
  return remover(url, replacement);
}

/** The remover of each profile's credential locations (a reload's new profile gets its own): the library and the access log ask on every request. */
const removers = new WeakMap<readonly CredentialLocation[], (url: string, replacement?: string) => string>();

/**
 * `withoutCredentialParams` for one profile's credential locations, the parameter names
 * worked out once (forwarding calls it on every request): where no credential is read
 * from the query, the target is passed on as it is, unread.
 */
export function credentialParamRemover(locations: readonly CredentialLocation[]): (url: string, replacement?: string) => string {
  const names = credentialParamNames(locations);
  if (names.size === 0) return (url) => url;
  return (url, replacement) => withoutParams(url, names, replacement, undefined);
}

/**
 * The request target as the upstream receives it (and the library's `result.url`): without
 * the credential parameters (`credentialParamRemover`), and without any parameter that
 * holds a key anywhere in it, although keygate does not read keys from it: whole
 * (`?api_key=<key>` from a client that also sent it in the header) or inside a longer
 * value (`?q=Bearer%20<key>`, `?filter=key:<key>`, `?x=<key>,abc`), or in its name, which
 * would reach the upstream's logs in clear. A key is one the format recognises (its
 * checksum or prefix; any mode, anyone's), or the very key the request presented, which
 * is all a bare hex key can be told by (read from `headers` only where the query may
 * hold a key), or a key of keygate's that lost its prefix (`?token=<the rest>`), by its
 * checksum (`scrubBodies`, as logs find it). All are looked for as sent and
 * percent-decoded (`inAnyDecoding`). Other parameters go byte for byte. A target without a
 * query string is passed on unread, and one whose query holds nothing a key could be (no
 * prefix: `mayHold`; no run of letters and digits a key body long) costs those two scans
 * alone, and the credential parameters' removal where keys are read from the query.
 * Given `forwarded` (the credential the request presented, where `auth.forwardCredential`
 * passes it on), the one pair it was read from goes as sent; all else as above.
 */
export function forwardedTargetOf(
  locations: readonly CredentialLocation[],
  keyFormat: KeyRecognition,
): (url: string, headers: RequestView['headers'], rawHeaders?: readonly string[], forwarded?: FoundCredential) => string {
  const names = credentialParamNames(locations);
  // A key body that lost its prefix (`?token=<the rest>`): the prefix is public, so the rest is the whole secret; found by its checksum, as logs find it.
  const holdsBody = (layer: string): boolean => keyFormat.scrubBodies(layer, '') !== layer;
  const mayHold = (layer: string): boolean => keyFormat.mayHold(layer) || holdsBody(layer);
  return (url, headers, rawHeaders, forwarded) => {
    const start = url.indexOf('?');
    if (start === -1) return url;
    // `auth.forwardCredential`: the parameter the key was read from goes as sent (only the gateway passes one).
    const keep = forwarded?.location.in === 'query' ? credentialPairTest(forwarded) : undefined;
    if (!inAnyDecoding(url.slice(start + 1), mayHold)) return names.size === 0 ? url : withoutParams(url, names, undefined, undefined, keep);
    let presented: string | null | undefined = forwarded?.secret;
    const holds = (layer: string): boolean => {
      if (holdsBody(layer)) return true;
      if (!keyFormat.mayHold(layer)) return false;
      if (keyFormat.recognisesWithin(layer)) return true;
      if (presented === undefined) {
        const credential = extractCredential(rawHeaders === undefined ? { headers, url } : { headers, url, rawHeaders }, locations);
        presented = credential.kind === 'found' ? credential.secret : null;
      }
      return presented !== null && layer.includes(presented);
    };
    return withoutParams(url, names, undefined, (part) => inAnyDecoding(part, holds), keep);
  };
}

/**
 * Whether a query pair is the one `credential` (read from the query) was read from: its
 * name decodes to the configured one exactly (a look-alike, `APIKEY` or `api.key`, is not:
 * an upstream reading it could be handed another key than the one keygate judged), its
 * value to the key. Empty ones of the name are not kept either: an upstream that takes
 * the last of a repeated parameter would read one of them instead.
 */
function credentialPairTest(credential: FoundCredential): (pair: string) => boolean {
  const { name } = credential.location;
  return (pair) => {
    const eq = pair.indexOf('=');
    if (eq === -1 || decodeQueryComponent(pair.slice(0, eq)) !== name) return false;
    const sent = pair.slice(eq + 1);
    return trimmed(decodeQueryComponent(sent) ?? sent, true) === credential.secret;
  };
}

/** `forwardedTargetOf` for a profile, made once per credential locations (a reload's new profile gets its own): the library asks on every request. */
export function forwardedTarget(url: string, request: Pick<RequestView, 'headers' | 'rawHeaders'>, locations: readonly CredentialLocation[], keyFormat: KeyRecognition): string {
  let made = forwardedTargets.get(locations);
  if (made === undefined || made.keyFormat !== keyFormat) {
    made = { keyFormat, target: forwardedTargetOf(locations, keyFormat) };
    forwardedTargets.set(locations, made);
  }
  return made.target(url, request.headers, request.rawHeaders);
}

const forwardedTargets = new WeakMap<readonly CredentialLocation[], { keyFormat: KeyRecognition; target: ReturnType<typeof forwardedTargetOf> }>();

/** What tells a key from any other text (src/keys/format.ts). */
type KeyRecognition = Pick<KeyFormat, 'recognisesWithin' | 'mayHold' | 'scrubBodies'>;

/**
 * Whether a request header's value holds a key, so that it is not forwarded (`Cookie`,
 * `Referer: …?k=<key>`, `X-Api-Key`, a Host the X-Forwarded-Host would repeat): it would
 * reach the upstream's logs in clear, as a key in the query would (`forwardedTargetOf`).
 * A key is found as there: one the format recognises after one of its prefixes (any mode,
 * anyone's), or `own`, the caller's key, which is all a key without a prefix (`bareKeys`)
 * is told by; as sent or percent-decoded. Every request header is asked, so a value in
 * which none of the prefixes, no `own` and no `%` is found costs those `indexOf`s alone:
 * no regular expression, no copy.
 */
export function headerKeyTest(keyFormat: HeaderKeyRecognition): (value: string, own: OwnKey) => boolean {
  const { prefixes } = keyFormat;
  const hasPrefix = (text: string): boolean => {
    for (const prefix of prefixes) if (text.indexOf(prefix) !== -1) return true;
    return false;
  };
  // What every prefix begins with (`sk_` of `sk_live_` and `sk_test_`): one `indexOf` for
  // all of them where a value holds none (the usual case); each prefix is looked for after.
  const shared = sharedStart(prefixes);
  const mayHavePrefix = shared.length >= MIN_SHARED_START ? (text: string) => text.indexOf(shared) !== -1 : hasPrefix;
  return (value, ownKey) => {
    const given = typeof ownKey === 'function' ? undefined : ownKey;
    if (!mayHavePrefix(value) && value.indexOf('%') === -1 && (given === undefined || value.indexOf(given) === -1)) return false;
    const own = typeof ownKey === 'function' ? ownKey() : ownKey;
    return inAnyDecoding(value, (layer) => (hasPrefix(layer) && keyFormat.recognisesWithin(layer)) || (own !== undefined && layer.includes(own)));
  };
}

/**
 * Characters after a prefix that make a header's name hold a key (`X-sk_live_<key>`):
 * fewer than any key's random part has (128 bits are 22 base62 or 32 hex digits), more
 * than a word after a prefix in a name of an API's own (`X-sk_live_docs`).
 */
const NAME_KEY_RUN = 16;
/** NAME_KEY_RUN characters of a key (base62, hex, base64url, unreserved: `.` and `~` may be in a name), lower-cased. */
const NAME_KEY_CHARS = new RegExp(`^[a-z0-9_.~-]{${NAME_KEY_RUN}}$`);

/**
 * Whether a request header's name holds a key (then the header is not forwarded): a name
 * comes in any case (fetch and HTTP/2 send names lower-cased, Node reads them so), which
 * a key's checksum does not survive, so a name is judged by a prefix of the profile's in
 * any case where it begins a key (KEY_START: not after a letter or digit) followed by a
 * key-long run of a key's characters, as sent or percent-decoded;
 * for keys without a prefix, by the caller's own key in any case. `name` lower-cased, as
 * Node gives it.
 */
export function headerNameKeyTest(keyFormat: Pick<KeyFormat, 'prefixes' | 'issuedPrefixes'>): (name: string, own: OwnKey) => boolean {
  const prefixes = keyFormat.prefixes.map((prefix) => prefix.toLowerCase());
  /** keygate's own prefixes (its keys' checksums do not survive a lower-cased name): a key's start wherever they are, `x-a<sk_live_ key>` too. */
  const issued = new Set(keyFormat.issuedPrefixes.map((prefix) => prefix.toLowerCase()));
  const shared = sharedStart(prefixes);
  const mayHavePrefix = (text: string): boolean => (shared !== '' ? text.indexOf(shared) !== -1 : prefixes.some((prefix) => text.indexOf(prefix) !== -1));
  /**
   * A prefix where it begins a key, followed by NAME_KEY_RUN of a key's characters: keygate's
   * own anywhere, an imported one not inside a word (`x-network_configuration.settings` holds `rk_`).
   */
  const prefixedRun = (text: string): boolean =>
    prefixes.some((prefix) => {
      const anywhere = issued.has(prefix);
      for (let at = text.indexOf(prefix); at !== -1; at = text.indexOf(prefix, at + 1)) {
        if ((anywhere || beginsKey(text, at)) && NAME_KEY_CHARS.test(text.slice(at + prefix.length, at + prefix.length + NAME_KEY_RUN))) return true;
      }
      return false;
    });
  // A name shorter than a prefix and a key-long run cannot hold one, even %-escaped
  // (decoding only shortens it): most names are, so most are judged by their length alone.
  const shortest = prefixes.length > 0 ? Math.min(...prefixes.map((prefix) => prefix.length)) + NAME_KEY_RUN : Infinity;
  return (name, ownKey) => {
    const given = typeof ownKey === 'function' ? undefined : ownKey;
    if (name.length < shortest && (given === undefined || name.length < given.length)) return false;
    const givenLower = given?.toLowerCase();
    if (!mayHavePrefix(name) && name.indexOf('%') === -1 && (givenLower === undefined || name.indexOf(givenLower) === -1)) return false;
    const ownLower = typeof ownKey === 'function' ? ownKey()?.toLowerCase() : givenLower;
    return inAnyDecoding(name, (layer) => {
      const lower = layer.toLowerCase();
      return prefixedRun(lower) || (ownLower !== undefined && lower.includes(ownLower));
    });
  };
}


/**
 * The caller's key, for `headerKeyTest` and `headerNameKeyTest`: given (a key without a
 * prefix has nothing else to be told by, so every header is searched for it), or read
 * only where a header holds one of the prefixes or a `%` (a prefixed key holds its
 * prefix): a prefix that continues a word is no key's start (KEY_START), but the key the
 * caller presented is known exactly and is no word, whatever is before it.
 */
export type OwnKey = string | undefined | (() => string | undefined);

/** The shortest start of prefixes worth looking for in their place: a letter and a `_`, say. */
const MIN_SHARED_START = 2;

/** The longest text every one of `texts` begins with ('' for none, or no texts). */
function sharedStart(texts: readonly string[]): string {
  const [first, ...others] = texts;
  if (first === undefined) return '';
  let length = first.length;
  for (const text of others) {
    while (length > 0 && !text.startsWith(first.slice(0, length))) length--;
  }
  return first.slice(0, length);
}

/** What `headerKeyTest` needs of a key format. */
type HeaderKeyRecognition = Pick<KeyFormat, 'recognisesWithin' | 'prefixes'>;

/**
 * The credential parameters' names as an upstream may read them: also their look-alikes
 * (see readAsName): keygate reads `api_key` only, but an upstream may read a copy sent as
 * `API_KEY` (ASP.NET Core), `api.key` or `api_key[]` (PHP) as it.
 */
function credentialParamNames(locations: readonly CredentialLocation[]): ReadonlySet<string> {
  return new Set(locations.filter((l) => l.in === 'query').map((l) => readAsName(l.name)));
}

/**
 * `url` without the parameters `names` (as readAsName reads them), or for logs with their
 * values `replacement`, and for forwarding without the parts `holdsKey` finds a key in.
 * Parameters named like an API's own secrets are hidden from logs by
 * gateway/secret-params.ts, which scans by rules of its own (said there).
 */
function withoutParams(url: string, names: ReadonlySet<string>, replacement: string | undefined, holdsKey: ((part: string) => boolean) | undefined, keep?: (pair: string) => boolean): string {
  const start = url.indexOf('?');
  if (start === -1) return url;
  const kept: string[] = [];
  let changed = false;
  for (const pair of url.slice(start + 1).split('&')) {
    // The credential's own pair, forwarded as sent (`auth.forwardCredential`).
    if (keep?.(pair) === true) {
      kept.push(pair);
      continue;
    }
    // A credential parameter goes whole, `;`s and all (keygate read `apikey=S;b` as the key
    // `S;b`); in any other pair, a credential, or a part that holds a key, after a `;` goes
    // (no key holds a `;`: what comes before it stays).
    const whole = credentialPart(pair, names, replacement);
    const part = whole !== pair || !pair.includes(';') ? whole : pair.split(';').flatMap((p) => credentialPart(p, names, replacement) ?? []).join(';');
    const forwarded = part !== undefined && holdsKey !== undefined ? withoutKeyParts(part, holdsKey) : part;
    if (forwarded !== pair) changed = true;
    // A pair that held only credentials (`;apikey=…`) is left out whole, not kept empty.
    if (forwarded !== undefined && (forwarded !== '' || pair === '')) kept.push(forwarded);
  }
  // Nothing taken out (the usual case): the target as sent, not a copy put back together.
  if (!changed) return url;
  const path = url.slice(0, start);
  return kept.length > 0 ? `${path}?${kept.join('&')}` : path;
}

/**
 * `pair` as forwarded: as it is, with its value replaced (for logs), or undefined (left
 * out) for a credential parameter or a look-alike.
 */
function credentialPart(pair: string, names: ReadonlySet<string>, replacement: string | undefined): string | undefined {
  if (names.size === 0) return pair;
  const eq = pair.indexOf('=');
  const sent = eq === -1 ? pair : pair.slice(0, eq);
  if (names.has(readAsName(decodeQueryComponent(sent) ?? decodedLeniently(sent)))) return replacement === undefined ? undefined : `${sent}=${replacement}`;
  return pair;
}

/** `pair` without the parts (between `;`s; the whole pair where it has none) that hold a key, name or value: undefined where nothing is left. */
function withoutKeyParts(pair: string, holdsKey: (part: string) => boolean): string | undefined {
  if (!pair.includes(';')) return holdsKey(pair) ? undefined : pair;
  const parts = pair.split(';');
  const kept = parts.filter((part) => !holdsKey(part));
  if (kept.length === parts.length) return pair;
  return kept.length > 0 ? kept.join(';') : undefined;
}

/**
 * Whether `test` holds for `text` as sent or percent-decoded, once or up to KEY_DECODINGS
 * times (`sk%5Flive…`, escaped again `sk%255Flive…`). Only escapes of ASCII characters are
 * decoded: a key has no others, and a stray `%E9` beside one does not hide it. A `+` is
 * left as sent: it is a space, and no key holds either.
 */
function inAnyDecoding(text: string, test: (layer: string) => boolean): boolean {
  let layer = text;
  for (let hop = 0; ; hop++) {
    if (test(layer)) return true;
    if (hop === KEY_DECODINGS || layer.indexOf('%') === -1) return false;
    const decoded = asciiDecoded(layer);
    if (decoded === layer) return false;
    layer = decoded;
  }
}

/** What makes PHP read a parameter's name as another (a NUL, a space, `.`, `[`), or leaves letters whose case lower-casing alone does not fold (non-ASCII). */
const READ_AS_ANOTHER = /[\0 .[\u0080-\uffff]/;

/**
 * A query parameter's name (decoded) as upstreams may read it, to find the copies of a
 * credential parameter that they would take for it. As PHP reads names into `$_GET`: up to
 * a NUL, without leading spaces, with spaces and `.` as `_` (`api.key`, `api+key` and
 * `api%20key` are `api_key`), `name[…]` as `name` (`api_key[]`, `api_key[0]`: an array),
 * and an unclosed `[` as `_` (`api[key`); and in any case of its letters (ASP.NET Core reads
 * names so; Unicode letters that upper-case to ASCII ones too). Only removal uses it: the
 * key is read from the configured name alone. A name without any of those characters (the
 * usual case) costs one test and a lower-casing.
 */
function readAsName(name: string): string {
  if (!READ_AS_ANOTHER.test(name)) return name.toLowerCase();
  const nul = name.indexOf('\0');
  const text = nul === -1 ? name : name.slice(0, nul);
  let start = 0;
  while (text.charCodeAt(start) === SPACE) start++;
  let read = '';
  for (let i = start; i < text.length; i++) {
    const char = text[i] as string;
    if (char === '[') {
      // `name[…]` is an array of `name`; a `[` no `]` closes is `_`, and so are the spaces, dots and `[`s after it.
      if (text.indexOf(']', i + 1) === -1) read += `_${text.slice(i + 1).replace(/[ .[]/g, '_')}`;
      break;
    }
    read += char === ' ' || char === '.' ? '_' : char;
  }
  return read.toUpperCase().toLowerCase();
}

/**
 * A name that is not valid percent-encoding, decoded as PHP decodes it: each escape as its
 * byte (a character of that code), any other `%` as it is, `+` as a space.
 */
function decodedLeniently(text: string): string {
  let decoded = '';
  for (let i = 0; i < text.length; i++) {
    const byte = escapedByte(text, i);
    if (byte === -1) {
      decoded += text[i] === '+' ? ' ' : text[i];
    } else {
      decoded += String.fromCharCode(byte);
      i += 2;
    }
  }
  return decoded;
}

/** Header names (lower case) that carry credentials, to drop before forwarding. */
export function credentialHeaderNames(locations: readonly CredentialLocation[]): string[] {
  return locations.filter((l) => l.in === 'header').map((l) => l.name.toLowerCase());
}
