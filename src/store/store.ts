/**
 * The store keeps what must outlive a process: accounts, keys (hashed), members and
 * their sessions, the audit log, meter balances and daily usage. One interface; one
 * implementation over Kysely (`sql-store.ts`) and one folder per database
 * (`sqlite/`, `postgres/`) that only knows how to connect.
 */
import type { KeyMode } from '../keys/format.js';
import type { WriteRefusal } from './write-refusal.js';
import type { RateLimit } from '../config/schema.js';

export interface AccountRecord {
  id: string;
  name: string;
  planId: string;
  /** When the plan stops (ms since epoch); null = never. */
  planExpiresAt: number | null;
  /** The operator's switch; API access needs this and the plan's apiAccess. */
  apiAccess: boolean;
  /** Per-account overage switch; null = the plan's setting. */
  overage: boolean | null;
  /** The operator's overrides of its plan's limits; absent: none, the plan's limits throughout. */
  limits?: LimitOverrides;
  createdAt: number;
}

/**
 * An account's own limits in place of its plan's ("custom rate limits", an Enterprise
 * row agreed per customer), so that one customer's limits change without a plan of its
 * own. What is not overridden is the plan's (limits/overrides.ts merges them).
 */
export interface LimitOverrides {
  /**
   * Windows replacing the plan's own `rateLimits` (a route's extra windows stay); null:
   * the plan's. An empty list: no plan-level window at all.
   */
  rateLimits: RateLimit[] | null;
  /** Meter name → its limit in place of the plan's; a meter not named has the plan's. */
  meters: Record<string, number>;
}

export interface KeyRecord {
  id: string;
  hash: string;
  hint: string;
  name: string;
  accountId: string | null;
  mode: KeyMode;
  scopes: string[];
  createdAt: number;
  lastUsedAt: number | null;
  expiresAt: number | null;
  revokedAt: number | null;
  createdBy: string | null;
  /** The key this one replaced by rotation, if any. */
  rotatedFrom: string | null;
  /**
   * The key's own rate-limit windows (per key), applied on top of its account's
   * (limits/key-windows.ts); absent or empty: none.
   */
  rateLimits?: RateLimit[];
}

export type MemberRole = 'member' | 'operator';

export interface MemberRecord {
  id: string;
  accountId: string | null;
  email: string;
  passwordHash: string | null;
  role: MemberRole;
  inviteHash: string | null;
  inviteExpiresAt: number | null;
  failedLogins: number;
  lockedUntil: number | null;
  createdAt: number;
}

/**
 * Wrong passwords in a row for an email from one source (a client address, an IPv6 /64,
 * or `*` for an email no member has, from anywhere), and the pause they earned. In the
 * store, so every process behind a load balancer counts the same guesses.
 */
export interface SignInFailureRecord {
  /** The email's digest (members/lockout.ts `signInEmailDigest`), never the text typed: that may be a password pasted into the field. */
  emailDigest: string;
  source: string;
  failures: number;
  lockedUntil: number | null;
  updatedAt: number;
}

/** A dashboard session: by its id's SHA-256, and nothing from which its forms' secret could be made (see dashboard/csrf.ts). */
export interface SessionRecord {
  idHash: string;
  memberId: string;
  expiresAt: number;
  createdAt: number;
}

export interface AuditEntry {
  id: string;
  at: number;
  actor: string;
  /** The client address the change was asked from (admin API, dashboard); null for the CLI's and the library's. */
  actorAddress: string | null;
  action: string;
  accountId: string | null;
  keyId: string | null;
  detail: Record<string, unknown>;
}

/** Committed use of a consumed meter in one period (`periodStart` is `YYYY-MM-DD`). */
export interface MeterUsageRow {
  accountId: string;
  meter: string;
  periodStart: string;
  /** Units charged in the period, less those given back. */
  used: number;
  /**
   * Units given back in the period (a charge made at admission, for an answer that was
   * not a 2xx): default 0. Kept apart so that write-backs arriving in any order merge
   * without losing a give-back (see mergeUsage).
   */
  returned?: number;
}

/**
 * Two readings of one meter, merged: charges (used + returned) and give-backs only grow,
 * so each is the larger of the two; what is used is their difference. The same whatever
 * the order of the readings, so several processes may write back late.
 */
export function mergeUsage(a: Pick<MeterUsageRow, 'used' | 'returned'>, b: Pick<MeterUsageRow, 'used' | 'returned'>): { used: number; returned: number } {
  const aReturned = a.returned ?? 0;
  const bReturned = b.returned ?? 0;
  // A reading as far along as the other in both counts is kept as it is (adding and
  // subtracting fractions would round it: 0.3 + 0.6 - 0.6 is not 0.3).
  if (a.used + aReturned >= b.used + bReturned && aReturned >= bReturned) return { used: a.used, returned: aReturned };
  if (b.used + bReturned >= a.used + aReturned && bReturned >= aReturned) return { used: b.used, returned: bReturned };
  const returned = Math.max(aReturned, bReturned);
  return { used: Math.max(a.used + aReturned, b.used + bReturned) - returned, returned };
}

/**
 * A rate-limit window or block as the counters hold it, kept in the store so that a
 * restart (memory) or a Redis that loses its data lifts no block, and a restart refills
 * no window (Counters.drainLimitChanges; Redis counters write blocks only). The store
 * keeps `state` as given; the counters alone read it.
 */
export interface LimitStateRow {
  kind: 'window' | 'block';
  /** The window's id (`k:<key id>:<ms>:<limit>:<tag>`) or the block's (`k:<key id>`, `a:<account id>`). */
  id: string;
  /** JSON. */
  state: string;
  /** When it stops mattering (ms). A row saved already past it is a deletion: a block lifted. */
  expiresAt: number;
}

/**
 * Units a process committed but could not add to the shared counters (Redis unreachable
 * until it stopped): kept for whichever process reaches Redis next. A row of 0 units is
 * a balance Redis holds that the process could not write to the store: the next process
 * writes it.
 */
export interface PendingUnits {
  accountId: string;
  meter: string;
  periodStart: string;
  /** Negative for a charge given back. */
  units: number;
}

/** A saved row as read back, with its id: what Redis records as added (RedisCounters.takeSavedUnits). */
export interface SavedPendingUnits extends PendingUnits {
  id: string;
}

export interface GaugeRow {
  accountId: string;
  meter: string;
  value: number;
  updatedAt: number;
}

export type UsageMetric = 'requests' | 'denials' | 'units' | 'key_requests';

/** A daily counter: requests by status class, denials by reason, units by meter, admitted requests by key (label: the key's id). */
export interface UsageDailyRow {
  accountId: string;
  day: string;
  metric: UsageMetric;
  label: string;
  value: number;
}

export type AccountPatch = Partial<Pick<AccountRecord, 'name' | 'planId' | 'planExpiresAt' | 'apiAccess' | 'overage' | 'limits'>>;
export type KeyPatch = Partial<Pick<KeyRecord, 'name' | 'expiresAt' | 'revokedAt' | 'scopes' | 'rateLimits'>>;
/**
 * Accounts whose name contains `search` (letters of either case, accented ones too; on
 * PostgreSQL as the database's LC_CTYPE folds them, C.UTF-8 or a language's locale) or
 * whose id it is.
 */
export interface AccountSearch {
  search?: string;
  /** Only these accounts (the names a page of other rows refers to). */
  ids?: readonly string[];
}

/** Rows of one account, or of any of several (a page of accounts); neither: all rows. */
export interface AccountFilter {
  accountId?: string;
  accountIds?: readonly string[];
}

/**
 * Which of the keys of the account(s) filtered: `inUseAt`, only those neither revoked nor
 * expired at that time (what a plan's key limit and a rotation are checked against, read
 * without the dead keys an account gathers over the years); `rotatedFrom`, only the keys
 * that replaced that one; `rotatedFromIds`, those that replaced any of these (a page of
 * keys: one query, not one a key).
 */
export interface KeyFilter extends AccountFilter {
  inUseAt?: number;
  rotatedFrom?: string;
  rotatedFromIds?: readonly string[];
}

/** A page of a list in creation order: the rows after `after` (a row's creation time and id), at most `limit`. */
export interface Page {
  limit?: number;
  after?: { createdAt: number; id: string };
}

export type MemberPatch = Partial<
  Pick<MemberRecord, 'passwordHash' | 'inviteHash' | 'inviteExpiresAt' | 'failedLogins' | 'lockedUntil' | 'role' | 'accountId'>
>;

/** What issuing a key reads and writes, inside `Store.issuingKeysOf`. */
export type KeyIssuing = Pick<Store, 'getAccount' | 'getKey' | 'findKeyByHash' | 'listKeys' | 'insertKey' | 'updateKey'>;

/** What changing an account reads and writes, inside `Store.changingAccount`. */
export type AccountChanging = Pick<Store, 'getAccount' | 'updateAccount'>;

/** What inviting a member reads and writes, inside `Store.invitingMember`. */
export type MemberInviting = Pick<Store, 'getAccount' | 'findMemberByEmail' | 'createMember' | 'updateMember' | 'listAudit' | 'appendAudit'>;

export interface Store {
  /** `sqlite` or `postgres`, for messages. */
  readonly kind: 'sqlite' | 'postgres';

  /** Resolves once the database answers a trivial query (for /health). */
  ping(): Promise<void>;
  getSetting(name: string): Promise<string | undefined>;
  /**
   * Sets a setting unless it is set already, and answers the value it has then (the
   * first writer wins when processes start together).
   */
  settleSetting(name: string, value: string): Promise<string>;
  /** Sets a setting, whatever it was. */
  putSetting(name: string, value: string): Promise<void>;
  /** Removes a setting; answers whether there was one. */
  deleteSetting(name: string): Promise<boolean>;
  /** Migrations not yet applied to this database. */
  pendingMigrations(): Promise<string[]>;
  migrate(): Promise<string[]>;

  /** False, writing nothing, where an account has its id already (a caller's chosen id sent twice at once). */
  createAccount(account: AccountRecord): Promise<boolean>;
  getAccount(id: string): Promise<AccountRecord | undefined>;
  /** Oldest first; `page` gives at most `limit` after a place (see Page). */
  listAccounts(filter?: AccountSearch & Page): Promise<AccountRecord[]>;
  updateAccount(id: string, patch: AccountPatch): Promise<AccountRecord | undefined>;
  /** Deleting an account leaves its keys unbound (they then fail with key_not_bound). */
  deleteAccount(id: string): Promise<boolean>;

  /** False, writing nothing, where a key has its id or hash already (one key imported into two accounts at once). */
  insertKey(key: KeyRecord): Promise<boolean>;
  getKey(id: string): Promise<KeyRecord | undefined>;
  findKeyByHash(hash: string): Promise<KeyRecord | undefined>;
  /**
   * Those of `hashes` that are the hash of one of the account's keys (any state): many
   * looked up at once, a name's key-shaped parts. One account's only: a name checked
   * against every key in the store would tell a member, one rename at a time, whether
   * any of hundreds of guesses is some other account's key.
   */
  storedKeyHashes(accountId: string, hashes: readonly string[]): Promise<string[]>;
  /**
   * The hints (prefix, `…`, last four characters) of the account's keys (any state, as
   * `storedKeyHashes`) whose last four characters are one of `endings`, each hint once: what
   * narrows a name's key-shaped parts to those that can be one of its keys before any is
   * hashed. One account's only, for the same reason.
   */
  keyHintsEndingIn(accountId: string, endings: readonly string[]): Promise<string[]>;
  /** Oldest first; `page` gives at most `limit` after a place (see Page). */
  listKeys(filter?: KeyFilter & Page): Promise<KeyRecord[]>;
  updateKey(id: string, patch: KeyPatch): Promise<KeyRecord | undefined>;
  /**
   * The keys in use at `inUseAt` (neither revoked nor expired) whose hint begins with none
   * of `hintStarts` (keys issued under a prefix the profile no longer takes): how many, and
   * the hints of the oldest `sample` of them. No more rows than `sample` are answered, but
   * every key in use is read, a slice at a time (on SQLite letting the process go on
   * between). `stopped` is asked between slices: true ends the look (KeyScanStoppedError).
   */
  keysOfOtherHints(hintStarts: readonly string[], inUseAt: number, sample: number, stopped?: () => boolean): Promise<{ count: number; hints: string[] }>;
  /** Records "last used" for many keys at once (only ever moves forward). */
  touchKeys(lastUsed: ReadonlyMap<string, number>): Promise<void>;
  /**
   * Runs `work` in one transaction during which no other `issuingKeysOf` the same account
   * runs, in this process or any other: what `work` reads of the account's keys stays
   * true until it commits (a plan's key limit, a key rotated once). `work` must use only
   * the store it is given; if it throws, nothing it wrote is kept.
   */
  issuingKeysOf<T>(accountId: string, work: (store: KeyIssuing) => Promise<T>): Promise<T>;
  /**
   * Runs `work` with the account to itself as `issuingKeysOf` does (the same lock): a
   * change read, merged and written there (its own limits, a merge patch) cannot undo
   * another made at the same time. Same rules for `work` as `issuingKeysOf`.
   */
  changingAccount<T>(accountId: string, work: (store: AccountChanging) => Promise<T>): Promise<T>;
  /**
   * Runs `work` in one transaction during which no other `invitingMember` of the same
   * address (lower case) runs, in this process or any other: a form sent twice at once,
   * the two reaching two processes, finds the invitation the first made. Same rules for
   * `work` as `issuingKeysOf`.
   */
  invitingMember<T>(email: string, work: (store: MemberInviting) => Promise<T>): Promise<T>;

  createMember(member: MemberRecord): Promise<void>;
  getMember(id: string): Promise<MemberRecord | undefined>;
  findMemberByEmail(email: string): Promise<MemberRecord | undefined>;
  findMemberByInvite(inviteHash: string): Promise<MemberRecord | undefined>;
  listMembers(filter?: AccountFilter): Promise<MemberRecord[]>;
  updateMember(id: string, patch: MemberPatch): Promise<MemberRecord | undefined>;
  /**
   * Sets the password of the member whose invitation (or reset) link this is, and uses the
   * link up, only if it is still theirs and works at `now` (not used, withdrawn or expired
   * since it was looked up: the password's hash takes a while): the member then, else
   * undefined. Failed sign-ins and a pause are cleared with it.
   */
  useMemberInvite(id: string, inviteHash: string, now: number, passwordHash: string): Promise<MemberRecord | undefined>;
  /** Removes a member, and with them their sessions; answers whether there was one. */
  deleteMember(id: string): Promise<boolean>;

  /** The email's sign-in failure records (by its digest) for these sources (all of its records without `sources`). */
  listSignInFailures(emailDigest: string, sources?: readonly string[]): Promise<SignInFailureRecord[]>;
  /** Writes a record, in place of the email's record for the same source. */
  putSignInFailure(record: SignInFailureRecord): Promise<void>;
  /**
   * One more wrong password for the email of `emailDigest` from `source`, counted in one
   * statement (processes counting at the same moment each count theirs): the record as it
   * now stands. A count last written before `forgetBefore` starts afresh; a pause that has
   * ended is dropped.
   */
  countSignInFailure(emailDigest: string, source: string, now: number, forgetBefore: number): Promise<SignInFailureRecord>;
  /** One more wrong password for a member, counted in one statement: their count now. */
  countMemberFailure(id: string): Promise<number>;
  /** Forgets the email's records for these sources (all of them without `sources`). */
  deleteSignInFailures(emailDigest: string, sources?: readonly string[]): Promise<void>;
  /** Forgets the records last written before `before` whose pause, if any, had ended by then. */
  pruneSignInFailures(before: number): Promise<number>;

  createSession(session: SessionRecord): Promise<void>;
  getSession(idHash: string): Promise<SessionRecord | undefined>;
  deleteSession(idHash: string): Promise<void>;
  /** Ends every session of a member (a new password signs them out everywhere). */
  deleteSessionsOf(memberId: string): Promise<void>;
  deleteExpiredSessions(now: number): Promise<number>;

  appendAudit(entry: AuditEntry): Promise<void>;
  /** Newest first; `after` (a previous page's last entry: its `at` and `id`) continues with older ones. */
  listAudit(filter?: { accountId?: string } & Page): Promise<AuditEntry[]>;

  /** Absolute balances: each row raises what was stored for its account/meter/period (never lowers it). */
  saveMeterUsage(rows: readonly MeterUsageRow[]): Promise<void>;
  loadMeterUsage(filter?: { accountId?: string; periodStarts?: readonly string[] }): Promise<MeterUsageRow[]>;
  /** Writes these rows over those of the same kind and id, then deletes every row expired at `now`. */
  saveLimitState(rows: readonly LimitStateRow[], now: number): Promise<void>;
  /** The rows not expired at `now` (of one kind, with `kind`). */
  loadLimitState(now: number, kind?: LimitStateRow['kind']): Promise<LimitStateRow[]>;
  savePendingUnits(rows: readonly PendingUnits[]): Promise<void>;
  /**
   * Up to `limit` saved rows, oldest first, left in place: several callers may read the
   * same rows (RedisCounters.takeSavedUnits adds each to Redis once all the same).
   */
  readPendingUnits(limit: number): Promise<SavedPendingUnits[]>;
  /** Writes `balances` (as saveMeterUsage) and deletes the rows of `ids`, in one transaction. */
  removePendingUnits(ids: readonly string[], balances: readonly MeterUsageRow[]): Promise<void>;

  /**
   * Keeps the level unless the stored one is later (`updatedAt`) — and not later than
   * `now`, the writer's time, where given: a stored time ahead of it is another host's
   * clock running ahead, which must not hold the level still until this clock catches up.
   */
  setGauge(row: GaugeRow, now?: number): Promise<void>;
  listGauges(accountId: string): Promise<GaugeRow[]>;

  /** Adds each row's value to the stored daily counter. */
  addUsageDaily(rows: readonly UsageDailyRow[]): Promise<void>;
  listUsageDaily(accountId: string, fromDay: string, toDay: string): Promise<UsageDailyRow[]>;

  /**
   * Whether another process changed the database since the last call (cheap, sync).
   * Only SQLite can tell; shared stores signal changes through the counters backend.
   */
  changedElsewhere?(): boolean;

  /**
   * While the database refuses writes for want of room or permission (a full disk, a
   * read-only file: each such write throws a StoreWriteError), the first refusal and
   * since when; undefined while writes go through. It ends when a small write, tried
   * every few seconds meanwhile, goes through. SQLite only.
   */
  writeRefusal?(): WriteRefusal | undefined;
  /** Calls `listener` as writes begin to be refused (with the refusal), and with undefined once they go through again. */
  onWriteRefusal?(listener: (refusal: WriteRefusal | undefined) => void): void;

  close(): Promise<void>;
}
