/**
 * A key sent where the profile does not read it: `X-API-Key: <key>` to an API that reads
 * `Authorization`, `?api_key=<key>` to one that reads `?token=`, `Cookie: api_key=<key>`.
 * Such a request is refused `missing_key` as one without any key (its answer is the API's,
 * fixed by its documents); this finds where the key went, so that the log can say so (the
 * gateway's line; the library's `misplaced`). Only `missing_key` refusals come here: an
 * admitted request is never looked at.
 *
 * A value counts where the key format would take it before any lookup (`check`: prefix,
 * length, alphabet, checksum; nothing hashed, the store never asked), alone or after a
 * scheme word (`Bearer <key>`). Only where it is, never the value, is returned.
 *
 * A `Cookie` header is read as its pairs (`name=value; …`, a value in double quotes taken
 * without them), not as one value: a key there is named by its cookie. A query pair
 * without `=` (`?<key>`) is all value, named '': its text never becomes a name.
 *
 * A value a format takes by its shape alone (a bare hex key, an imported key without a
 * prefix: no checksum, no prefix) may as well be an id or a hash: a SHA-1 is 40 hex
 * digits. Such a value is not counted where ids and hashes are well known to go: the
 * headers of CARRIES_IDS and any whose name ends in `-id` (`X-Request-Id`,
 * `X-Correlation-Id`) or CSRF/XSRF (`X-CSRF-Token`), nor in a cookie whose name says
 * neither key nor token (a session id) or names CSRF/XSRF (`XSRF-TOKEN`, `csrftoken`). A key with a checksum or a prefix is counted there too: nothing else has one.
 * Query parameters are not told apart (`?commit=<sha1>` may be named).
 *
 * The work is bounded whatever the request holds: the first MOST_PLACES headers, cookie
 * pairs and query parameters, and values no longer than the format's longest key and a
 * scheme word.
 *
 * @example
 * misplacedKey({ url: '/v1/x?api_key=sk_live_…', rawHeaders: ['Host', 'x'] }, keyFormat);
 * // { in: 'query', name: 'api_key' }
 */
import type { CredentialLocation } from '../config/schema.js';
import type { KeyFormat } from '../keys/format.js';
import { decodeQueryComponent } from '../gateway/percent.js';
import { withoutKeys } from '../keys/redact.js';

/**
 * Where a key was found: a header's name as sent, a cookie's name as sent, or a query
 * parameter's name, decoded ('' for a cookie or a parameter without `=`: `?<key>`);
 * as a log may show it (anything shaped like a key in it hidden, at most MOST_NAME_LENGTH
 * characters).
 */
export interface MisplacedKey {
  in: 'header' | 'cookie' | 'query';
  name: string;
}

/** Headers, cookie pairs (of all `Cookie` headers together) and query parameters looked at: the first this many of each. */
export const MOST_PLACES = 64;
/** The longest name returned: a longer one is cut short, with `…`. */
export const MOST_NAME_LENGTH = 64;
/** Room for a scheme word and its space before a key (`Bearer `, `ApiKey `). */
const SCHEME_ROOM = 16;
/** The longest escaped text one character of a value decodes from (`%E2%82%AC`: 9 for 1; any key character: 3). */
const ESCAPED_CHARACTER = 3;
/**
 * Headers that carry ids and hashes (lower case), beside any named `…-id`: entity tags,
 * trace context (W3C, B3, cloud vendors'), digests, idempotency keys. A value taken by
 * its shape alone is no key there (see the module's comment).
 */
export const CARRIES_IDS: ReadonlySet<string> = new Set([
  'etag',
  'if-match',
  'if-none-match',
  'if-range',
  'traceparent',
  'tracestate',
  'baggage',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'sentry-trace',
  'x-cloud-trace-context',
  'x-amz-id-2',
  'x-amz-content-sha256',
  'digest',
  'content-digest',
  'repr-digest',
  'content-md5',
  'idempotency-key',
  'x-idempotency-key',
]);
const ID_SUFFIX = '-id';
/** A cookie name that says it holds a key (`api_key`, `apikey`, `access_token`): where a value taken by its shape alone counts. */
const NAMES_A_KEY = /key|token/i;
/** A header or cookie of a form's anti-forgery token (`X-CSRF-Token`, `XSRF-TOKEN`, `csrftoken`): often hex, never an API key. */
const NAMES_A_FORGERY_TOKEN = /csrf|xsrf/i;
/** The header whose pairs are looked at one by one, lower case. */
const COOKIE = 'cookie';
/** A scheme word (an HTTP token), spaces or tabs, and the value after them. */
const AFTER_SCHEME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+[ \t]+([^ \t]+)$/;

/** What is asked of the key format: its check before any lookup, and how long a key may be. */
export type KeyShape = Pick<KeyFormat, 'check' | 'recognises' | 'longest' | 'scrub' | 'scrubBodies'>;

/**
 * The first header (or cookie in it), else the first query parameter, among the first
 * MOST_PLACES of each, whose value is a key of this format: where a client put its key
 * instead of where the profile reads one. Undefined where there is none.
 */
export function misplacedKey(request: { url: string; rawHeaders: readonly string[] }, keyFormat: KeyShape): MisplacedKey | undefined {
  const longest = keyFormat.longest + SCHEME_ROOM;
  const { rawHeaders } = request;
  const headerEnd = Math.min(rawHeaders.length, MOST_PLACES * 2);
  const cookies = { read: 0 };
  for (let i = 0; i + 1 < headerEnd; i += 2) {
    const name = rawHeaders[i] as string;
    const value = rawHeaders[i + 1] as string;
    if (name.length === COOKIE.length && name.toLowerCase() === COOKIE) {
      const cookie = cookieHoldingKey(value, cookies, longest, keyFormat);
      if (cookie !== undefined) return { in: 'cookie', name: loggable(cookie, keyFormat) };
      continue;
    }
    const found = keyIn(value, longest, keyFormat);
    if (found !== undefined && (keyFormat.recognises(found) || !carriesIds(name))) return { in: 'header', name: loggable(name, keyFormat) };
  }
  const { url } = request;
  let at = url.indexOf('?');
  for (let read = 0; at !== -1 && read < MOST_PLACES; read++) {
    const start = at + 1;
    const end = url.indexOf('&', start);
    at = end;
    const pair = url.slice(start, end === -1 ? undefined : end);
    const eq = pair.indexOf('=');
    // A pair without `=` (`?<key>`) is all value: its name is '', never the pair itself.
    const sent = eq === -1 ? pair : pair.slice(eq + 1);
    if (sent === '' || sent.length > longest * ESCAPED_CHARACTER) continue;
    const value = decodeQueryComponent(sent);
    if (value === undefined || keyIn(value, longest, keyFormat) === undefined) continue;
    if (eq === -1) return { in: 'query', name: '' };
    const name = pair.slice(0, eq);
    return { in: 'query', name: loggable(decodeQueryComponent(name) ?? name, keyFormat) };
  }
  return undefined;
}

/**
 * The name of the first cookie among `header`'s pairs whose value is a key, counting the
 * pairs read in `cookies` (MOST_PLACES for all `Cookie` headers together). A pair without
 * `=` is a cookie without a name (`''`), as browsers take it.
 */
function cookieHoldingKey(header: string, cookies: { read: number }, longest: number, keyFormat: KeyShape): string | undefined {
  for (let start = 0; start !== -1 && cookies.read < MOST_PLACES; cookies.read++) {
    const end = header.indexOf(';', start);
    const pair = header.slice(start, end === -1 ? undefined : end);
    start = end === -1 ? -1 : end + 1;
    const eq = pair.indexOf('=');
    let value = (eq === -1 ? pair : pair.slice(eq + 1)).trim();
    if (value.length > longest + 2) continue;
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    const found = keyIn(value, longest, keyFormat);
    if (found === undefined) continue;
    const name = eq === -1 ? '' : pair.slice(0, eq).trim();
    if (keyFormat.recognises(found) || (NAMES_A_KEY.test(name) && !NAMES_A_FORGERY_TOKEN.test(name))) return name;
  }
  return undefined;
}

/** The key `value` (at most `longest` characters) is, with blanks around it, or after a scheme word; undefined where it is none. */
function keyIn(value: string, longest: number, keyFormat: KeyShape): string | undefined {
  if (value.length > longest) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (keyFormat.check(text).ok) return text;
  const afterScheme = AFTER_SCHEME.exec(text)?.[1];
  return afterScheme !== undefined && keyFormat.check(afterScheme).ok ? afterScheme : undefined;
}

/** Whether a header of this name is well known to carry ids, hashes or anti-forgery tokens (CARRIES_IDS, a name ending in `-id`, one naming CSRF or XSRF). */
function carriesIds(name: string): boolean {
  const lower = name.toLowerCase();
  return CARRIES_IDS.has(lower) || lower.endsWith(ID_SUFFIX) || NAMES_A_FORGERY_TOKEN.test(lower);
}

/** A name the client chose, as a log may show it: a key in it hidden (`?<key>=1` is a name), cut short past MOST_NAME_LENGTH. */
function loggable(name: string, keyFormat: KeyShape): string {
  const hidden = withoutKeys(keyFormat, name);
  return hidden.length > MOST_NAME_LENGTH ? `${hidden.slice(0, MOST_NAME_LENGTH - 1)}…` : hidden;
}

/**
 * A key sent in a header the profile reads, under another scheme than the profile's:
 * `Token <key>` or a bare key where `Bearer <key>` goes, `Bearer <key>` where the key goes
 * bare. Such a request is refused `malformed_key` (docs/authentication.md), whose answer
 * says "invalid key" although the key may be a good one; this says which scheme came, so
 * that the log can say so. `scheme` is the word sent (cut and hidden as a name is), `''`
 * for none.
 */
export interface KeyUnderOtherScheme {
  in: 'header';
  name: string;
  scheme: string;
  /** The key was in quotes (`Bearer "<key>"`, as pasted from a .env or JSON file), under the profile's own scheme or none. */
  quoted?: true;
}

/** A key of this format in double or single quotes, as a value pasted from a .env or JSON file keeps them. */
function isQuotedKey(text: string, keyFormat: KeyShape): boolean {
  const quote = text[0];
  return (quote === '"' || quote === "'") && text.length > 2 && text.endsWith(quote) && keyFormat.check(text.slice(1, -1)).ok;
}

/**
 * The first header among `locations` that holds a key of this format (its check before any
 * lookup) under another scheme than the location's; undefined where none does. Only the
 * first copy of each header is read, and only a value no longer than the longest key and
 * a scheme word.
 */
export function keyUnderOtherScheme(rawHeaders: readonly string[], locations: readonly CredentialLocation[], keyFormat: KeyShape): KeyUnderOtherScheme | undefined {
  const longest = keyFormat.longest + SCHEME_ROOM;
  for (const location of locations) {
    if (location.in !== 'header') continue;
    const lower = location.name.toLowerCase();
    let value: string | undefined;
    for (let i = 0; i + 1 < rawHeaders.length && i < MOST_PLACES * 2; i += 2) {
      if ((rawHeaders[i] as string).toLowerCase() === lower) {
        value = rawHeaders[i + 1] as string;
        break;
      }
    }
    if (value === undefined || value.length > longest) continue;
    const text = value.trim();
    const bare = location.scheme.toLowerCase() === 'none';
    if (!bare && keyFormat.check(text).ok) return { in: 'header', name: location.name, scheme: '' };
    const sent = AFTER_SCHEME.exec(text);
    const word = sent?.[0].split(/[ \t]/)[0] ?? '';
    const sameScheme = sent !== null && !bare && word.toLowerCase() === location.scheme.toLowerCase();
    // Where the key goes, but in quotes: the scheme is right, the quotes are not.
    if (isQuotedKey(bare ? text : sameScheme ? (sent[1] as string) : '', keyFormat)) return { in: 'header', name: location.name, scheme: bare ? '' : loggable(word, keyFormat), quoted: true };
    if (sent === null || sameScheme) continue;
    if (keyFormat.check(sent[1] as string).ok) return { in: 'header', name: location.name, scheme: loggable(word, keyFormat) };
  }
  return undefined;
}
