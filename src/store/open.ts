/** Opens the store named in keygate.yaml: `sqlite:<file>` or `postgres://...`. */
import type { Store } from './store.js';
import { openSqliteStore } from './sqlite/sqlite-database.js';
import { CONNECT_TIMEOUT_MS, isConnectTimeout, openPostgresStore } from './postgres/postgres-database.js';
import { redactUrl } from '../redact-url.js';
import { sqliteFile } from './sqlite-file.js';

// Where they were first defined; their homes are apart, for what reads a profile without opening a store.
export { redactUrl, sqliteFile };

export function openStore(url: string, baseDir = process.cwd()): Store {
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return openPostgresStore(url);
  if (url.startsWith('sqlite:')) return openSqliteStore(sqliteFile(url, baseDir) ?? ':memory:');
  throw new Error(`store: expected "sqlite:<file>" or "postgres://...", got "${url}"`);
}

/**
 * The store's first contact at start-up: a database that cannot be reached (not running,
 * a wrong host, port, name or password, a server that takes the connection and never
 * answers) is named, password hidden, with what to check. `connectTimeoutMs`: the one the
 * store was opened with (`keygate check` gives its own).
 */
/** A PostgreSQL that did not answer within `ms` (at: its URL, password hidden), as serve and keygate check say it. */
export function postgresSilent(at: string, ms: number): string {
  return `PostgreSQL at ${at} did not answer within ${ms / 1000} s (check the profile's store and that the database is running)`;
}

export async function reachStore(store: Store, url: string, connectTimeoutMs = CONNECT_TIMEOUT_MS): Promise<void> {
  try {
    await store.ping();
  } catch (error) {
    // The server answers but has no such database (3D000): a step of the setup not taken yet, not an outage.
    if (store.kind === 'postgres' && (error as { code?: unknown }).code === '3D000') {
      const name = databaseName(url);
      const create = name === undefined ? 'create it' : `create it (createdb ${createdbServer(url)}${shellWord(name)}, or CREATE DATABASE "${name}")`;
      throw new Error(`store: PostgreSQL at ${redactUrl(url)} has no database${name === undefined ? ' by the name it gives' : ` "${name}"`} yet: ${create}, then run keygate migrate`);
    }
    // Answered, and refused: a wrong user or password (28P01), a role or pg_hba.conf entry missing (28000). The fix is in the URL or the server's access rules, not the network.
    const code = (error as { code?: unknown }).code;
    if (store.kind === 'postgres' && (code === '28P01' || code === '28000')) {
      throw new Error(`store: PostgreSQL at ${redactUrl(url)} refuses the connection: ${(error as Error).message} (check the user and password in the profile's store, and the server's pg_hba.conf)`);
    }
    // Taken and never answered (a hung server, a port that is not PostgreSQL's): said as keygate check says it.
    if (store.kind === 'postgres' && isConnectTimeout(error)) throw new Error(`store: ${postgresSilent(redactUrl(url), connectTimeoutMs)}`);
    const what = store.kind === 'postgres' ? 'PostgreSQL' : 'the SQLite file';
    throw new Error(`store: cannot reach ${what} at ${redactUrl(url)}: ${(error as Error).message} (check the profile's store and that the database is running)`);
  }
}

/**
 * The database a `postgres://` URL names (its path, unescaped); undefined where the URL
 * does not read as one (the driver takes forms a URL parser does not). Never the URL
 * itself: it may hold a password.
 */
function databaseName(url: string): string | undefined {
  try {
    return decodeURIComponent(new URL(url).pathname.slice(1)) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The server and user a `postgres://` URL names, as `createdb` options ending in a space
 * (`-h db -U keygate `; `-p` for a port other than 5432): run on another host than the
 * database's, a bare `createdb` asks the local socket. Never the password.
 */
function createdbServer(url: string): string {
  try {
    const parsed = new URL(url);
    // An IPv6 address without its URL brackets, as createdb takes it.
    const host = decodeURIComponent(parsed.hostname).replace(/^\[(.*)\]$/, '$1');
    const user = decodeURIComponent(parsed.username);
    return [
      host ? `-h ${shellWord(host)} ` : '',
      parsed.port && parsed.port !== '5432' ? `-p ${parsed.port} ` : '',
      user ? `-U ${shellWord(user)} ` : '',
    ].join('');
  } catch {
    return '';
  }
}

/** A word as a shell takes it: as it is when plain, else in single quotes. */
function shellWord(word: string): string {
  return /^[\w.@:[\]%+-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
