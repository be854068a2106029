/**
 * Whether the backends a profile names can be used, asked the way `keygate serve` would
 * meet them but changing nothing (`keygate check`): the store answers and which migrations
 * it lacks (`keygate migrate --pending`'s question), or, for a SQLite file not made yet,
 * whether it could be made; Redis counters answer PING and let the profile's user use
 * keygate's keys, scripts and channel (an ACL may not); the upstream the gateway forwards
 * to answers HTTP (any status: HEAD /). Each within a few seconds; every URL said with its
 * password hidden. Database drivers are loaded only for a backend tried; the upstream is
 * asked with node:http(s), not the gateway's undici.
 */
import { existsSync, statSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Config } from '../config/schema.js';
import { redactUrl } from '../redact-url.js';
import { NOT_TLS, TLS_FAILURE } from '../upstream-failure.js';
import { DeadlineError, withDeadline } from '../deadline.js';
import { sqliteFile } from '../store/sqlite-file.js';
import { whatStopsMaking } from '../store/sqlite/private-files.js';
import { NO_PASSWORD_ASKED, UNUSED_PASSWORD } from '../counters/redis/unused-password.js';

/** How long each backend is given to answer before it counts as unreachable. */
export const REACH_DEADLINE_MS = 3_000;

/**
 * The store as found. `at`: its file, or its URL with the password hidden. `exists`
 * (SQLite): false where there is no file yet (serve would begin one). `pending`: the
 * migrations it lacks. `problem`: why it cannot be used, as said to a person.
 */
export interface StoreReached {
  kind: 'sqlite' | 'postgres';
  at: string;
  ok: boolean;
  exists?: boolean;
  pending?: string[];
  problem?: string;
}

/**
 * Redis counters as found (memory counters have nothing to reach). `warning`: usable, but not
 * as the profile means it. `answersPing`: not ok although it answered PING: it refuses what
 * serve asks of it (an ACL, a replica), which serve would meet at its first counted request.
 */
export interface CountersReached {
  kind: 'redis';
  at: string;
  ok: boolean;
  warning?: string;
  problem?: string;
  answersPing?: true;
}

/**
 * The upstream as found. `at`: upstream.url (a password hidden). `status`: what it answered
 * HEAD / with (any HTTP answer, 404 or 500 too, says it is reachable). `spawned`: keygate
 * serve starts it itself (upstream.spawn), so it is not running now and was not tried.
 */
export interface UpstreamReached {
  at: string;
  ok: boolean;
  status?: number;
  spawned?: boolean;
  problem?: string;
}

export interface BackendsReached {
  store: StoreReached;
  counters?: CountersReached;
  upstream?: UpstreamReached;
  /** Whether every backend tried can be used. */
  ok: boolean;
}

/** What is tried: the store and counters always; the upstream where serve would forward to one. */
export interface Backends {
  store: Config['store'];
  counters: Config['counters'];
  /** What serve does while Redis answers with an error, said where it does (keygate check). */
  counterFailure?: Config['counterFailure'];
  upstream?: { url: string; spawn?: readonly string[] | undefined };
}

/** Tries the profile's store, counters and upstream, all at once. */
export async function reachBackends(backends: Backends, deadlineMs = REACH_DEADLINE_MS): Promise<BackendsReached> {
  const [store, counters, upstream] = await Promise.all([
    reachStoreOf(backends.store, deadlineMs),
    backends.counters === 'memory' ? undefined : reachRedis(backends.counters, deadlineMs, backends.counterFailure),
    backends.upstream === undefined ? undefined : reachUpstream(backends.upstream, deadlineMs),
  ]);
  return { store, ...(counters ? { counters } : {}), ...(upstream ? { upstream } : {}), ok: store.ok && (counters?.ok ?? true) && (upstream?.ok ?? true) };
}

/** The lines `keygate check` prints for them, after the profile's. */
export function describeBackends(reached: BackendsReached): string[] {
  const { store, counters, upstream } = reached;
  const lines = [storeLine(store)];
  if (counters) lines.push(counters.ok ? `counters: Redis at ${counters.at} answers${counters.warning ? `; ${counters.warning}` : ''}` : `counters: ${counters.problem}`);
  if (upstream) lines.push(upstreamLine(upstream));
  return lines;
}

function upstreamLine(upstream: UpstreamReached): string {
  if (!upstream.ok) return `upstream: ${upstream.problem}`;
  if (upstream.spawned) return `upstream: ${upstream.at} is started by keygate serve (upstream.spawn), so it is not running now and was not tried`;
  return `upstream: ${upstream.at} answers (HEAD /: ${upstream.status})`;
}

function storeLine(store: StoreReached): string {
  if (!store.ok) return `store: ${store.problem}`;
  const what = store.kind === 'postgres' ? `PostgreSQL at ${store.at}` : store.at;
  // sqlite::memory: : a database each process makes for itself.
  if (store.exists === undefined && store.pending === undefined) return `store: ${store.at}, made in memory by each process`;
  if (store.exists === false) return `store: no database at ${store.at} yet: keygate serve begins one there`;
  const pending = store.pending ?? [];
  if (pending.length === 0) return `store: ${what} answers, every migration applied`;
  // SQLite migrates itself as a command opens it; PostgreSQL is refused until keygate migrate.
  const then = store.kind === 'postgres' ? 'keygate serve refuses it until keygate migrate applies them' : 'keygate serve applies them as it starts';
  return `store: ${what} answers; pending migrations: ${pending.join(', ')} (${then})`;
}

async function reachStoreOf(url: string, deadlineMs: number): Promise<StoreReached> {
  const file = sqliteFile(url);
  if (url.startsWith('sqlite:')) return file === undefined ? { kind: 'sqlite', at: url, ok: true } : reachSqlite(file, deadlineMs);
  const at = redactUrl(url);
  const [{ openPostgresStore }, { reachStore, postgresSilent }] = await Promise.all([import('../store/postgres/postgres-database.js'), import('../store/open.js')]);
  // The pool's own connect timeout is the check's deadline: a server that never answers is said as one.
  const store = openPostgresStore(url, { max: 1, connectTimeoutMs: deadlineMs });
  const asked = (async () => {
    await reachStore(store, url, deadlineMs);
    return store.pendingMigrations();
  })();
  try {
    return { kind: 'postgres', at, ok: true, pending: await withDeadline(asked, deadlineMs, { what: 'PostgreSQL' }) };
  } catch (error) {
    // The pool's connect timeout is said by reachStore in the same words.
    if (error instanceof DeadlineError) return { kind: 'postgres', at, ok: false, problem: postgresSilent(at, deadlineMs) };
    // reachStore's words (the createdb hint for a database not made yet), without their "store: ".
    return { kind: 'postgres', at, ok: false, problem: (error as Error).message.replace(/^store: /, '') };
  } finally {
    // A server that does not answer may hold the pool's end too: not waited for.
    void store.close().catch(() => undefined);
  }
}

async function reachSqlite(file: string, deadlineMs: number): Promise<StoreReached> {
  if (!existsSync(file)) {
    // Opening it would make it: only asked whether it could be made.
    let stops: string | undefined;
    try {
      stops = whatStopsMaking(file);
    } catch (error) {
      stops = (error as Error).message;
    }
    return stops === undefined ? { kind: 'sqlite', at: file, ok: true, exists: false } : { kind: 'sqlite', at: file, ok: false, problem: `no database at ${file}, and none can be made there: ${stops}` };
  }
  if (statSync(file).isDirectory()) return { kind: 'sqlite', at: file, ok: false, problem: `cannot open the SQLite file ${file}: that is a folder; name a file in it, such as sqlite:./data/keygate.db` };
  const { openSqliteStoreToRead } = await import('../store/sqlite/sqlite-database.js');
  try {
    const store = openSqliteStoreToRead(file);
    try {
      return { kind: 'sqlite', at: file, ok: true, exists: true, pending: await withDeadline(store.pendingMigrations(), deadlineMs, { what: 'SQLite' }) };
    } catch (error) {
      if (error instanceof DeadlineError) return { kind: 'sqlite', at: file, ok: false, problem: `the SQLite file ${file} could not be read within ${deadlineMs / 1000} s` };
      throw error;
    } finally {
      await store.close();
    }
  } catch (error) {
    const message = (error as Error).message;
    return { kind: 'sqlite', at: file, ok: false, problem: message.startsWith('store: ') ? message.slice('store: '.length) : `cannot read the SQLite file ${file}: ${message}` };
  }
}

/**
 * Redis's answers that refuse the client rather than fail: a wrong password or user
 * (WRONGPASS; before Redis 6 "invalid password"), or none given where one is asked (NOAUTH).
 */
const REFUSED = /^(?:Ready check failed: )?(?:WRONGPASS|NOAUTH)\b|^ERR invalid password/;

/**
 * A key under the prefix that no keygate process writes: the check's write is asked of it,
 * where it changes nothing (PEXPIRE of a key that does not exist).
 */
const CHECK_KEY = 'check:acl';
/** What keygate serve asks of Redis, as the ACL check tries it: a script writing a key under the prefix. */
const TRY_SCRIPT = "return redis.call('PEXPIRE', KEYS[1], 1)";
/** What an ACL that leaves INFO out costs: the ready check at each connection asks it (counters/redis/info-refused.ts). */
const INFO_REFUSED =
  'it refuses INFO to this user: keygate serves all the same, but cannot tell a Redis still loading its data after a restart from a ready one, and says so once in its log (allow +info)';

/**
 * The commands keygate serve sends with the URL's user, as counters/redis/ sends them (an
 * ACL checks each command a script calls as well as the script's own EVALSHA): its scripts
 * (EVALSHA, EVAL where Redis lacks one) and what they call (scripts.ts), the reads, writes
 * and transactions it sends outside them (redis-counters.ts), the channel's, on connecting
 * the connection's name (SELECT too, for a database other than 0; INFO, the ready check's,
 * is warned of apart), and the start-up try's PING (this module's, as keygate check's).
 */
export const SERVE_COMMANDS = [
  'CLIENT SETNAME', 'DEL', 'EVAL', 'EVALSHA', 'EXEC', 'EXISTS', 'GET', 'HDEL', 'HGET', 'HINCRBYFLOAT', 'HMGET', 'HSET', 'HSETNX', 'LINDEX', 'LPOP', 'MULTI', 'PEXPIRE', 'PING',
  'PTTL', 'PUBLISH', 'RPUSH', 'SADD', 'SELECT', 'SET', 'SREM', 'SRANDMEMBER', 'SUBSCRIBE', 'ZADD', 'ZCARD', 'ZRANGE', 'ZRANGEBYSCORE', 'ZREM', 'ZREMRANGEBYRANK', 'ZREMRANGEBYSCORE', 'ZSCORE',
];

/** The rights keygate serve needs of the URL's user, as a Redis ACL names them. */
function aclRights(prefix: string, channel: string): string {
  return `the user needs keys ~${prefix}*, the channel &${channel} and the commands ${SERVE_COMMANDS.join(', ')}, which +@all -@dangerous allows: docs/scale-out.md#a-redis-user-for-keygate`;
}

/** Redis refusing a command by the user's ACL: itself, or one a script calls (Redis 7.0 says that as ERR). */
const ACL_REFUSAL = /^NOPERM\b|^ERR The user executing the script can't/;

/**
 * An error Redis answers of its own state rather than the user's rights (LOADING, BUSY,
 * MISCONF, OOM, …): most pass. What serve does meanwhile, where `counterFailure` is given
 * (keygate check; serve says it itself after the line).
 */
function stateHint(counterFailure: Config['counterFailure'] | undefined): string {
  const state = "an error of Redis's own state, not of the user's rights: LOADING, BUSY, MISCONF and OOM pass once Redis has loaded its data, ended its script, saved again or has memory again";
  if (counterFailure === undefined) return state;
  const meanwhile =
    counterFailure === 'open'
      ? 'keygate serve admits requests with a rate limit, block policy or cost on per-process limits (counterFailure: open)'
      : 'keygate serve refuses requests with a rate limit, block policy or cost (service_unavailable; counterFailure: closed)';
  return `${state}; until it does, ${meanwhile}`;
}

/**
 * Tries Redis counters as `keygate check` does (PING, then what serve asks of the URL's
 * user); also serve's start-up try. `counterFailure`: said with an error of Redis's state.
 */
export async function reachRedis(url: string, deadlineMs: number, counterFailure?: Config['counterFailure']): Promise<CountersReached> {
  const at = redactUrl(url);
  const [{ Redis }, { parseRedisUrl }, { cacheChannel }] = await Promise.all([
    import('ioredis'),
    import('../counters/redis/connection.js'),
    import('../counters/redis/redis-counters.js'),
  ]);
  // The user and password are sent by the check itself (AUTH), not by ioredis: the answer
  // of a Redis that asks none is the check's to say, on its line.
  // As ioredis reads them: from before the host, or else from the query (?password=).
  const { url: bare, prefix } = parseRedisUrl(url);
  const target = new URL(bare);
  const inUserinfo = target.username !== '' || target.password !== '';
  const username = inUserinfo ? decodeURIComponent(target.username) : (target.searchParams.get('username') ?? '');
  const password = inUserinfo ? decodeURIComponent(target.password) : (target.searchParams.get('password') ?? '');
  target.username = '';
  target.password = '';
  target.searchParams.delete('username');
  target.searchParams.delete('password');
  // One try, no reconnecting, nothing queued: an answer or why not.
  const client = new Redis(target.toString(), {
    lazyConnect: true,
    enableOfflineQueue: false,
    // Its INFO would go before AUTH: PING is the check's question.
    enableReadyCheck: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: deadlineMs,
    commandTimeout: deadlineMs,
    // Closing does not wait for a socket's end (the default holds the exit 2 s).
    disconnectTimeout: 0,
    connectionName: 'keygate-check',
  });
  let lastError: Error | undefined;
  client.on('error', (error: Error) => (lastError = error));
  let unusedPassword = false;
  let infoRefused = false;
  const channel = cacheChannel(prefix, Number(client.options.db ?? 0));
  /** Set once PING is answered: a refusal after it is the user's rights, not the connection. */
  let answered = false;
  const asked = async () => {
    await client.connect();
    if (username !== '' || password !== '') {
      try {
        await (username === '' ? client.auth(password) : client.auth(username, password));
      } catch (error) {
        if (!NO_PASSWORD_ASKED.test((error as Error).message)) throw error;
        unusedPassword = true;
      }
    }
    await client.ping();
    answered = true;
    // What serve asks, changing nothing: a script that writes under the prefix (an ACL's
    // keys and @scripting; a read-only replica refuses it too), then the channel (SUBSCRIBE
    // last: the connection takes no other command after it).
    await client.eval(TRY_SCRIPT, 1, `${prefix}${CHECK_KEY}`);
    infoRefused = await client.info('server').then(
      () => false,
      (error: Error) => /^NOPERM\b/.test(error.message),
    );
    await client.subscribe(channel);
  };
  try {
    await withDeadline(asked(), deadlineMs);
    const warnings = [...(unusedPassword ? [UNUSED_PASSWORD] : []), ...(infoRefused ? [INFO_REFUSED] : [])];
    return { kind: 'redis', at, ok: true, ...(warnings.length > 0 ? { warning: warnings.join('; ') } : {}) };
  } catch (error) {
    if (error instanceof DeadlineError) return { kind: 'redis', at, ok: false, problem: `Redis at ${at} did not answer within ${deadlineMs / 1000} s (check the profile's counters and that Redis is running)` };
    if (answered && (error as Error).name === 'ReplyError') {
      const refusal = (error as Error).message;
      // NOPERM (or, for a command a script calls, Redis 7.0's ERR): the user's ACL; READONLY: a replica, which takes no admission.
      const hint = ACL_REFUSAL.test(refusal) ? aclRights(prefix, channel) : /^READONLY\b/.test(refusal) ? 'a replica: name the primary in the profile\'s counters' : stateHint(counterFailure);
      return { kind: 'redis', at, ok: false, answersPing: true, problem: `Redis at ${at} answers PING, but refuses what keygate serve asks of it: ${refusal} (${hint})` };
    }
    const why = (error as Error).name === 'ReplyError' ? (error as Error).message : (lastError ?? (error as Error)).message;
    // Answered, and refused: the fix is in the URL's user and password, not the network.
    if (REFUSED.test(why)) return { kind: 'redis', at, ok: false, problem: `Redis at ${at} refuses the connection: ${why} (check the user and password in the profile's counters)` };
    // Why in the parentheses: a URL ending with its prefix's ":" (?prefix=keygate:) read "keygate::" before it.
    return { kind: 'redis', at, ok: false, problem: `cannot reach Redis at ${at} (${why}; check the profile's counters and that Redis is running)` };
  } finally {
    client.disconnect();
  }
}

/** What a person is told to look at for an upstream that cannot be used. */
const UPSTREAM_HINT = 'check upstream.url and that the upstream is running; keygate serve would answer every request upstream_unavailable';


/** What one HEAD / to the upstream met: an HTTP answer, an error, or nothing within the deadline (`error` undefined). */
export type UpstreamAnswer = { answered: true; status: number } | { answered: false; connected: boolean; error?: NodeJS.ErrnoException };

/**
 * One HEAD / to upstream.url, as the gateway would open a connection to it (the same TLS
 * trust: Node's, with NODE_EXTRA_CA_CERTS), on a new connection, without credentials of
 * any kind (the gateway sends none of its own). `userAgent` says who asks, in the
 * upstream's access log. Shared by `keygate check` and serve's start-up try.
 */
export async function askUpstream(url: string, deadlineMs: number, userAgent: string): Promise<UpstreamAnswer> {
  const target = new URL('/', url);
  const { request } = target.protocol === 'https:' ? await import('node:https') : await import('node:http');
  return new Promise<UpstreamAnswer>((resolve) => {
    let connected = false;
    let settled = false;
    const done = (answer: UpstreamAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // Nothing more is read: the connection goes, whatever it was doing.
      asked.destroy();
      resolve(answer);
    };
    const asked = request(target, { method: 'HEAD', agent: false, headers: { 'user-agent': userAgent } });
    const timer = setTimeout(() => done({ answered: false, connected }), deadlineMs);
    asked.on('socket', (socket: Socket) => socket.once('connect', () => (connected = true)));
    asked.on('response', (response: IncomingMessage) => {
      response.resume();
      done({ answered: true, status: response.statusCode ?? 0 });
    });
    asked.on('error', (error: NodeJS.ErrnoException) => done({ answered: false, connected, error }));
    asked.end();
  });
}

/**
 * `keygate check`'s upstream line: any HTTP answer to askUpstream is a reachable upstream;
 * no connection, no answer within the deadline, a failed TLS handshake or an unknown host
 * name is said as what it is. One spawned by serve (upstream.spawn) runs only while serve
 * does: said so, not tried.
 */
async function reachUpstream(upstream: NonNullable<Backends['upstream']>, deadlineMs: number): Promise<UpstreamReached> {
  const { url } = upstream;
  const shown = redactUrl(url);
  // As the profile writes it: redactUrl's URL ends an origin with "/".
  const at = url.endsWith('/') ? shown : shown.replace(/\/$/, '');
  if (upstream.spawn !== undefined) return { at, ok: true, spawned: true };
  const target = new URL('/', url);
  const tls = target.protocol === 'https:';
  /** host:port, the port said where the URL leaves it out (an IPv6 address in its brackets). */
  const address = target.port ? target.host : `${target.host}:${tls ? 443 : 80}`;
  const answer = await askUpstream(url, deadlineMs, 'keygate-check');
  if (answer.answered) return { at, ok: true, status: answer.status };
  const failed = (problem: string): UpstreamReached => ({ at, ok: false, problem });
  const { error, connected } = answer;
  if (error === undefined) {
    return failed(
      connected
        ? `the upstream at ${at} took the connection but gave no answer to HEAD / within ${deadlineMs / 1000} s (check upstream.url is the API's own port, and that the upstream is not stuck; keygate serve would answer requests upstream_timeout)`
        : `the upstream at ${at} accepted no connection within ${deadlineMs / 1000} s (check upstream.url, that the upstream is running, and that no firewall drops connections to ${address}; keygate serve would answer every request upstream_unavailable)`,
    );
  }
  const code = error.code ?? '';
  if (code === 'ECONNREFUSED') return failed(`cannot reach the upstream at ${at}: the connection was refused, nothing listens at ${address} (${error.message}; ${UPSTREAM_HINT})`);
  if (code === 'ENOTFOUND') return failed(`cannot reach the upstream at ${at}: no such host name ${target.hostname} (${error.message}; check upstream.url)`);
  if (code === 'EAI_AGAIN') return failed(`cannot reach the upstream at ${at}: the host name ${target.hostname} could not be looked up, DNS did not answer (${error.message}; check upstream.url and this machine's DNS)`);
  // OpenSSL's reason alone, without its codes and source file.
  const why = /SSL routines:[^:]*:([^:]+)/.exec(error.message)?.[1] ?? error.message.split('\n')[0];
  if (tls && NOT_TLS.test(error.message)) return failed(`the upstream at ${at} does not speak TLS: the TLS handshake failed (${why}); if it serves plain HTTP, upstream.url is http://, not https://`);
  if (tls && TLS_FAILURE.test(code)) return failed(`the upstream at ${at} failed the TLS handshake: ${why} (${code}; its certificate must be one this machine trusts, for ${target.hostname}: NODE_EXTRA_CA_CERTS names a private CA's)`);
  if (code === 'ECONNRESET' && connected) return failed(`the upstream at ${at} closed the connection without an HTTP answer to HEAD / (${error.message}; ${tls ? 'check upstream.url is the API\'s own port' : 'check upstream.url is the API\'s own port; one that serves TLS is https://'})`);
  return failed(`cannot reach the upstream at ${at}: ${error.message} (${UPSTREAM_HINT})`);
}
