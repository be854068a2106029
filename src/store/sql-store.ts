/**
 * The store over Kysely: the same queries for SQLite and PostgreSQL. A backend folder
 * supplies only the connected `Kysely` instance (and, for SQLite, change detection).
 *
 * Text with a NUL character (unstorable-text.ts) never reaches either database: a lookup
 * by it answers nothing without asking, a write of it is refused. Key lookups by hash are
 * not checked: the hash is hex keygate computed, and they are the gateway's.
 */
import { randomUUID } from 'node:crypto';
import { Migrator, sql, type Kysely, type MigrationProvider, type SelectQueryBuilder } from 'kysely';
import type {
  AccountFilter,
  AccountPatch,
  AccountSearch,
  AccountRecord,
  LimitOverrides,
  AuditEntry,
  GaugeRow,
  AccountChanging,
  KeyIssuing,
  KeyPatch,
  KeyFilter,
  KeyRecord,
  MemberInviting,
  MemberPatch,
  MemberRecord,
  LimitStateRow,
  MeterUsageRow,
  Page,
  PendingUnits,
  SavedPendingUnits,
  SessionRecord,
  SignInFailureRecord,
  Store,
  UsageDailyRow,
} from './store.js';
import { migrations } from './migrations.js';
import type { WriteRefusal, WriteRefusals } from './write-refusal.js';
import { holdsNul, matchable, storable } from './unstorable-text.js';
import type { KeyMode } from '../keys/format.js';
import type { RateLimit } from '../config/schema.js';

interface AccountsTable {
  id: string;
  name: string;
  plan_id: string;
  plan_expires_at: number | null;
  api_access: number;
  overage: number | null;
  /** LimitOverrides as JSON; null: none. */
  limits: string | null;
  created_at: number;
}

interface KeysTable {
  id: string;
  hash: string;
  hint: string;
  name: string;
  account_id: string | null;
  mode: string;
  scopes: string;
  created_at: number;
  last_used_at: number | null;
  expires_at: number | null;
  revoked_at: number | null;
  created_by: string | null;
  rotated_from: string | null;
  /** The key's own windows (RateLimit[]) as JSON; null: none. */
  rate_limits: string | null;
}

interface MembersTable {
  id: string;
  account_id: string | null;
  email: string;
  password_hash: string | null;
  role: string;
  invite_hash: string | null;
  invite_expires_at: number | null;
  failed_logins: number;
  locked_until: number | null;
  created_at: number;
}

interface SessionsTable {
  id_hash: string;
  member_id: string;
  expires_at: number;
  created_at: number;
}

interface AuditTable {
  id: string;
  at: number;
  actor: string;
  actor_address: string | null;
  action: string;
  account_id: string | null;
  key_id: string | null;
  detail: string;
}

interface MeterUsageTable {
  account_id: string;
  meter: string;
  period_start: string;
  used: number;
  returned: number;
}

interface GaugesTable {
  account_id: string;
  meter: string;
  value: number;
  updated_at: number;
}

interface UsageDailyTable {
  account_id: string;
  day: string;
  metric: string;
  label: string;
  value: number;
}

export interface Database {
  accounts: AccountsTable;
  api_keys: KeysTable;
  members: MembersTable;
  sessions: SessionsTable;
  audit_log: AuditTable;
  meter_usage: MeterUsageTable;
  gauges: GaugesTable;
  usage_daily: UsageDailyTable;
  keygate_settings: { name: string; value: string };
  pending_units: { id: string; account_id: string; meter: string; period_start: string; units: number; saved_at: number };
  /** `email` holds the email's digest (0009_sign_in_email_digests), under its old name: a process of the release before still reads and writes it while the next one starts. */
  sign_in_failures: { email: string; source: string; failures: number; locked_until: number | null; updated_at: number };
  limit_state: { kind: string; id: string; state: string; expires_at: number };
}

/**
 * A table with `created_at` and `id` in creation order, from a place on (a row value
 * comparison, which SQLite and PostgreSQL both take), at most `limit` rows.
 */
function inCreationOrder<QB extends SelectQueryBuilder<any, any, any>>(query: QB, { after, limit }: Page): QB {
  const from = after ? query.where(sql<boolean>`(created_at, id) > (${after.createdAt}, ${after.id})`) : query;
  const ordered = from.orderBy('created_at').orderBy('id');
  return (limit === undefined ? ordered : ordered.limit(limit)) as QB;
}

/** Narrows a query of a table with `account_id` to the filter's account(s). */
function ofAccounts<QB extends SelectQueryBuilder<any, any, any>>(query: QB, { accountId, accountIds }: AccountFilter): QB {
  const one = accountId === undefined ? query : query.where('account_id', '=', accountId);
  return (accountIds === undefined ? one : one.where('account_id', 'in', accountIds)) as QB;
}

/** Narrows a query of keys to those in use at a time, or to the replacements of one key or of several (see KeyFilter). */
function ofKeyState<QB extends SelectQueryBuilder<any, any, any>>(query: QB, { inUseAt, rotatedFrom, rotatedFromIds }: KeyFilter): QB {
  const ofOne = rotatedFrom === undefined ? query : query.where('rotated_from', '=', rotatedFrom);
  const replacements = rotatedFromIds === undefined ? ofOne : ofOne.where('rotated_from', 'in', matchable(rotatedFromIds));
  if (inUseAt === undefined) return replacements as QB;
  return replacements.where('revoked_at', 'is', null).where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', inUseAt)])) as QB;
}

/** Whether a filter names no account a row can have: one whose id holds a NUL, or an empty list (once such ids are left out). */
function namesNoAccount({ accountId, accountIds }: AccountFilter): boolean {
  return holdsNul(accountId) || (accountIds !== undefined && matchable(accountIds).length === 0);
}

/** The filter with the account ids no row can have left out (see namesNoAccount). */
function matchableAccounts<F extends AccountFilter>(filter: F): F {
  return filter.accountIds === undefined ? filter : { ...filter, accountIds: matchable(filter.accountIds) };
}

const provider: MigrationProvider = { getMigrations: async () => migrations };

/** Rows written per statement in bulk upserts (well under both databases' parameter limits). */
const BATCH = 200;
/** Hashes looked up per statement by storedKeyHashes, and hint endings by keyHintsEndingIn (well under both databases' parameter limits). */
const HASHES_PER_LOOKUP = 500;

/** What an exclusive transaction has to itself: an account's keys, or the invitation of one e-mail address. */
export type ExclusiveLock = { accountKeys: string } | { invitationOf: string };

/**
 * How a backend runs `work` with `lock` to itself (see `Store.issuingKeysOf` and
 * `Store.invitingMember`): in one transaction that others asking for the same lock wait
 * for, on the connection `work` is handed.
 */
export type ExclusiveTransaction = <T>(db: Kysely<Database>, lock: ExclusiveLock, work: (db: Kysely<Database>) => Promise<T>) => Promise<T>;

/** Rows of api_keys read at a time by a look through all of them (a few milliseconds each): see SqlStore.keysOfOtherHints. */
export const KEY_SCAN_ROWS = 10_000;

/** A look through every key (keysOfOtherHints) ended by its `stopped` between two slices: keygate is stopping. */
export class KeyScanStoppedError extends Error {
  constructor() {
    super('the look through the keys in use was stopped (keygate is stopping)');
    this.name = 'KeyScanStoppedError';
  }
}

/** One slice of api_keys, as the `where` that keeps a query to it. */
type KeySlice = <QB extends SelectQueryBuilder<Database, 'api_keys', object>>(query: QB) => QB;

/** What a backend adds to the shared queries. */
export interface Backend {
  kind: 'sqlite' | 'postgres';
  exclusive: ExclusiveTransaction;
  onClose?: () => Promise<void>;
  /** SQLite: whether another connection has written since last asked. */
  changedElsewhere?: () => boolean;
  /**
   * Runs `work` (applying migrations) so that no other process applies them at the same
   * time and a failure leaves none of them half done, where Kysely's Migrator does not see
   * to it: SQLite (it takes no lock there and runs no transaction). PostgreSQL needs none:
   * the Migrator holds an advisory lock and applies every pending migration in one transaction.
   */
  migrating?: <T>(db: Kysely<Database>, work: (db: Kysely<Database>) => Promise<T>) => Promise<T>;
  /** SQLite: writes refused for want of room or permission (see Store.writeRefusal). */
  writeRefusals?: WriteRefusals;
  /** How many rows of api_keys a look through all of them reads per query (see keysOfOtherHints): KEY_SCAN_ROWS, a test's few. */
  keyScanRows?: number;
}

export class SqlStore implements Store {
  readonly kind: 'sqlite' | 'postgres';
  readonly changedElsewhere?: () => boolean;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly backend: Backend,
  ) {
    this.kind = backend.kind;
    if (backend.changedElsewhere) this.changedElsewhere = backend.changedElsewhere;
  }

  writeRefusal(): WriteRefusal | undefined {
    return this.backend.writeRefusals?.current;
  }

  onWriteRefusal(listener: (refusal: WriteRefusal | undefined) => void): void {
    this.backend.writeRefusals?.onChange(listener);
  }

  private migrator(db: Kysely<Database> = this.db): Migrator {
    return new Migrator({ db, provider, migrationTableName: 'keygate_migrations', migrationLockTableName: 'keygate_migrations_lock' });
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  async getSetting(name: string): Promise<string | undefined> {
    if (holdsNul(name)) return undefined;
    const row = await this.db.selectFrom('keygate_settings').select('value').where('name', '=', name).executeTakeFirst();
    return row?.value;
  }

  async settleSetting(name: string, value: string): Promise<string> {
    await this.db.insertInto('keygate_settings').values(storable('keygate_settings', { name, value })).onConflict((oc) => oc.column('name').doNothing()).execute();
    const row = await this.db.selectFrom('keygate_settings').select('value').where('name', '=', name).executeTakeFirstOrThrow();
    return row.value;
  }

  async putSetting(name: string, value: string): Promise<void> {
    await this.db
      .insertInto('keygate_settings')
      .values(storable('keygate_settings', { name, value }))
      .onConflict((oc) => oc.column('name').doUpdateSet({ value }))
      .execute();
  }

  async deleteSetting(name: string): Promise<boolean> {
    if (holdsNul(name)) return false;
    const result = await this.db.deleteFrom('keygate_settings').where('name', '=', name).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  async pendingMigrations(): Promise<string[]> {
    const all = await this.migrator().getMigrations();
    return all.filter((m) => m.executedAt === undefined).map((m) => m.name);
  }

  async migrate(): Promise<string[]> {
    const toLatest = async (db: Kysely<Database>) => {
      const { error, results } = await this.migrator(db).migrateToLatest();
      if (error) {
        // Every pending migration is applied in one transaction (see Backend.migrating): the
        // ones before the failed one are undone with it.
        const failed = results?.find((r) => r.status === 'Error')?.migrationName;
        const message = error instanceof Error ? error.message : String(error);
        throw new Error(failed ? `migration ${failed} failed, so none was applied: ${message}` : message, { cause: error });
      }
      return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
    };
    return this.backend.migrating ? this.backend.migrating(this.db, toLatest) : toLatest(this.db);
  }

  // accounts

  async createAccount(a: AccountRecord): Promise<boolean> {
    const result = await this.db.insertInto('accounts').values(storable('accounts', accountRow(a))).onConflict((oc) => oc.column('id').doNothing()).executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  async getAccount(id: string): Promise<AccountRecord | undefined> {
    if (holdsNul(id)) return undefined;
    const row = await this.db.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toAccount(row);
  }

  async listAccounts(filter: AccountSearch & Page = {}): Promise<AccountRecord[]> {
    if (holdsNul(filter.after?.id)) return [];
    let query = this.db.selectFrom('accounts').selectAll();
    if (filter.search !== undefined) {
      // Names hold no control characters (and SQLite would end the pattern at a NUL).
      if (/\p{Cc}/u.test(filter.search)) return [];
      // Both sides folded by one function: JavaScript's on SQLite (registered by the
      // SQLite backend), the database's own on PostgreSQL.
      const literal = `%${filter.search.replace(/[\\%_]/g, '\\$&')}%`;
      const matches = this.kind === 'sqlite' ? sql<boolean>`keygate_lower(name) like ${literal.toLowerCase()} escape '\\'` : sql<boolean>`lower(name) like lower(${literal}) escape '\\'`;
      query = query.where((eb) => eb.or([matches, eb('id', '=', filter.search as string)]));
    }
    if (filter.ids !== undefined) {
      const ids = matchable(filter.ids);
      if (ids.length === 0) return [];
      query = query.where('id', 'in', ids);
    }
    return (await inCreationOrder(query, filter).execute()).map(toAccount);
  }

  async updateAccount(id: string, patch: AccountPatch): Promise<AccountRecord | undefined> {
    if (holdsNul(id)) return undefined;
    const set: Partial<AccountsTable> = {};
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.planId !== undefined) set.plan_id = patch.planId;
    if (patch.planExpiresAt !== undefined) set.plan_expires_at = patch.planExpiresAt;
    if (patch.apiAccess !== undefined) set.api_access = patch.apiAccess ? 1 : 0;
    if (patch.overage !== undefined) set.overage = patch.overage === null ? null : patch.overage ? 1 : 0;
    if ('limits' in patch) set.limits = limitsText(patch.limits);
    if (Object.keys(set).length > 0) await this.db.updateTable('accounts').set(storable('accounts', set)).where('id', '=', id).execute();
    return this.getAccount(id);
  }

  async deleteAccount(id: string): Promise<boolean> {
    if (holdsNul(id)) return false;
    return this.db.transaction().execute(async (tx) => {
      await tx.updateTable('api_keys').set({ account_id: null }).where('account_id', '=', id).execute();
      const result = await tx.deleteFrom('accounts').where('id', '=', id).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    });
  }

  // keys

  async insertKey(k: KeyRecord): Promise<boolean> {
    const result = await this.db
      .insertInto('api_keys')
      .values(
        storable('api_keys', {
          id: k.id,
          hash: k.hash,
          hint: k.hint,
          name: k.name,
          account_id: k.accountId,
          mode: k.mode,
          scopes: JSON.stringify(k.scopes),
          created_at: k.createdAt,
          last_used_at: k.lastUsedAt,
          expires_at: k.expiresAt,
          revoked_at: k.revokedAt,
          created_by: k.createdBy,
          rotated_from: k.rotatedFrom,
          rate_limits: keyWindowsText(k.rateLimits),
        }),
      )
      // Any of its unique columns (id, hash): PostgreSQL would otherwise end the transaction it is in with an error.
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  async issuingKeysOf<T>(accountId: string, work: (store: KeyIssuing) => Promise<T>): Promise<T> {
    return this.backend.exclusive(this.db, { accountKeys: accountId }, (db) => work(new SqlStore(db, this.backend)));
  }

  async changingAccount<T>(accountId: string, work: (store: AccountChanging) => Promise<T>): Promise<T> {
    return this.backend.exclusive(this.db, { accountKeys: accountId }, (db) => work(new SqlStore(db, this.backend)));
  }

  async invitingMember<T>(email: string, work: (store: MemberInviting) => Promise<T>): Promise<T> {
    return this.backend.exclusive(this.db, { invitationOf: email.toLowerCase() }, (db) => work(new SqlStore(db, this.backend)));
  }

  async getKey(id: string): Promise<KeyRecord | undefined> {
    if (holdsNul(id)) return undefined;
    const row = await this.db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toKey(row);
  }

  async findKeyByHash(hash: string): Promise<KeyRecord | undefined> {
    const row = await this.db.selectFrom('api_keys').selectAll().where('hash', '=', hash).executeTakeFirst();
    return row && toKey(row);
  }

  async storedKeyHashes(accountId: string, hashes: readonly string[]): Promise<string[]> {
    const stored: string[] = [];
    if (holdsNul(accountId)) return stored;
    for (let at = 0; at < hashes.length; at += HASHES_PER_LOOKUP) {
      const slice = hashes.slice(at, at + HASHES_PER_LOOKUP);
      const rows = await this.db.selectFrom('api_keys').select('hash').where('account_id', '=', accountId).where('hash', 'in', slice).execute();
      for (const row of rows) stored.push(row.hash);
    }
    return stored;
  }

  async keyHintsEndingIn(accountId: string, endings: readonly string[]): Promise<string[]> {
    if (holdsNul(accountId)) return [];
    const wanted = matchable(endings);
    const hints = new Set<string>();
    // The last four characters in both databases, which count characters (HINT_MARK is one); PostgreSQL's substr takes no negative start.
    for (let at = 0; at < wanted.length; at += HASHES_PER_LOOKUP) {
      const slice = wanted.slice(at, at + HASHES_PER_LOOKUP);
      const rows = await this.db
        .selectFrom('api_keys')
        .select('hint')
        .distinct()
        .where('account_id', '=', accountId)
        .where(sql<string>`substr(hint, length(hint) - 3)`, 'in', slice)
        .execute();
      for (const row of rows) hints.add(row.hint);
    }
    return [...hints];
  }

  async listKeys(filter: KeyFilter & Page = {}): Promise<KeyRecord[]> {
    const noReplaced = holdsNul(filter.rotatedFrom) || (filter.rotatedFromIds !== undefined && matchable(filter.rotatedFromIds).length === 0);
    if (namesNoAccount(filter) || holdsNul(filter.after?.id) || noReplaced) return [];
    return (await inCreationOrder(ofKeyState(ofAccounts(this.db.selectFrom('api_keys').selectAll(), matchableAccounts(filter)), filter), filter).execute()).map(toKey);
  }

  async keysOfOtherHints(hintStarts: readonly string[], inUseAt: number, sample: number, stopped?: () => boolean): Promise<{ count: number; hints: string[] }> {
    // A hint's beginning compared as text (not LIKE: `_` is in most prefixes, and SQLite's LIKE ignores case);
    // substr and the length count characters in both databases, as spread does here (HINT_MARK is one).
    const starts = matchable(hintStarts);
    const outside = <QB extends SelectQueryBuilder<Database, 'api_keys', object>>(query: QB): QB =>
      starts.length === 0 ? query : (query.where((eb) => eb.not(eb.or(starts.map((start) => sql<boolean>`substr(hint, 1, ${[...start].length}) = ${start}`)))) as QB);
    const rows = this.backend.keyScanRows ?? KEY_SCAN_ROWS;
    const slices = this.backend.kind === 'sqlite' ? this.rowidSlices(rows) : this.idSlices(rows);
    let count = 0;
    let oldest: { hint: string; created_at: number; id: string }[] = [];
    // Ties by id in byte order in both (SQLite's BINARY; PostgreSQL's own collation may differ), as the merge below compares them.
    const idInBytes = this.backend.kind === 'sqlite' ? sql`id` : sql`id collate "C"`;
    let first = true;
    for await (const slice of slices) {
      // Between slices: a stop (keygate stopping) waits for the slice in flight, not for every key.
      if (!first && stopped?.()) throw new KeyScanStoppedError();
      first = false;
      const found = await slice(outside(ofKeyState(this.db.selectFrom('api_keys'), { inUseAt })))
        .select(['hint', 'created_at', 'id', sql<number | string>`count(*) over ()`.as('total')])
        .orderBy('created_at')
        .orderBy(idInBytes)
        .limit(sample)
        .execute();
      if (found.length === 0) continue;
      // The window's count is of every row the slice holds, before the limit (PostgreSQL answers a bigint as text).
      count += Number(found[0]!.total);
      // The oldest kept across slices (ids compared by their UTF-8 bytes, as the queries order them).
      oldest = [...oldest, ...found]
        .sort((a, b) => Number(a.created_at) - Number(b.created_at) || Buffer.compare(Buffer.from(a.id), Buffer.from(b.id)))
        .slice(0, sample);
    }
    return { count, hints: oldest.map((row) => row.hint) };
  }

  /**
   * SQLite, whose queries hold the process (better-sqlite3 is synchronous): `rows` rowids
   * at a time, the event loop let go on between slices, so a million keys cost requests a
   * few milliseconds at a time instead of a whole scan at once.
   */
  private async *rowidSlices(rows: number): AsyncGenerator<KeySlice> {
    const last = Number((await sql<{ last: number | null }>`select max(rowid) as last from api_keys`.execute(this.db)).rows[0]?.last ?? 0);
    for (let from = 0; from < last; from += rows) {
      if (from > 0) await new Promise((resolve) => setImmediate(resolve));
      yield (query) => query.where(sql<boolean>`rowid > ${from} and rowid <= ${from + rows}`) as typeof query;
    }
  }

  /**
   * PostgreSQL (no rowid): `rows` keys at a time in id order, each slice's end found on
   * the primary key's index after the last one's (keyset), so that a stop waits for one
   * slice rather than for the whole scan (0.3 to 1.8 s per million keys).
   */
  private async *idSlices(rows: number): AsyncGenerator<KeySlice> {
    let after: string | undefined;
    for (;;) {
      const from = after;
      const end = (
        await this.db
          .selectFrom('api_keys')
          .select('id')
          .$if(from !== undefined, (query) => query.where('id', '>', from as string))
          .orderBy('id')
          .limit(1)
          .offset(rows - 1)
          .executeTakeFirst()
      )?.id;
      yield (query) => {
        let sliced = from === undefined ? query : (query.where('id', '>', from) as typeof query);
        if (end !== undefined) sliced = sliced.where('id', '<=', end) as typeof query;
        return sliced;
      };
      if (end === undefined) return;
      after = end;
    }
  }

  async updateKey(id: string, patch: KeyPatch): Promise<KeyRecord | undefined> {
    if (holdsNul(id)) return undefined;
    const set: Partial<KeysTable> = {};
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.expiresAt !== undefined) set.expires_at = patch.expiresAt;
    if (patch.revokedAt !== undefined) set.revoked_at = patch.revokedAt;
    if (patch.scopes !== undefined) set.scopes = JSON.stringify(patch.scopes);
    if ('rateLimits' in patch) set.rate_limits = keyWindowsText(patch.rateLimits);
    if (Object.keys(set).length > 0) await this.db.updateTable('api_keys').set(storable('api_keys', set)).where('id', '=', id).execute();
    return this.getKey(id);
  }

  async touchKeys(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    if (lastUsed.size === 0) return;
    await this.db.transaction().execute(async (tx) => {
      for (const [id, at] of lastUsed) {
        if (holdsNul(id)) continue;
        await tx
          .updateTable('api_keys')
          .set({ last_used_at: at })
          .where('id', '=', id)
          .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', at)]))
          .execute();
      }
    });
  }

  // members and sessions

  async createMember(m: MemberRecord): Promise<void> {
    await this.db
      .insertInto('members')
      .values(
        storable('members', {
          id: m.id,
          account_id: m.accountId,
          email: m.email,
          password_hash: m.passwordHash,
          role: m.role,
          invite_hash: m.inviteHash,
          invite_expires_at: m.inviteExpiresAt,
          failed_logins: m.failedLogins,
          locked_until: m.lockedUntil,
          created_at: m.createdAt,
        }),
      )
      .execute();
  }

  async getMember(id: string): Promise<MemberRecord | undefined> {
    if (holdsNul(id)) return undefined;
    const row = await this.db.selectFrom('members').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toMember(row);
  }

  async findMemberByEmail(email: string): Promise<MemberRecord | undefined> {
    if (holdsNul(email)) return undefined;
    const row = await this.db.selectFrom('members').selectAll().where('email', '=', email.toLowerCase()).executeTakeFirst();
    return row && toMember(row);
  }

  async findMemberByInvite(inviteHash: string): Promise<MemberRecord | undefined> {
    if (holdsNul(inviteHash)) return undefined;
    const row = await this.db.selectFrom('members').selectAll().where('invite_hash', '=', inviteHash).executeTakeFirst();
    return row && toMember(row);
  }

  async listMembers(filter: AccountFilter = {}): Promise<MemberRecord[]> {
    if (namesNoAccount(filter)) return [];
    return (await inCreationOrder(ofAccounts(this.db.selectFrom('members').selectAll(), matchableAccounts(filter)), {}).execute()).map(toMember);
  }

  async updateMember(id: string, patch: MemberPatch): Promise<MemberRecord | undefined> {
    if (holdsNul(id)) return undefined;
    const set: Partial<MembersTable> = {};
    if (patch.passwordHash !== undefined) set.password_hash = patch.passwordHash;
    if (patch.inviteHash !== undefined) set.invite_hash = patch.inviteHash;
    if (patch.inviteExpiresAt !== undefined) set.invite_expires_at = patch.inviteExpiresAt;
    if (patch.failedLogins !== undefined) set.failed_logins = patch.failedLogins;
    if (patch.lockedUntil !== undefined) set.locked_until = patch.lockedUntil;
    if (patch.role !== undefined) set.role = patch.role;
    if (patch.accountId !== undefined) set.account_id = patch.accountId;
    if (Object.keys(set).length > 0) await this.db.updateTable('members').set(storable('members', set)).where('id', '=', id).execute();
    return this.getMember(id);
  }

  async useMemberInvite(id: string, inviteHash: string, now: number, passwordHash: string): Promise<MemberRecord | undefined> {
    if (holdsNul(id) || holdsNul(inviteHash)) return undefined;
    const result = await this.db
      .updateTable('members')
      .set(storable('members', { password_hash: passwordHash, invite_hash: null, invite_expires_at: null, failed_logins: 0, locked_until: null }))
      .where('id', '=', id)
      .where('invite_hash', '=', inviteHash)
      .where('invite_expires_at', '>', now)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0 ? this.getMember(id) : undefined;
  }

  async deleteMember(id: string): Promise<boolean> {
    if (holdsNul(id)) return false;
    // Their sessions go with them (ON DELETE CASCADE).
    const result = await this.db.deleteFrom('members').where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  // sign-in failures

  async listSignInFailures(emailDigest: string, sources?: readonly string[]): Promise<SignInFailureRecord[]> {
    const matching = sources && matchable(sources);
    if (holdsNul(emailDigest) || matching?.length === 0) return [];
    const query = this.db.selectFrom('sign_in_failures').selectAll().where('email', '=', emailDigest);
    const rows = await (matching === undefined ? query : query.where('source', 'in', matching)).orderBy('source').execute();
    return rows.map(signInFailureOf);
  }

  async putSignInFailure(r: SignInFailureRecord): Promise<void> {
    const values = storable('sign_in_failures', { email: r.emailDigest, source: r.source, failures: r.failures, locked_until: r.lockedUntil, updated_at: r.updatedAt });
    await this.db
      .insertInto('sign_in_failures')
      .values(values)
      .onConflict((oc) => oc.columns(['email', 'source']).doUpdateSet({ failures: values.failures, locked_until: values.locked_until, updated_at: values.updated_at }))
      .execute();
  }

  async countSignInFailure(emailDigest: string, source: string, now: number, forgetBefore: number): Promise<SignInFailureRecord> {
    const row = await this.db
      .insertInto('sign_in_failures')
      .values(storable('sign_in_failures', { email: emailDigest, source, failures: 1, locked_until: null, updated_at: now }))
      .onConflict((oc) =>
        oc.columns(['email', 'source']).doUpdateSet({
          failures: sql<number>`case when sign_in_failures.updated_at < ${forgetBefore} then 1 else sign_in_failures.failures + 1 end`,
          locked_until: sql<number | null>`case when sign_in_failures.locked_until <= ${now} then null else sign_in_failures.locked_until end`,
          updated_at: now,
        }),
      )
      .returningAll()
      .executeTakeFirstOrThrow();
    return signInFailureOf(row);
  }

  async countMemberFailure(id: string): Promise<number> {
    if (holdsNul(id)) return 0;
    const row = await this.db
      .updateTable('members')
      .set({ failed_logins: sql<number>`failed_logins + 1` })
      .where('id', '=', id)
      .returning('failed_logins')
      .executeTakeFirst();
    return Number(row?.failed_logins ?? 0);
  }

  async deleteSignInFailures(emailDigest: string, sources?: readonly string[]): Promise<void> {
    const matching = sources && matchable(sources);
    if (holdsNul(emailDigest) || matching?.length === 0) return;
    const query = this.db.deleteFrom('sign_in_failures').where('email', '=', emailDigest);
    await (matching === undefined ? query : query.where('source', 'in', matching)).execute();
  }

  async pruneSignInFailures(before: number): Promise<number> {
    const result = await this.db
      .deleteFrom('sign_in_failures')
      .where('updated_at', '<', before)
      .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', before)]))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async createSession(s: SessionRecord): Promise<void> {
    await this.db
      .insertInto('sessions')
      .values(storable('sessions', { id_hash: s.idHash, member_id: s.memberId, expires_at: s.expiresAt, created_at: s.createdAt }))
      .execute();
  }

  async getSession(idHash: string): Promise<SessionRecord | undefined> {
    if (holdsNul(idHash)) return undefined;
    const row = await this.db.selectFrom('sessions').selectAll().where('id_hash', '=', idHash).executeTakeFirst();
    return row && { idHash: row.id_hash, memberId: row.member_id, expiresAt: Number(row.expires_at), createdAt: Number(row.created_at) };
  }

  async deleteSession(idHash: string): Promise<void> {
    if (holdsNul(idHash)) return;
    await this.db.deleteFrom('sessions').where('id_hash', '=', idHash).execute();
  }

  async deleteSessionsOf(memberId: string): Promise<void> {
    if (holdsNul(memberId)) return;
    await this.db.deleteFrom('sessions').where('member_id', '=', memberId).execute();
  }

  async deleteExpiredSessions(now: number): Promise<number> {
    const result = await this.db.deleteFrom('sessions').where('expires_at', '<=', now).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  // audit

  async appendAudit(e: AuditEntry): Promise<void> {
    await this.db
      .insertInto('audit_log')
      .values(storable('audit_log', { id: e.id, at: e.at, actor: e.actor, actor_address: e.actorAddress, action: e.action, account_id: e.accountId, key_id: e.keyId, detail: JSON.stringify(e.detail) }))
      .execute();
  }

  async listAudit(filter: { accountId?: string } & Page = {}): Promise<AuditEntry[]> {
    if (holdsNul(filter.accountId) || holdsNul(filter.after?.id)) return [];
    let query = this.db.selectFrom('audit_log').selectAll();
    if (filter.accountId !== undefined) query = query.where('account_id', '=', filter.accountId);
    // Newest first: the next page holds what comes before the previous page's last entry.
    if (filter.after) query = query.where(sql<boolean>`(at, id) < (${filter.after.createdAt}, ${filter.after.id})`);
    const rows = await query.orderBy('at', 'desc').orderBy('id', 'desc').limit(filter.limit ?? 200).execute();
    return rows.map((r) => ({
      id: r.id,
      at: Number(r.at),
      actor: r.actor,
      actorAddress: r.actor_address,
      action: r.action,
      accountId: r.account_id,
      keyId: r.key_id,
      detail: JSON.parse(r.detail) as Record<string, unknown>,
    }));
  }

  // meters and usage

  async saveMeterUsage(rows: readonly MeterUsageRow[]): Promise<void> {
    await this.writeMeterUsage(this.db, rows);
  }

  /** saveMeterUsage's statements, on `db` (a transaction, for removePendingUnits). */
  private async writeMeterUsage(db: Kysely<Database>, rows: readonly MeterUsageRow[]): Promise<void> {
    // Every row checked before any is written (the batches are not one transaction).
    const all = rows.map((r) => storable('meter_usage', { account_id: r.accountId, meter: r.meter, period_start: r.periodStart, used: r.used, returned: r.returned ?? 0 }));
    for (let i = 0; i < all.length; i += BATCH) {
      const values = all.slice(i, i + BATCH);
      await db
        .insertInto('meter_usage')
        .values(values)
        // Charges and give-backs only grow within a period: a process writing an older
        // figure late never takes either back (mergeUsage, in SQL; every right-hand side
        // reads the row as it was; SQLite's two-argument max() is PostgreSQL's greatest()).
        .onConflict((oc) =>
          oc.columns(['account_id', 'meter', 'period_start']).doUpdateSet((eb) => {
            const larger = this.kind === 'sqlite' ? 'max' : 'greatest';
            const oldCharged = eb(eb.ref('meter_usage.used'), '+', eb.ref('meter_usage.returned'));
            const newCharged = eb(eb.ref('excluded.used'), '+', eb.ref('excluded.returned'));
            const returned = eb.fn<number>(larger, [eb.ref('meter_usage.returned'), eb.ref('excluded.returned')]);
            // A reading as far along in both counts is kept as it is (no rounding).
            const used = eb
              .case()
              .when(eb.and([eb(newCharged, '>=', oldCharged), eb(eb.ref('excluded.returned'), '>=', eb.ref('meter_usage.returned'))]))
              .then(eb.ref('excluded.used'))
              .when(eb.and([eb(oldCharged, '>=', newCharged), eb(eb.ref('meter_usage.returned'), '>=', eb.ref('excluded.returned'))]))
              .then(eb.ref('meter_usage.used'))
              .else(eb(eb.fn<number>(larger, [oldCharged, newCharged]), '-', returned))
              .end();
            return { used, returned };
          }),
        )
        .execute();
    }
  }

  async savePendingUnits(rows: readonly PendingUnits[]): Promise<void> {
    const now = Date.now();
    await this.inBatches(rows, async (db, batch) => {
      const values = batch.map((r) => storable('pending_units', { id: randomUUID(), account_id: r.accountId, meter: r.meter, period_start: r.periodStart, units: r.units, saved_at: now }));
      await db.insertInto('pending_units').values(values).execute();
    });
  }

  async readPendingUnits(limit: number): Promise<SavedPendingUnits[]> {
    // Read, not taken: a row stays until removePendingUnits, once Redis has its units (see
    // RedisCounters.takeSavedUnits), so a process killed in between leaves it to the next.
    const rows = await this.db.selectFrom('pending_units').selectAll().orderBy('saved_at').orderBy('id').limit(limit).execute();
    return rows.map((r) => ({ id: r.id, accountId: r.account_id, meter: r.meter, periodStart: r.period_start, units: Number(r.units) }));
  }

  async removePendingUnits(ids: readonly string[], balances: readonly MeterUsageRow[]): Promise<void> {
    const matching = matchable(ids);
    if (matching.length === 0 && balances.length === 0) return;
    // One transaction: a row is gone only with the balance Redis reached by adding it.
    await this.db.transaction().execute(async (trx) => {
      await this.writeMeterUsage(trx, balances);
      for (let i = 0; i < matching.length; i += BATCH) await trx.deleteFrom('pending_units').where('id', 'in', matching.slice(i, i + BATCH)).execute();
    });
  }

  async loadMeterUsage(filter: { accountId?: string; periodStarts?: readonly string[] } = {}): Promise<MeterUsageRow[]> {
    if (holdsNul(filter.accountId)) return [];
    let query = this.db.selectFrom('meter_usage').selectAll();
    if (filter.accountId !== undefined) query = query.where('account_id', '=', filter.accountId);
    if (filter.periodStarts !== undefined) {
      const periodStarts = matchable(filter.periodStarts);
      if (periodStarts.length === 0) return [];
      query = query.where('period_start', 'in', [...periodStarts]);
    }
    const rows = await query.execute();
    return rows.map((r) => ({ accountId: r.account_id, meter: r.meter, periodStart: r.period_start, used: Number(r.used), returned: Number(r.returned) }));
  }

  async saveLimitState(rows: readonly LimitStateRow[], now: number): Promise<void> {
    await this.inBatches(rows, async (db, batch) => {
      await db
        .insertInto('limit_state')
        .values(batch.map((r) => storable('limit_state', { kind: r.kind, id: r.id, state: r.state, expires_at: r.expiresAt })))
        .onConflict((oc) => oc.columns(['kind', 'id']).doUpdateSet((eb) => ({ state: eb.ref('excluded.state'), expires_at: eb.ref('excluded.expires_at') })))
        .execute();
    });
    await this.db.deleteFrom('limit_state').where('expires_at', '<=', now).execute();
  }

  async loadLimitState(now: number, kind?: LimitStateRow['kind']): Promise<LimitStateRow[]> {
    let query = this.db.selectFrom('limit_state').selectAll().where('expires_at', '>', now);
    if (kind !== undefined) query = query.where('kind', '=', kind);
    const rows = await query.execute();
    return rows.map((r) => ({ kind: r.kind as LimitStateRow['kind'], id: r.id, state: r.state, expiresAt: Number(r.expires_at) }));
  }

  async setGauge(g: GaugeRow, now?: number): Promise<void> {
    // The later level wins, whichever arrives last: a gateway's report, written at its
    // next flush, must not undo a level the operator set after it. A stored time past the
    // writer's own is a clock ahead of this one's, not a later level.
    await this.db
      .insertInto('gauges')
      .values(storable('gauges', { account_id: g.accountId, meter: g.meter, value: g.value, updated_at: g.updatedAt }))
      .onConflict((oc) =>
        oc
          .columns(['account_id', 'meter'])
          .doUpdateSet((eb) => ({ value: eb.ref('excluded.value'), updated_at: eb.ref('excluded.updated_at') }))
          .where((eb) =>
            now === undefined
              ? eb('gauges.updated_at', '<=', eb.ref('excluded.updated_at'))
              : eb.or([eb('gauges.updated_at', '<=', eb.ref('excluded.updated_at')), eb('gauges.updated_at', '>', now)]),
          ),
      )
      .execute();
  }

  async listGauges(accountId: string): Promise<GaugeRow[]> {
    if (holdsNul(accountId)) return [];
    const rows = await this.db.selectFrom('gauges').selectAll().where('account_id', '=', accountId).execute();
    return rows.map((r) => ({ accountId: r.account_id, meter: r.meter, value: Number(r.value), updatedAt: Number(r.updated_at) }));
  }

  async addUsageDaily(rows: readonly UsageDailyRow[]): Promise<void> {
    await this.inBatches(rows, async (db, batch) => {
      const values = batch.map((r) => storable('usage_daily', { account_id: r.accountId, day: r.day, metric: r.metric, label: r.label, value: r.value }));
      await db
        .insertInto('usage_daily')
        .values(values)
        .onConflict((oc) =>
          oc.columns(['account_id', 'day', 'metric', 'label']).doUpdateSet((eb) => ({ value: eb('usage_daily.value', '+', eb.ref('excluded.value')) })),
        )
        .execute();
    });
  }

  /**
   * `write` for each batch of BATCH rows, all of them or none: a flush that failed part
   * way is tried again whole (usage-recorder.ts, the memory counters), and batches
   * written before the failure would then count twice. One batch is one statement,
   * whole by itself; more go in one transaction.
   */
  private async inBatches<T>(rows: readonly T[], write: (db: Kysely<Database>, batch: readonly T[]) => Promise<void>): Promise<void> {
    if (rows.length <= BATCH) {
      if (rows.length > 0) await write(this.db, rows);
      return;
    }
    await this.db.transaction().execute(async (trx) => {
      for (let i = 0; i < rows.length; i += BATCH) await write(trx, rows.slice(i, i + BATCH));
    });
  }

  async listUsageDaily(accountId: string, fromDay: string, toDay: string): Promise<UsageDailyRow[]> {
    if (holdsNul([accountId, fromDay, toDay])) return [];
    const rows = await this.db
      .selectFrom('usage_daily')
      .selectAll()
      .where('account_id', '=', accountId)
      .where('day', '>=', fromDay)
      .where('day', '<=', toDay)
      .orderBy('day')
      .execute();
    return rows.map((r) => ({ accountId: r.account_id, day: r.day, metric: r.metric as UsageDailyRow['metric'], label: r.label, value: Number(r.value) }));
  }

  async close(): Promise<void> {
    await this.db.destroy();
    await this.backend.onClose?.();
  }
}

function accountRow(a: AccountRecord): AccountsTable {
  return {
    id: a.id,
    name: a.name,
    plan_id: a.planId,
    plan_expires_at: a.planExpiresAt,
    api_access: a.apiAccess ? 1 : 0,
    overage: a.overage === null ? null : a.overage ? 1 : 0,
    limits: limitsText(a.limits),
    created_at: a.createdAt,
  };
}

/** Overrides as the `limits` column holds them: none (nothing overridden) is null. */
function limitsText(limits: LimitOverrides | undefined): string | null {
  if (!limits || (limits.rateLimits === null && Object.keys(limits.meters).length === 0)) return null;
  return JSON.stringify({ rateLimits: limits.rateLimits, meters: limits.meters });
}

/** The `limits` column read back; a value no release wrote (edited by hand) is no override rather than a crash on every request. */
function limitsOf(text: string | null | undefined): LimitOverrides | undefined {
  if (text == null) return undefined;
  try {
    const parsed = JSON.parse(text) as Partial<LimitOverrides>;
    const rateLimits = Array.isArray(parsed.rateLimits) ? parsed.rateLimits : null;
    const meters = parsed.meters !== null && typeof parsed.meters === 'object' ? Object.assign(Object.create(null) as Record<string, number>, parsed.meters) : {};
    return { rateLimits, meters };
  } catch {
    return undefined;
  }
}

const num = (v: number | null): number | null => (v === null ? null : Number(v));

function toAccount(r: AccountsTable): AccountRecord {
  const limits = limitsOf(r.limits);
  return {
    id: r.id,
    name: r.name,
    planId: r.plan_id,
    planExpiresAt: num(r.plan_expires_at),
    apiAccess: Number(r.api_access) === 1,
    overage: r.overage === null ? null : Number(r.overage) === 1,
    ...(limits ? { limits } : {}),
    createdAt: Number(r.created_at),
  };
}

function toKey(r: KeysTable): KeyRecord {
  return {
    id: r.id,
    hash: r.hash,
    hint: r.hint,
    name: r.name,
    accountId: r.account_id,
    mode: r.mode as KeyMode,
    scopes: JSON.parse(r.scopes) as string[],
    createdAt: Number(r.created_at),
    lastUsedAt: num(r.last_used_at),
    expiresAt: num(r.expires_at),
    revokedAt: num(r.revoked_at),
    createdBy: r.created_by,
    rotatedFrom: r.rotated_from,
    ...keyWindowsOf(r.rate_limits),
  };
}

/** A key's own windows as the `rate_limits` column holds them: none is null. */
function keyWindowsText(windows: RateLimit[] | undefined): string | null {
  return windows === undefined || windows.length === 0 ? null : JSON.stringify(windows);
}

/** The `rate_limits` column read back; a value no release wrote (edited by hand) is no window rather than a crash on every request. */
function keyWindowsOf(text: string | null | undefined): { rateLimits?: RateLimit[] } {
  if (text == null) return {};
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) && parsed.length > 0 ? { rateLimits: parsed as RateLimit[] } : {};
  } catch {
    return {};
  }
}

function signInFailureOf(r: Database['sign_in_failures']): SignInFailureRecord {
  return { emailDigest: r.email, source: r.source, failures: Number(r.failures), lockedUntil: r.locked_until === null ? null : Number(r.locked_until), updatedAt: Number(r.updated_at) };
}

function toMember(r: MembersTable): MemberRecord {
  return {
    id: r.id,
    accountId: r.account_id,
    email: r.email,
    passwordHash: r.password_hash,
    role: r.role as MemberRecord['role'],
    inviteHash: r.invite_hash,
    inviteExpiresAt: num(r.invite_expires_at),
    failedLogins: Number(r.failed_logins),
    lockedUntil: num(r.locked_until),
    createdAt: Number(r.created_at),
  };
}
