/**
 * The identity headers keygate adds to each forwarded request: their names, fixed at
 * start-up from `identityHeaders.prefix` and `identityHeaders.names`, and the one value
 * that is free text (the account's name), made a valid header value.
 *
 * @example
 * identityHeaderNames({ prefix: 'X-Keygate-', names: { account: 'X-Consumer-ID', plan: false, accountName: 'X-Consumer-Username' } })
 * // { account: 'x-consumer-id', key: 'x-keygate-key', mode: 'x-keygate-mode', scopes: 'x-keygate-scopes', plan: undefined, accountName: 'x-consumer-username' }
 */

/** The identity fields, in the order their headers are written. */
export const IDENTITY_FIELDS = ['account', 'key', 'mode', 'scopes', 'plan', 'accountName'] as const;
export type IdentityField = (typeof IDENTITY_FIELDS)[number];

/** What follows the prefix for each field written by default; `accountName` has no default header (it is added only where named). */
const AFTER_PREFIX: Record<IdentityField, string | undefined> = { account: 'Account', key: 'Key', mode: 'Mode', scopes: 'Scopes', plan: 'Plan', accountName: undefined };

/** `identityHeaders.names`: a field's header name, or false for none. */
export type IdentityHeaderNamesInput = Partial<Record<IdentityField, string | false>>;

/**
 * Each field's header name as keygate writes it (lower case: header names are
 * case-insensitive, HTTP/2 allows nothing else, and undici takes a lower-case name
 * without copying it), or undefined where the header is left out.
 */
export function identityHeaderNames(identityHeaders: { prefix: string; names?: IdentityHeaderNamesInput | undefined }): Record<IdentityField, string | undefined> {
  const prefix = identityHeaders.prefix.toLowerCase();
  const named = identityHeaders.names ?? {};
  const names = {} as Record<IdentityField, string | undefined>;
  for (const field of IDENTITY_FIELDS) {
    const chosen = named[field];
    const after = AFTER_PREFIX[field];
    names[field] = chosen === false ? undefined : chosen !== undefined ? chosen.toLowerCase() : after === undefined ? undefined : `${prefix}${after.toLowerCase()}`;
  }
  return names;
}

/** U+FFFD, percent-encoded. */
const REPLACEMENT = '%EF%BF%BD';

/** Printable ASCII but `%`, which an account name is sent as (a space inside it too). */
const PLAIN_NAME = /^[\x21-\x24\x26-\x7e](?:[\x20-\x24\x26-\x7e]*[\x21-\x24\x26-\x7e])?$/;

/**
 * An account's name as a header value. Names are free text (any Unicode, control
 * characters, spaces at either end), and a header value may hold only visible ASCII,
 * spaces and tabs, without spaces at its ends (which readers strip). A name of printable
 * ASCII without `%` and without a space at either end is sent as it is (`Acme Corp`);
 * in any other every character outside that set, and every `%`, is written as the
 * percent-encoded bytes of its UTF-8 (`Caf%C3%A9`, `100%25`, `%20Acme`), the escaping of
 * RFC 8187 and RFC 3986: `decodeURIComponent` (JavaScript) or `urllib.parse.unquote`
 * (Python) gives the name back. A lone surrogate (not valid UTF-16) is sent as U+FFFD.
 */
export function accountNameValue(name: string): string {
  if (PLAIN_NAME.test(name)) return name;
  let out = '';
  const last = name.length - 1;
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if ((code > 0x20 && code < 0x7f && code !== 0x25) || (code === 0x20 && i > 0 && i < last)) out += name[i];
    else if (code < 0x80) out += `%${code.toString(16).toUpperCase().padStart(2, '0')}`;
    else if (code >= 0xd800 && code <= 0xdfff) {
      // A surrogate pair is one character (four UTF-8 bytes); a lone half is none, and stands as U+FFFD.
      const low = name.charCodeAt(i + 1);
      const paired = code <= 0xdbff && low >= 0xdc00 && low <= 0xdfff;
      out += paired ? encodeURIComponent(name.slice(i, i + 2)) : REPLACEMENT;
      if (paired) i++;
    } else out += encodeURIComponent(name[i] as string);
  }
  return out;
}
