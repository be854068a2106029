/**
 * An API's own secrets in a logged request target: the values of query parameters named
 * like one (`password`, `access_token`, `X-Amz-Signature`, ...). Keys of the profile's
 * format are found by their shape (keys/redact.ts); these have none, only their name. The
 * upstream receives them as sent: they are the API's to read, and only what is logged
 * loses them.
 *
 * Its own scan, not auth/credential.ts's `withoutParams`, which replaces credential
 * parameters in the same logged target: the two rules differ. A secret's value is hidden
 * up to the next `&` (`?q=1;token=a;b=2` logs `?q=1;token=[REDACTED]`), a credential after
 * a `;` only up to the next `;` (`…;b=2` kept, as forwarding keeps it); and a secret's name
 * with no `=`, or nothing after it up to the `&`, hides nothing, where a credential
 * parameter's value is replaced all the same. One scanner would need a switch for each;
 * and this one reads a query without a secret's name in one regular-expression test, with
 * no split.
 */
import { REDACTED } from '../log.js';
import { asciiDecoded, decodeQueryComponent } from './percent.js';

/** Words that make a parameter's name a secret's wherever they are in it (`client_secret`, `refresh_token`, `X-Amz-Credential`). */
const SECRET_NAME_WORDS = [
  'password',
  'passwd',
  'secret',
  'token',
  'apikey',
  'api_key',
  'api-key',
  'access_key',
  'accesskey',
  'authorization',
  'credential',
  'private',
  'session',
  'signature',
] as const;

/**
 * Words too short to be looked for inside a name (`author`, `design`): a secret's name is
 * one of them, whole or as a part between other characters than letters and digits
 * (`sig`, `x-auth`, `auth_code`).
 */
const SECRET_NAME_PARTS = ['auth', 'sig'] as const;

/** Which parameters' values a profile's logs hide: the built-in names and those it adds (`log.redactQuery`). */
interface SecretParams {
  /** Whether a query may hold such a name at all, tested from its `?` on (`lastIndex`): a query without one is left unread. */
  readonly mayHold: RegExp;
  /** Whether a parameter's name, decoded, is a secret's. */
  isSecret(name: string): boolean;
}

const escaped = (word: string): string => word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const BUILT_IN = new RegExp(`${SECRET_NAME_WORDS.map(escaped).join('|')}|(?:^|[^a-z0-9])(?:${SECRET_NAME_PARTS.join('|')})(?:[^a-z0-9]|$)`, 'i');

/** The SecretParams of each list of added names (a reload's new profile gets its own): asked for on every request line. */
const byAdded = new WeakMap<readonly string[], SecretParams>();

/** The built-in names and `added` (matched whole, in any case). */
function secretParams(added: readonly string[]): SecretParams {
  let params = byAdded.get(added);
  if (params === undefined) {
    const names = new Set(added.map((name) => name.toLowerCase()));
    // A name with a `%` in it may be an escaped one (`pass%77ord`), read decoded; a `%` in a value (`q=a%20b`) is none.
    const mayHold = new RegExp([...[...SECRET_NAME_WORDS, ...SECRET_NAME_PARTS, ...names].map(escaped), '[?&;][^=&;%]*%'].join('|'), 'gi');
    params = { mayHold, isSecret: (name) => BUILT_IN.test(name) || (names.size > 0 && names.has(name.toLowerCase())) };
    byAdded.set(added, params);
  }
  return params;
}

/**
 * `target` with the value of each query parameter whose name is a secret's (built in, or
 * one of `added`: the profile's `log.redactQuery`) replaced by `[REDACTED]`, up to the
 * next `&`: a value with `;`s in it goes whole, and so does what follows a secret's name
 * after a `;` (`?a=1;password=…`), as an upstream that splits parameters at `;` reads it.
 * Names are read percent-decoded. A target without a query, or whose query holds none of
 * the names, is given back as it is, unread past that test.
 *
 * @example withoutSecretParams('/v1/a?password=hunter2&page=2', []) // '/v1/a?password=[REDACTED]&page=2'
 */
export function withoutSecretParams(target: string, added: readonly string[]): string {
  const query = target.indexOf('?');
  if (query === -1) return target;
  const params = secretParams(added);
  params.mayHold.lastIndex = query;
  if (!params.mayHold.test(target)) return target;
  let logged = '';
  let copied = 0;
  for (let pair = query + 1; pair <= target.length; ) {
    let end = target.indexOf('&', pair);
    if (end === -1) end = target.length;
    const value = secretValueAt(target, pair, end, params);
    if (value !== -1 && value < end) {
      logged += target.slice(copied, value) + REDACTED;
      copied = end;
    }
    pair = end + 1;
  }
  return copied === 0 ? target : logged + target.slice(copied);
}

const EQUALS = 0x3d;
const SEMICOLON = 0x3b;

/**
 * Where the secret's value in the pair `target[from, end)` starts (past its name's `=`),
 * or -1 where there is none. Read once, char by char, within the pair: a search for `;`
 * or `=` past its end would make a 16 KB query of thousands of pairs cost their square.
 */
function secretValueAt(target: string, from: number, end: number, params: SecretParams): number {
  let part = from;
  let eq = -1;
  for (let i = from; i <= end; i++) {
    const code = i === end ? SEMICOLON : target.charCodeAt(i);
    if (code === EQUALS && eq === -1) eq = i;
    else if (code === SEMICOLON) {
      if (eq !== -1 && params.isSecret(nameOf(target.slice(part, eq)))) return eq + 1;
      part = i + 1;
      eq = -1;
    }
  }
  return -1;
}

/** A parameter's name as sent, decoded as the upstream would (`+` a space); a broken escape (`%zz`) left, the others decoded. */
function nameOf(sent: string): string {
  return decodeQueryComponent(sent) ?? asciiDecoded(sent);
}
