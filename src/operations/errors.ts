import type { KeyFormat } from '../keys/format.js';
import type { KeyRecord, Store } from '../store/store.js';

/** Why an operator or member action was refused; the admin API maps `kind` to a status. */
export type OperationErrorKind = 'not_found' | 'invalid' | 'limit' | 'conflict' | 'forbidden';

/**
 * How a refusal names a key, which depends on who reads it: the CLI and admin API give
 * its id (what their commands take), the dashboard, whose members never see ids, its
 * name and display hint.
 */
export type KeyNaming = (key: Pick<KeyRecord, 'id' | 'name' | 'hint'>) => string;

/**
 * How a refusal says a key's moments, which depends on who reads it too: the CLI and admin
 * API to the second (`keyMomentsToTheSecond` in keys.ts), the dashboard to the minute, as
 * its pages show every other moment of a key. `stopped`: when it was revoked or expired
 * (truncated: never after it happened); `end`: when it stops, a time the refusal says to
 * wait for.
 */
export interface KeyMoments {
  stopped(ms: number): string;
  end(ms: number): string;
}

/**
 * A refusal worded without the value it is about: `field` is what the caller gave it in
 * (`scopes`, `meter`, `email`, `calls`, with `index`: the call's place in the list).
 */
export interface ValueFreeWording {
  field: string;
  index?: number;
  message: string;
}

export class OperationError extends Error {
  /**
   * `message` names keys (if any) for the CLI and admin API; `naming`, where it does,
   * words the same message with keys named another way (see `KeyNaming`), and their
   * moments, where it gives any, said another way (see `KeyMoments`).
   * `withoutValue`, where `message` repeats a value the caller typed (a path, a scope or
   * meter the profile does not name): the same refusal without it, for the CLI, whose
   * output stays in a terminal's scrollback or a CI log (a key pasted into the wrong option
   * would stay there too). The admin API and the dashboard answer `message`: the caller
   * sees their own input, in their own request or form.
   */
  constructor(
    readonly kind: OperationErrorKind,
    message: string,
    private readonly naming?: (name: KeyNaming, moments?: KeyMoments) => string,
    readonly withoutValue?: ValueFreeWording,
  ) {
    super(message);
    this.name = 'OperationError';
  }

  /** The message with the keys it names named by `name`, and their moments said by `moments`. */
  namingKeys(name: KeyNaming, moments?: KeyMoments): string {
    return this.naming?.(name, moments) ?? this.message;
  }
}

/** What a record id's prefix says it is (`src/ids.ts`). */
const ID_PREFIXES = { acc_: 'an account', key_: 'a key', mem_: 'a member', aud_: 'an audit entry' } as const;

/**
 * What keygate's own ids look like (`src/ids.ts`): a type prefix, then letters and digits,
 * no more of them than the longest (an audit entry's 29). A mistyped id (`acc_nope`) still
 * looks like one; a secret pasted where an id goes does not.
 */
const OWN_ID = /^(?:acc|key|mem|aud)_[0-9A-Za-z]{1,29}$/;

/** Whether `value` looks like an id keygate makes, and so may be repeated in a refusal. */
export function looksLikeOwnId(value: string): boolean {
  return OWN_ID.test(value);
}

/**
 * No such account or key. The id is repeated only when it looks like one of keygate's:
 * anything else sent as an id (a token or password pasted in the wrong field) is not sent
 * back, nor written to the CLI's output. An id of another kind (a key's id where an
 * account's goes, as `keygate accounts show key_…`) is said to be one: the likely slip,
 * which "no account" alone leaves to guess.
 */
export function notFound(what: 'account' | 'key', id: string): OperationError {
  const named = looksLikeOwnId(id) ? `no ${what} "${id}"` : `no such ${what}`;
  return new OperationError('not_found', `${named}${otherKind(what, id) || placeholder(what, id) || notAnId(what, id)}`);
}

/**
 * The docs write an id as `acc_…` (README: `keys create --account acc_…`); a command copied
 * as it stands sends that, and "no such account" alone does not say the id is still to be
 * filled in. Only the placeholder itself is repeated (it holds no secret).
 */
const PLACEHOLDER = /^(?:acc|key)_(?:…|\.\.\.)$/;

/** `: "acc_…" in the docs stands for an account's id; …` where `id` is that placeholder; else nothing. */
function placeholder(what: 'account' | 'key', id: string): string {
  if (!PLACEHOLDER.test(id)) return '';
  return what === 'account'
    ? `: "${id}" in the docs stands for an account's id (acc_ and 16 letters and digits): keygate accounts list, or GET /v1/accounts, shows them`
    : `: "${id}" in the docs stands for a key's id (key_ and 16 letters and digits): keygate keys list, or GET /v1/keys, shows them`;
}

/** Where to find an account by its name: what someone who gave a name instead of an id needs next. */
const ACCOUNT_BY_NAME = 'to find one by its name: keygate accounts list --search <name>, or GET /v1/accounts?q=<name>';

/**
 * `: accounts are named by their id, …` where `id` begins with no id's prefix at all (a
 * name, `keygate accounts show Acme`: the README's own "never by its name"); else nothing.
 */
function notAnId(what: 'account' | 'key', id: string): string {
  if (Object.keys(ID_PREFIXES).some((prefix) => id.startsWith(prefix))) return '';
  return what === 'account' ? `: accounts are named by their id, which begins acc_ (${ACCOUNT_BY_NAME})` : ': keys are named by their id, which begins key_ (keygate keys list, GET /v1/keys)';
}

/** `: that is a key's id; an account's begins acc_` where `id` is another kind's than `what`'s; else nothing. */
export function otherKind(what: 'account' | 'key' | 'member', id: string): string {
  const own = what === 'account' ? 'acc_' : what === 'key' ? 'key_' : 'mem_';
  const other = Object.entries(ID_PREFIXES).find(([prefix]) => prefix !== own && id.startsWith(prefix));
  return other === undefined ? '' : `: that is ${other[1]}'s id; ${ID_PREFIXES[own]}'s begins ${own}`;
}

export const OPERATION_STATUS: Record<OperationErrorKind, number> = {
  not_found: 404,
  invalid: 400,
  limit: 409,
  conflict: 409,
  forbidden: 403,
};

/** C0 and C1 control characters and DEL: line breaks, tabs, terminal escapes. */
const CONTROL = /\p{Cc}/u;
/**
 * Characters that change the direction text is shown in (U+202E makes "live" of "evil"):
 * a name would show as another in tables, pages and the audit log.
 */
const DIRECTION_CONTROL = /\p{Bidi_Control}/u;
/** Half of a UTF-16 pair without its other half: no character, stored as U+FFFD. */
const LONE_SURROGATE = /\p{Cs}/u;
/** A character a name shows: a letter, digit, mark of punctuation or symbol (not only spaces, zero-width or format characters). */
const SHOWS = /[\p{L}\p{N}\p{P}\p{S}]/u;

/** The latest time a date may be (4-digit years, well inside JavaScript's dates: every page and table can show it). */
export const LATEST_TIME = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** The earliest time a date may be: 1970-01-01 UTC (`0000-01-01` is a typing mistake, not an expiry). */
export const EARLIEST_TIME = 0;
/** The dates taken (EARLIEST_TIME to LATEST_TIME), as refusals say them. */
export const DATE_RANGE = 'from 1970-01-01 to 9999-12-31 (UTC)';
/** Why a date outside DATE_RANGE is refused: the words after the field's name (the admin API's schema puts `body.<field>: ` before them). */
export const OUTSIDE_DATE_RANGE = `the date must be ${DATE_RANGE}`;

/**
 * The refusal of a date outside DATE_RANGE, the same words on every surface, each naming
 * its own field: `--plan-expires` (the CLI), `body.planExpiresAt` (the admin API), `Plan ends`
 * (the dashboard's form).
 * @example outsideDateRange('--plan-expires') // '--plan-expires: the date must be from 1970-01-01 to 9999-12-31 (UTC)'
 */
export function outsideDateRange(field: string): string {
  return `${field}: ${OUTSIDE_DATE_RANGE}`;
}

/** Whether a time is in DATE_RANGE. */
export function inDateRange(ms: number): boolean {
  return ms >= EARLIEST_TIME && ms <= LATEST_TIME;
}

/** A time as given (`what`: "the plan's expiry"): a real one, in DATE_RANGE. */
export function checkedTime(what: string, ms: number): number {
  if (!Number.isFinite(ms)) throw new OperationError('invalid', `${what} is not a time`);
  if (!inDateRange(ms)) throw new OperationError('invalid', outsideDateRange(what));
  return ms;
}

/** What checking a name for keys needs: the key format, and the store and hash for keys told by no shape of their own. */
export interface NameChecking {
  keyFormat: Pick<KeyFormat, 'heldInName' | 'storedKeyCandidates'>;
  store: Pick<Store, 'keyHintsEndingIn' | 'storedKeyHashes'>;
  hashKey: (secret: string) => string;
}

/**
 * The most parts of a name hashed and looked up as the account's keys (about 1.5 ms of one
 * core). Only parts that begin and end as one of the account's keys does (its hint) are;
 * a name has that many only where it strings the account's keys' last four characters
 * together (100 characters of them: about 950 parts), never by chance.
 */
export const NAME_KEY_LOOKUPS_MOST = 1_000;

/**
 * A name as it is typed (`what`: "a key", "an account"): trimmed, not empty, at most
 * `max` characters, and without control characters, which would forge rows in the CLI's
 * tables or move an operator's terminal (a member names their own keys); nor a key: one
 * told by its shape, the key being imported (`importing`, not stored yet), or, for
 * imported keys without a prefix, which only the store can tell, one of the account's own
 * (`accountId`: the account named, or the key's; none for a new account or an unbound key).
 */
export async function checkedName(what: string, raw: string, max: number, rt: NameChecking, { accountId, importing }: { accountId?: string | null; importing?: string } = {}): Promise<string> {
  const name = raw.trim();
  if (name === '') throw new OperationError('invalid', `${what} needs a name`);
  if (name.length > max) throw new OperationError('invalid', `${what} name is at most ${max} characters`);
  if (CONTROL.test(name)) throw new OperationError('invalid', `${what} name cannot contain control characters (line breaks, tabs, escapes)`);
  if (DIRECTION_CONTROL.test(name)) throw new OperationError('invalid', `${what} name cannot contain text-direction controls (such as U+202E): it would show as another name`);
  if (LONE_SURROGATE.test(name)) throw new OperationError('invalid', `${what} name cannot contain half of a UTF-16 surrogate pair (it is no character)`);
  if (!SHOWS.test(name)) throw new OperationError('invalid', `${what} needs a name that shows: this one has only invisible characters (such as U+200B, a zero-width space)`);
  // Names are stored and shown as they are: a key pasted into one would be kept in clear.
  const holdsKey = new OperationError('invalid', `${what} name cannot contain an API key (it would be stored and shown in clear): name it after what it is for`);
  if (rt.keyFormat.heldInName(name) || (importing !== undefined && name.includes(importing))) throw holdsKey;
  // An imported key without a prefix has only a shape, which long words have too (`acme-industries.co.uk`), and
  // an imported prefix glued to a word (`prodrk_<key>`) is one as often as not (`network_configuration`): the
  // name holds one where the account has a key of one of those parts. Names are set rarely.
  if (accountId === undefined || accountId === null) return name;
  const candidates = rt.keyFormat.storedKeyCandidates(name);
  if (candidates.endings.length === 0) return name;
  // Hashing every part (3,655 in 100 characters of the alphabet) would cost milliseconds each time a name is set:
  // only those that begin and end as one of the account's keys (revoked and expired ones too) can be one.
  const hints = await rt.store.keyHintsEndingIn(accountId, candidates.endings);
  const looked: string[] = [];
  for (const candidate of candidates.matching(hints)) {
    // Refused before any is hashed: such a name is made to be costly, not written by chance (NAME_KEY_LOOKUPS_MOST).
    if (looked.length === NAME_KEY_LOOKUPS_MOST) {
      throw new OperationError('invalid', `${what} name has too many parts that could be one of the account's keys to check them all: shorten it, or break it up with spaces`);
    }
    looked.push(candidate);
  }
  if (looked.length > 0 && (await rt.store.storedKeyHashes(accountId, looked.map((candidate) => rt.hashKey(candidate)))).length > 0) throw holdsKey;
  return name;
}

/** `1st`, `2nd`, `3rd`, `11th`, `22nd`: a place in a list the caller gave. */
export function ordinal(n: number): string {
  const suffix = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
}
