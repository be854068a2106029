/**
 * `keygate store copy`: every row of a SQLite store into an empty PostgreSQL one, so that a
 * deployment that began on the embedded default can scale out (docs/scale-out.md) with its
 * accounts, keys, members, balances, usage and audit log.
 *
 * Both stores have their tables from the one migration set (migrations.ts): the same
 * tables, columns and column types, times as milliseconds in bigint columns, booleans as
 * 0/1 integers, lists and details as JSON text. So a SQLite value is written to PostgreSQL
 * as it is read; a column of a type the copy does not know to take as it is (a later
 * migration's) is refused, not guessed at. No table has a sequence today; any a column
 * draws from is set past the rows copied all the same.
 *
 * The target is written in one transaction (all or nothing); the source is read in one
 * read transaction (one moment of it) and never written, but migrated first (as every
 * command migrates SQLite), once the lock is held.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Client } from 'pg';
import { migrations } from './migrations.js';
import { DatabaseInUseError, lockDatabase } from './sqlite/process-lock.js';
import { redactUrl } from '../redact-url.js';

/** Kysely's record of applied migrations (and its lock): each store keeps its own. */
const MIGRATION_TABLES = /^keygate_migrations/;
/** PostgreSQL column types that take a SQLite value as it is read (see the module comment). */
const TAKEN_AS_IS = new Set(['text', 'bigint', 'integer', 'double precision']);
/** Opening the connection gives up after this long (a host that drops packets). */
const CONNECT_TIMEOUT_MS = 5_000;
/** Parameters per INSERT, well under PostgreSQL's 65535. */
const PARAMETERS_PER_INSERT = 20_000;

export interface CopiedTable {
  table: string;
  rows: number;
}

/** Why a copy was refused or failed; nothing was written to the target. */
export class StoreCopyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreCopyError';
  }
}

export interface StoreCopyOptions {
  /** The SQLite database file (absolute). */
  sourceFile: string;
  /** `postgres://…` (never printed with its password). */
  targetUrl: string;
  /** The profile whose store is the target, if the command was given one: named in the `keygate migrate` to run. */
  targetProfile?: string;
  /**
   * Brings the source up to this release's migrations (a file an older release made), run
   * once the lock is held: a copy refused for a serving keygate has written nothing to it.
   */
  migrateSource?: () => Promise<unknown>;
}

/**
 * Copies every table of the SQLite store at `sourceFile` (but the migrations' record) into
 * the PostgreSQL database at `targetUrl`, which must be migrated as far as the source and
 * hold no rows. Refused while any keygate serves the file (its process lock, with in-memory
 * or Redis counters; held meanwhile so that none starts). Returns the rows copied per table, in
 * the order written.
 */
export async function copySqliteToPostgres({ sourceFile, targetUrl, targetProfile, migrateSource }: StoreCopyOptions): Promise<CopiedTable[]> {
  const target = redactUrl(targetUrl);
  if (!existsSync(sourceFile)) throw new StoreCopyError(`no database at ${sourceFile}: nothing to copy`);
  let lock;
  try {
    lock = lockDatabase(sourceFile);
  } catch (error) {
    if (!(error instanceof DatabaseInUseError)) throw error;
    throw new StoreCopyError(
      error.holderShares
        ? `a keygate ${error.holder ? `(${error.holder}) ` : ''}is serving ${sourceFile}: stop every keygate serving it first. They write usage, balances and audit events to the file as they serve: a copy taken meanwhile would miss what they write after it`
        : `a keygate ${error.holder ? `(${error.holder}) ` : ''}is serving ${sourceFile}: stop it first. It keeps balances and rate limits in memory and writes them to the file as it stops: a copy taken while it serves would miss them`,
    );
  }
  let source: Database.Database | undefined;
  try {
    await migrateSource?.();
    source = new Database(sourceFile, { fileMustExist: true });
    source.pragma('busy_timeout = 5000');
    const client = await connect(targetUrl);
    try {
      await sameMigrations(source, client, target, targetProfile);
      const tables = await sameTables(source, client, target);
      return await copyTables(source, client, tables, target);
    } finally {
      await client.end().catch(() => undefined);
    }
  } finally {
    source?.close();
    lock.release();
  }
}

async function connect(url: string): Promise<Client> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw new StoreCopyError(`cannot reach PostgreSQL at ${redactUrl(url)}: ${(error as Error).message}`);
  }
  return client;
}

/** The migrations this release has, the source applied and the target applied: the same three, or what to do. */
async function sameMigrations(source: Database.Database, client: Client, target: string, targetProfile: string | undefined): Promise<void> {
  const known = Object.keys(migrations).sort();
  const inSource = source
    .prepare("select name from keygate_migrations order by name")
    .pluck()
    .all() as string[];
  const later = inSource.filter((name) => !known.includes(name));
  if (later.length > 0) throw new StoreCopyError(`the SQLite store has migrations this release does not know (${later.join(', ')}): copy it with the release that made it`);
  const missing = known.filter((name) => !inSource.includes(name));
  if (missing.length > 0) throw new StoreCopyError(`the SQLite store is not migrated (pending: ${missing.join(', ')}): run "keygate migrate" on its profile first`);
  const exists = await client.query<{ found: string | null }>("select to_regclass('keygate_migrations')::text as found");
  const inTarget = exists.rows[0]?.found ? (await client.query<{ name: string }>('select name from keygate_migrations order by name')).rows.map((row) => row.name) : [];
  const pending = known.filter((name) => !inTarget.includes(name));
  if (pending.length > 0) {
    const migrate = targetProfile === undefined ? `"keygate migrate --config <profile>" with the profile you will serve with (its store ${target})` : `"keygate migrate --config ${targetProfile}"`;
    throw new StoreCopyError(`PostgreSQL at ${target} is not migrated (pending: ${pending.join(', ')}): run ${migrate} first, then copy again`);
  }
  const further = inTarget.filter((name) => !known.includes(name));
  if (further.length > 0) throw new StoreCopyError(`PostgreSQL at ${target} has migrations this release does not know (${further.join(', ')}): a later release migrated it; copy with that release`);
}

interface Table {
  name: string;
  columns: string[];
}

/** The source's tables (but the migrations' record), each with its columns, in an order that writes a referenced row before the rows that name it; the target must have them all, of types taken as they are. */
async function sameTables(source: Database.Database, client: Client, target: string): Promise<Table[]> {
  const names = (source.prepare("select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name").pluck().all() as string[]).filter((name) => !MIGRATION_TABLES.test(name));
  const targetColumns = new Map<string, Map<string, string>>();
  const { rows } = await client.query<{ table_name: string; column_name: string; data_type: string }>(
    'select table_name, column_name, data_type from information_schema.columns where table_schema = current_schema()',
  );
  for (const row of rows) {
    if (MIGRATION_TABLES.test(row.table_name)) continue;
    const columns = targetColumns.get(row.table_name) ?? new Map<string, string>();
    columns.set(row.column_name, row.data_type);
    targetColumns.set(row.table_name, columns);
  }
  const tables: Table[] = [];
  for (const name of names) {
    const columns = (source.prepare(`pragma table_info(${quoted(name)})`).all() as { name: string }[]).map((column) => column.name);
    const there = targetColumns.get(name);
    if (!there) throw new StoreCopyError(`PostgreSQL at ${target} has no table ${name}, which the SQLite store has: are both migrated by this release?`);
    const lacking = columns.filter((column) => !there.has(column));
    if (lacking.length > 0) throw new StoreCopyError(`PostgreSQL at ${target} has no column ${lacking.map((column) => `${name}.${column}`).join(', ')}, which the SQLite store has`);
    const untaken = columns.filter((column) => !TAKEN_AS_IS.has(there.get(column) ?? ''));
    if (untaken.length > 0) throw new StoreCopyError(`${untaken.map((column) => `${name}.${column} (${there.get(column)})`).join(', ')}: this release does not know how to copy a column of that type`);
    tables.push({ name, columns });
  }
  const extra = [...targetColumns.keys()].filter((name) => !names.includes(name));
  if (extra.length > 0) throw new StoreCopyError(`PostgreSQL at ${target} has tables the SQLite store has not (${extra.sort().join(', ')}): copy into a database only keygate migrate made`);
  return referencedFirst(source, tables);
}

/** `tables` ordered so that each comes after the tables its foreign keys name. */
function referencedFirst(source: Database.Database, tables: Table[]): Table[] {
  const ordered: Table[] = [];
  const placed = new Set<string>();
  const place = (table: Table, seen: Set<string>) => {
    if (placed.has(table.name) || seen.has(table.name)) return;
    seen.add(table.name);
    const references = source.prepare(`pragma foreign_key_list(${quoted(table.name)})`).all() as { table: string }[];
    for (const { table: referenced } of references) {
      const other = tables.find((t) => t.name === referenced);
      if (other) place(other, seen);
    }
    placed.add(table.name);
    ordered.push(table);
  };
  for (const table of tables) place(table, new Set());
  return ordered;
}

/** Inside one transaction on each side: the target found empty, every row written, the counts compared, sequences set. */
async function copyTables(source: Database.Database, client: Client, tables: Table[], target: string): Promise<CopiedTable[]> {
  source.exec('begin');
  await client.query('begin');
  try {
    // No keygate writing the target meanwhile (one started on it too early): it waits.
    await client.query(`lock table ${tables.map((table) => quoted(table.name)).join(', ')} in exclusive mode`);
    const held: string[] = [];
    for (const table of tables) {
      const { rows } = await client.query<{ n: number }>(`select count(*)::int as n from ${quoted(table.name)}`);
      const n = rows[0]?.n ?? 0;
      if (n > 0) held.push(`${table.name} (${n} ${n === 1 ? 'row' : 'rows'})`);
    }
    if (held.length > 0) {
      throw new StoreCopyError(`PostgreSQL at ${target} is not empty: it holds ${held.join(', ')}. The copy never merges into or overwrites a store: copy into a new database (createdb, then keygate migrate)`);
    }
    const copied: CopiedTable[] = [];
    for (const table of tables) {
      let rows = 0;
      try {
        rows = await copyTable(source, client, table);
      } catch (error) {
        if (error instanceof StoreCopyError) throw error;
        throw new StoreCopyError(`copying ${table.name} failed: ${(error as Error).message}`);
      }
      const { rows: counted } = await client.query<{ n: number }>(`select count(*)::int as n from ${quoted(table.name)}`);
      if (counted[0]?.n !== rows) throw new StoreCopyError(`copying ${table.name}: ${rows} rows read, ${counted[0]?.n ?? 0} in PostgreSQL`);
      copied.push({ table: table.name, rows });
    }
    await resetSequences(client);
    await client.query('commit');
    return copied;
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    if (error instanceof StoreCopyError) throw new StoreCopyError(`${error.message}. Nothing was copied`);
    throw error;
  } finally {
    source.exec('rollback');
  }
}

/** The rows of `table`, a batch at a time; returns how many. */
async function copyTable(source: Database.Database, client: Client, table: Table): Promise<number> {
  const perInsert = Math.max(1, Math.floor(PARAMETERS_PER_INSERT / table.columns.length));
  const columns = table.columns.map(quoted).join(', ');
  let batch: unknown[][] = [];
  let rows = 0;
  const write = async () => {
    if (batch.length === 0) return;
    const values = batch.map((_, r) => `(${table.columns.map((_c, c) => `$${r * table.columns.length + c + 1}`).join(', ')})`).join(', ');
    await client.query(`insert into ${quoted(table.name)} (${columns}) values ${values}`, batch.flat());
    rows += batch.length;
    batch = [];
  };
  // The source's read transaction holds one moment of it while batches are written.
  for (const row of source.prepare(`select ${columns} from ${quoted(table.name)}`).raw().iterate() as IterableIterator<unknown[]>) {
    batch.push(row);
    if (batch.length >= perInsert) await write();
  }
  await write();
  return rows;
}

/** Every sequence a column draws from (none today), set past the rows copied. */
async function resetSequences(client: Client): Promise<void> {
  const { rows } = await client.query<{ table_name: string; column_name: string }>(
    "select table_name, column_name from information_schema.columns where table_schema = current_schema() and column_default like 'nextval(%'",
  );
  for (const { table_name: table, column_name: column } of rows) {
    await client.query(`select setval(pg_get_serial_sequence($1, $2), coalesce((select max(${quoted(column)}) from ${quoted(table)}), 0) + 1, false)`, [quoted(table), column]);
  }
}

function quoted(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
