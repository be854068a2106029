/**
 * `keygate check` tries the store, the counters and the upstream a valid profile names, as
 * `keygate serve` would meet them, changing nothing: a SQLite file (or whether one could be
 * made), PostgreSQL (reached, the database there, its migrations), Redis (PING), the
 * upstream (HEAD /: any HTTP answer; one upstream.spawn starts is not tried). Each said on a
 * line after the profile's own, with its password hidden; one that cannot be used exits 4
 * (2 stays a bad profile). `--offline` tries neither, for a CI job without them. A server
 * that refuses the user or password is said as refusing, one that never answers as not
 * answering within the deadline; a SQLite file's folder is left as it was found.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, spawnServe, startFailure } from './support/cli.js';
import { tempDir } from './support/temp.js';
import { refusedUrl } from './support/refused.js';
import { IN_CI, POSTGRES_URL, REDIS_URL, serviceAvailable } from './support/services.js';
import { createTestDatabase, type TestDatabase } from './backends/isolation.js';
import { startRedisServer } from './scale-out/cluster.js';

const dir = tempDir('keygate-check-backends');
const SECRET = 'hunter2-secret';
const SERVES = 'serves: the gateway, the admin API and the dashboard';

/** The upstream the profiles forward to: a loopback HTTP server answering every request 200. */
const api = createHttpServer((_request, response) => response.end('ok'));
await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
afterAll(() => new Promise((resolve) => api.close(resolve)));
const UPSTREAM = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
/** Its line, the last of a check. */
const UPSTREAM_ANSWERS = `upstream: ${UPSTREAM} answers (HEAD /: 200)`;

/** The check's deadline for each backend, as its lines state it ("within 3 s"). */
const DEADLINE_MS = 3_000;
/**
 * Beyond the deadline, what a loaded host may add before the command has exited: a guard
 * against a check that hangs, not a timing (timing decides no test; the words "within 3 s"
 * and the lower bound say the deadline was the one that ended it).
 */
const EXIT_MARGIN_MS = 30_000;

/**
 * A loopback listener that takes connections and never says a word: a server that hangs.
 * `accepted`: when it took the first connection (the check's clock starts there, not at
 * the command's start-up).
 */
async function silentListener(): Promise<{ port: number; accepted: () => number | undefined; close: () => Promise<void> }> {
  const sockets: Socket[] = [];
  let first: number | undefined;
  const server = createServer((socket) => {
    first ??= Date.now();
    socket.on('error', () => undefined);
    sockets.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => first,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * A loopback port where connections are never accepted: a listener with a backlog of 1 in
 * a child process whose event loop is blocked (it never calls accept), its queue then
 * filled by `backlog + 1` connections, as Linux queues them. Linux drops a SYN to a full
 * queue, so a further connection stays unopened, as one to a host that drops packets does.
 */
async function unacceptingPort(): Promise<{ port: number; close: () => void }> {
  const listening = `const server = require('node:net').createServer();
server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () =>
  process.stdout.write(server.address().port + '\\n', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)));`;
  const child = spawn(process.execPath, ['-e', listening], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
    child.once('exit', (code) => reject(new Error(`the listener exited (${code}) before listening`)));
  });
  const queued: Socket[] = [];
  const close = () => {
    for (const socket of queued) socket.destroy();
    child.kill('SIGKILL');
  };
  try {
    for (let i = 0; i < 2; i++) {
      const socket = connect(port, '127.0.0.1');
      queued.push(socket);
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
    }
  } catch (error) {
    close();
    throw error;
  }
  return { port, close };
}

/**
 * A server speaking just enough of PostgreSQL's protocol to ask for a password (in clear)
 * and refuse it with 28P01, as a server with password authentication does: the local
 * PostgreSQL trusts every user, so a wrong password cannot be tried on it. `passwords`:
 * those it was sent.
 */
async function passwordRefusingPostgres(user: string): Promise<{ port: number; passwords: string[]; close: () => Promise<void> }> {
  const passwords: string[] = [];
  const sockets: Socket[] = [];
  const message = (type: string, body: Buffer) => {
    const head = Buffer.alloc(5);
    head.write(type, 0);
    head.writeInt32BE(body.length + 4, 1);
    return Buffer.concat([head, body]);
  };
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    let received = Buffer.alloc(0);
    let started = false;
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (!started && received.length >= 4 && received.length >= received.readInt32BE(0)) {
        // The startup message (length first, no type byte): ask for the password.
        received = received.subarray(received.readInt32BE(0));
        started = true;
        const cleartext = Buffer.alloc(4);
        cleartext.writeInt32BE(3);
        socket.write(message('R', cleartext));
      }
      if (started && received.length >= 5 && received.length >= 1 + received.readInt32BE(1) && received.toString('latin1', 0, 1) === 'p') {
        passwords.push(received.toString('utf8', 5, received.readInt32BE(1)).replace(/\0$/, ''));
        const fields = ['SFATAL', 'VFATAL', 'C28P01', `Mpassword authentication failed for user "${user}"`].map((field) => `${field}\0`).join('');
        socket.end(message('E', Buffer.from(`${fields}\0`)));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    passwords,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Runs the command, and answers how long after the listener's first connection it exited. */
async function timedAfterAccept(args: string[], accepted: () => number | undefined): Promise<{ code: number; stdout: string; stderr: string; afterAcceptMs: number }> {
  const r = await runCli(args);
  const at = accepted();
  return { ...r, afterAcceptMs: at === undefined ? Number.NaN : Date.now() - at };
}

function profile(name: string, store: string, counters = 'memory'): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, stringify({ upstream: { url: UPSTREAM }, store, counters }));
  return file;
}

/** The URL with this password in it (trust authentication lets it through, and it must never be shown). */
function withPassword(url: string): string {
  const parsed = new URL(url);
  parsed.password = SECRET;
  return parsed.toString();
}

/** Whether openssl runs here (to make a certificate): without CI, its absence skips that test with a printed reason; with CI=true (where .ci/run installs it) it fails it. */
function opensslRuns(): boolean {
  if (spawnSync('openssl', ['version']).status === 0) return true;
  if (IN_CI) throw new Error('openssl is not installed, and CI=true requires it (.ci/run installs it)');
  console.warn('[skip] openssl is not installed: the untrusted-certificate check of the upstream is not run (set CI=true to make this a failure)');
  return false;
}

describe('keygate check: a SQLite store', () => {
  it('says where a database not made yet would be begun, without making it or its folder; once made, that every migration is applied', async () => {
    const file = path.join(dir, 'later', 'deeper', 'keygate.db');
    const config = profile('sqlite-new', `sqlite:${file}`);
    const human = await runCli(['check', '--config', config]);
    expect([human.code, human.stdout, human.stderr]).toEqual([0, `${config}: ok (1 plan, 1 route)\n${SERVES}\nstore: no database at ${file} yet: keygate serve begins one there\n${UPSTREAM_ANSWERS}\n`, '']);
    const json = await runCli(['--json', 'check', '--config', config]);
    expect([json.code, JSON.parse(json.stdout).store]).toEqual([0, { kind: 'sqlite', at: file, ok: true, exists: false }]);
    expect(existsSync(path.join(dir, 'later'))).toBe(false);

    expect((await runCli(['migrate', '--config', config])).code).toBe(0);
    const made = await runCli(['check', '--config', config]);
    expect([made.code, made.stdout.split('\n').slice(2)]).toEqual([0, [`store: ${file} answers, every migration applied`, UPSTREAM_ANSWERS, '']]);
    const madeJson = await runCli(['--json', 'check', '--config', config]);
    expect(JSON.parse(madeJson.stdout).store).toEqual({ kind: 'sqlite', at: file, ok: true, exists: true, pending: [] });
    // Read, never written: nothing appears beside it.
    expect(readdirSync(path.dirname(file))).toEqual(['keygate.db']);
  });

  it('leaves a WAL database folder as it found it: no -wal or -shm made beside a file nothing holds', async () => {
    const folder = path.join(dir, 'wal-alone');
    const file = path.join(folder, 'keygate.db');
    const config = profile('sqlite-wal-alone', `sqlite:${file}`);
    expect((await runCli(['migrate', '--config', config])).code).toBe(0);
    // keygate keeps its file in WAL mode; closed, SQLite took its -wal and -shm away.
    const before = readdirSync(folder);
    expect(before).toEqual(['keygate.db']);
    const human = await runCli(['check', '--config', config]);
    expect([human.code, human.stdout.split('\n')[2]]).toEqual([0, `store: ${file} answers, every migration applied`]);
    expect(readdirSync(folder)).toEqual(before);
    const json = await runCli(['--json', 'check', '--config', config]);
    expect(JSON.parse(json.stdout).store).toEqual({ kind: 'sqlite', at: file, ok: true, exists: true, pending: [] });
    expect(readdirSync(folder)).toEqual(before);
  });

  it('answers for a WAL database a running keygate serve holds, removing none of its files', async () => {
    const folder = path.join(dir, 'wal-served');
    const file = path.join(folder, 'keygate.db');
    const config = path.join(dir, 'sqlite-wal-served.yaml');
    writeFileSync(config, stringify({ upstream: { url: UPSTREAM }, listen: { port: 0 }, admin: { listen: { port: 0 } }, dashboard: { enabled: false }, store: `sqlite:${file}` }));
    const serve = spawnServe(config);
    try {
      const serving = JSON.parse(await serve.logged('keygate is serving')) as { admin: string };
      const held = readdirSync(folder).sort();
      expect(held).toEqual(expect.arrayContaining(['keygate.db', 'keygate.db-shm', 'keygate.db-wal']));
      const human = await runCli(['check', '--config', config]);
      expect([human.code, human.stdout.split('\n').slice(1)]).toEqual([0, ['serves: the gateway and the admin API', `store: ${file} answers, every migration applied`, UPSTREAM_ANSWERS, '']]);
      expect(readdirSync(folder).sort()).toEqual(held);
      // The server still reads and writes its database through them.
      expect((await fetch(`${serving.admin}/health/ready`)).status).toBe(200);
    } finally {
      serve.child.kill('SIGTERM');
      await serve.exited();
    }
  });

  it('exits 4 where no database can be made (a file where its folder goes, a folder where the file goes), naming what is in the way; --offline does not look', async () => {
    const blocker = path.join(dir, 'not-a-folder');
    writeFileSync(blocker, 'x');
    const file = path.join(blocker, 'keygate.db');
    const config = profile('sqlite-blocked', `sqlite:${file}`);
    const human = await runCli(['check', '--config', config]);
    expect([human.code, human.stdout, human.stderr]).toEqual([
      4,
      `${config}: ok (1 plan, 1 route)\n${SERVES}\nstore: no database at ${file}, and none can be made there: ${blocker} is a file, not a folder\n${UPSTREAM_ANSWERS}\n`,
      '',
    ]);
    const json = await runCli(['--json', 'check', '--config', config]);
    expect([json.code, JSON.parse(json.stdout)]).toEqual([
      4,
      {
        file: config,
        ok: true,
        plans: 1,
        routes: 1,
        serve: { servable: true, gateway: true, listeners: ['gateway', 'admin', 'dashboard'] },
        store: { kind: 'sqlite', at: file, ok: false, problem: `no database at ${file}, and none can be made there: ${blocker} is a file, not a folder` },
        upstream: { at: UPSTREAM, ok: true, status: 200 },
      },
    ]);

    const folder = path.join(dir, 'a-folder.db');
    mkdirSync(folder);
    const folderConfig = profile('sqlite-folder', `sqlite:${folder}`);
    const refused = await runCli(['check', '--config', folderConfig]);
    expect([refused.code, refused.stdout.split('\n')[2]]).toEqual([4, `store: cannot open the SQLite file ${folder}: that is a folder; name a file in it, such as sqlite:./data/keygate.db`]);

    const offline = await runCli(['check', '--offline', '--config', config]);
    expect([offline.code, offline.stdout, offline.stderr]).toEqual([0, `${config}: ok (1 plan, 1 route)\n${SERVES}\n`, '']);
    const offlineJson = await runCli(['--json', 'check', '--offline', '--config', config]);
    expect([offlineJson.code, Object.keys(JSON.parse(offlineJson.stdout))]).toEqual([0, ['file', 'ok', 'plans', 'routes', 'serve']]);
  });

  it('a bad profile stays exit 2, its store not tried', async () => {
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, stringify({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${path.join(dir, 'not-a-folder', 'k.db')}`, zzz: 1 }));
    const r = await runCli(['check', '--config', file]);
    expect([r.code, r.stdout]).toEqual([2, '']);
    expect(r.stderr).not.toContain('store:');
  });
});

describe('keygate check and serve: a PostgreSQL that never answers', () => {
  it('exits 4 once the deadline passes, saying it did not answer within 3 s, never the password', async () => {
    const silent = await silentListener();
    try {
      const url = `postgres://keygate:${SECRET}@127.0.0.1:${silent.port}/keygate`;
      const shown = `postgres://keygate:***@127.0.0.1:${silent.port}/keygate`;
      const said = `PostgreSQL at ${shown} did not answer within 3 s (check the profile's store and that the database is running)`;
      const config = profile('pg-silent', url);
      const human = await timedAfterAccept(['check', '--config', config], silent.accepted);
      expect([human.code, human.stdout, human.stderr]).toEqual([4, `${config}: ok (1 plan, 1 route)\n${SERVES}\nstore: ${said}\n${UPSTREAM_ANSWERS}\n`, '']);
      // Given the stated 3 s, and exited soon after.
      expect(human.afterAcceptMs).toBeGreaterThanOrEqual(DEADLINE_MS - 100);
      expect(human.afterAcceptMs).toBeLessThan(DEADLINE_MS + EXIT_MARGIN_MS);
      const json = await runCli(['--json', 'check', '--config', config]);
      expect([json.code, JSON.parse(json.stdout).store]).toEqual([4, { kind: 'postgres', at: shown, ok: false, problem: said }]);
      expect(human.stdout + human.stderr + json.stdout + json.stderr).not.toContain(SECRET);
    } finally {
      await silent.close();
    }
  });

  it('keygate serve gives it the same 3 s and refuses to start in the same words (exit 1), never the password', async () => {
    const silent = await silentListener();
    try {
      const url = `postgres://keygate:${SECRET}@127.0.0.1:${silent.port}/keygate`;
      const shown = `postgres://keygate:***@127.0.0.1:${silent.port}/keygate`;
      const config = profile('pg-silent-serve', url);
      const served = await timedAfterAccept(['serve', '--config', config, '--port', '0', '--admin-port', '0', '--dashboard-port', '0'], silent.accepted);
      expect(startFailure(served)).toEqual({
        code: 1,
        msg: `keygate could not start: store: PostgreSQL at ${shown} did not answer within 3 s (check the profile's store and that the database is running)`,
        stderr: '',
      });
      // The pool's connect timeout is the one said (not pg's or an earlier 2 s), and the exit followed it.
      expect(served.afterAcceptMs).toBeGreaterThanOrEqual(DEADLINE_MS - 100);
      expect(served.afterAcceptMs).toBeLessThan(DEADLINE_MS + EXIT_MARGIN_MS);
      expect(served.stdout).not.toContain(SECRET);
    } finally {
      await silent.close();
    }
  });
});

describe('keygate check: a PostgreSQL that refuses the password', () => {
  it('exits 4 saying it refuses the connection, with what the server said and the user-and-password hint, never the password', async () => {
    const server = await passwordRefusingPostgres('keygate');
    try {
      const shown = `postgres://keygate:***@127.0.0.1:${server.port}/keygate`;
      const said = `PostgreSQL at ${shown} refuses the connection: password authentication failed for user "keygate" (check the user and password in the profile's store, and the server's pg_hba.conf)`;
      const config = profile('pg-wrong-password', `postgres://keygate:${SECRET}@127.0.0.1:${server.port}/keygate`);
      const human = await runCli(['check', '--config', config]);
      expect([human.code, human.stdout, human.stderr]).toEqual([4, `${config}: ok (1 plan, 1 route)\n${SERVES}\nstore: ${said}\n${UPSTREAM_ANSWERS}\n`, '']);
      const json = await runCli(['--json', 'check', '--config', config]);
      expect([json.code, JSON.parse(json.stdout).store]).toEqual([4, { kind: 'postgres', at: shown, ok: false, problem: said }]);
      // The profile's password was the one tried, and is said nowhere.
      expect(server.passwords).toEqual([SECRET, SECRET]);
      expect(human.stdout + human.stderr + json.stdout + json.stderr).not.toContain(SECRET);
    } finally {
      await server.close();
    }
  });
});

const postgresUp = await serviceAvailable('PostgreSQL', POSTGRES_URL);

describe.runIf(postgresUp)('keygate check: a PostgreSQL store', () => {
  const made: TestDatabase[] = [];
  afterAll(async () => {
    for (const database of made) await database.drop();
  });

  it('exits 4 for a database the server does not have, with the createdb line serve gives, never the password', async () => {
    const missing = new URL(withPassword(POSTGRES_URL));
    const name = `keygate_check_never_created_${process.pid}`;
    missing.pathname = `/${name}`;
    const config = profile('pg-missing', missing.toString());
    const shown = missing.toString().replace(SECRET, '***');
    const server = `-h ${missing.hostname}${missing.port && missing.port !== '5432' ? ` -p ${missing.port}` : ''}${missing.username ? ` -U ${decodeURIComponent(missing.username)}` : ''}`;
    const said = `PostgreSQL at ${shown} has no database "${name}" yet: create it (createdb ${server} ${name}, or CREATE DATABASE "${name}"), then run keygate migrate`;
    const human = await runCli(['check', '--config', config]);
    expect([human.code, human.stdout, human.stderr]).toEqual([4, `${config}: ok (1 plan, 1 route)\n${SERVES}\nstore: ${said}\n${UPSTREAM_ANSWERS}\n`, '']);
    const json = await runCli(['--json', 'check', '--config', config]);
    expect([json.code, JSON.parse(json.stdout).store]).toEqual([4, { kind: 'postgres', at: shown, ok: false, problem: said }]);
    expect(human.stdout + human.stderr + json.stdout + json.stderr).not.toContain(SECRET);
  });

  it('exits 4 for a server that refuses the connection (a wrong port), never the password', async () => {
    const refused = new URL(await refusedUrl('postgres'));
    refused.username = 'keygate';
    refused.password = SECRET;
    refused.pathname = '/keygate';
    const config = profile('pg-refused', refused.toString());
    const r = await runCli(['check', '--config', config]);
    expect(r.code).toBe(4);
    expect(r.stdout.split('\n')[2]).toBe(
      `store: cannot reach PostgreSQL at postgres://keygate:***@${refused.host}/keygate: connect ECONNREFUSED ${refused.hostname}:${refused.port} (check the profile's store and that the database is running)`,
    );
    expect(r.stdout + r.stderr).not.toContain(SECRET);
  });

  it('exits 4 for a server that refuses the user, saying so rather than that it cannot be reached, never the password', async () => {
    const refused = new URL(withPassword(POSTGRES_URL));
    refused.username = `keygate_no_such_role_${process.pid}`;
    const config = profile('pg-no-role', refused.toString());
    const shown = refused.toString().replace(SECRET, '***');
    const r = await runCli(['check', '--config', config]);
    expect([r.code, r.stdout.split('\n')[2]]).toEqual([
      4,
      `store: PostgreSQL at ${shown} refuses the connection: role "${refused.username}" does not exist (check the user and password in the profile's store, and the server's pg_hba.conf)`,
    ]);
    expect(r.stdout + r.stderr).not.toContain(SECRET);
  });

  it('says which migrations a reachable database lacks (exit 0: keygate migrate is the next step), and none once migrated', async () => {
    const database = await createTestDatabase('check');
    made.push(database);
    const config = profile('pg-new', withPassword(database.url));
    const shown = withPassword(database.url).replace(SECRET, '***');
    const before = await runCli(['--json', 'check', '--config', config]);
    const { store } = JSON.parse(before.stdout);
    expect([before.code, store.kind, store.at, store.ok, store.pending[0]]).toEqual([0, 'postgres', shown, true, '0001_core']);
    const human = await runCli(['check', '--config', config]);
    expect([human.code, human.stdout.split('\n')[2]]).toEqual([0, `store: PostgreSQL at ${shown} answers; pending migrations: ${store.pending.join(', ')} (keygate serve refuses it until keygate migrate applies them)`]);
    // check changed nothing: the migrations are still to apply.
    expect((await runCli(['migrate', '--pending', '--json', '--config', config])).stdout).toContain('0001_core');

    expect((await runCli(['migrate', '--config', config])).code).toBe(0);
    const after = await runCli(['check', '--config', config]);
    expect([after.code, after.stdout.split('\n')[2]]).toEqual([0, `store: PostgreSQL at ${shown} answers, every migration applied`]);
    expect(after.stdout + human.stdout + before.stdout).not.toContain(SECRET);
  });
});

const redisUp = await serviceAvailable('Redis', REDIS_URL);

describe('keygate check: Redis counters', () => {
  it('exits 4 for a Redis that refuses the connection (a wrong port), never the password', async () => {
    const refused = new URL(await refusedUrl('redis'));
    refused.password = SECRET;
    const config = profile('redis-refused', `sqlite:${path.join(dir, 'redis-refused.db')}`, refused.toString());
    const r = await runCli(['check', '--config', config]);
    expect([r.code, r.stdout.split('\n')[3]]).toEqual([
      4,
      `counters: cannot reach Redis at redis://:***@${refused.host} (connect ECONNREFUSED ${refused.hostname}:${refused.port}; check the profile's counters and that Redis is running)`,
    ]);
    // A URL that ends with its prefix (and its ":"): the URL, then why, not "keygate::".
    const prefixed = profile('redis-refused-prefix', `sqlite:${path.join(dir, 'redis-refused.db')}`, `${refused.toString()}?prefix=keygate:`);
    const withPrefix = await runCli(['check', '--config', prefixed]);
    expect([withPrefix.code, withPrefix.stdout.split('\n')[3]]).toEqual([
      4,
      `counters: cannot reach Redis at redis://:***@${refused.host}?prefix=keygate: (connect ECONNREFUSED ${refused.hostname}:${refused.port}; check the profile's counters and that Redis is running)`,
    ]);
    const json = await runCli(['--json', 'check', '--config', config]);
    expect([json.code, JSON.parse(json.stdout).counters]).toMatchObject([4, { kind: 'redis', at: `redis://:***@${refused.host}`, ok: false }]);
    expect(r.stdout + r.stderr + json.stdout + json.stderr).not.toContain(SECRET);
  });

  it.runIf(redisUp)('says a Redis that answers PING does', async () => {
    const url = new URL(REDIS_URL);
    url.searchParams.set('prefix', 'keygate-test:check:');
    const config = profile('redis-up', `sqlite:${path.join(dir, 'redis-up.db')}`, url.toString());
    const r = await runCli(['check', '--config', config]);
    expect([r.code, r.stdout.split('\n')[3], r.stderr]).toEqual([0, `counters: Redis at ${url.toString()} answers`, '']);
    const json = await runCli(['--json', 'check', '--config', config]);
    expect(JSON.parse(json.stdout).counters).toEqual({ kind: 'redis', at: url.toString(), ok: true });
  });

  it('exits 4 for a Redis that never answers, once the deadline passes, never the password', async () => {
    const silent = await silentListener();
    try {
      const shown = `redis://:***@127.0.0.1:${silent.port}`;
      const said = `Redis at ${shown} did not answer within 3 s (check the profile's counters and that Redis is running)`;
      const config = profile('redis-silent', `sqlite:${path.join(dir, 'redis-silent.db')}`, `redis://:${SECRET}@127.0.0.1:${silent.port}`);
      const human = await timedAfterAccept(['check', '--config', config], silent.accepted);
      expect([human.code, human.stdout.split('\n').slice(3), human.stderr]).toEqual([4, [`counters: ${said}`, UPSTREAM_ANSWERS, ''], '']);
      expect(human.afterAcceptMs).toBeGreaterThanOrEqual(DEADLINE_MS - 100);
      expect(human.afterAcceptMs).toBeLessThan(DEADLINE_MS + EXIT_MARGIN_MS);
      const json = await runCli(['--json', 'check', '--config', config]);
      expect([json.code, JSON.parse(json.stdout).counters]).toEqual([4, { kind: 'redis', at: shown, ok: false, problem: said }]);
      expect(human.stdout + human.stderr + json.stdout + json.stderr).not.toContain(SECRET);
    } finally {
      await silent.close();
    }
  });

  it.runIf(redisUp)('says a Redis that asks no password answers, and that the profile\'s password is not used (nothing else on stderr)', async () => {
    const url = new URL(REDIS_URL);
    url.password = SECRET;
    url.searchParams.set('prefix', 'keygate-test:check:');
    const config = profile('redis-no-password-asked', `sqlite:${path.join(dir, 'redis-no-password.db')}`, url.toString());
    const shown = url.toString().replace(SECRET, '***');
    const said = "it asks no password, so the one in the profile's counters is not used";
    const human = await runCli(['check', '--config', config]);
    expect([human.code, human.stdout.split('\n').slice(3), human.stderr]).toEqual([0, [`counters: Redis at ${shown} answers; ${said}`, UPSTREAM_ANSWERS, ''], '']);
    const json = await runCli(['--json', 'check', '--config', config]);
    expect([json.code, JSON.parse(json.stdout).counters, json.stderr]).toEqual([0, { kind: 'redis', at: shown, ok: true, warning: said }, '']);
    expect(human.stdout + json.stdout).not.toContain(SECRET);
    // Given as a parameter (redis://host?password=…), the same.
    const inQuery = new URL(REDIS_URL);
    inQuery.searchParams.set('password', SECRET);
    const queryConfig = profile('redis-no-password-asked-query', `sqlite:${path.join(dir, 'redis-no-password.db')}`, inQuery.toString());
    const query = await runCli(['check', '--config', queryConfig]);
    expect([query.code, query.stdout.split('\n')[3], query.stderr]).toEqual([0, `counters: Redis at ${inQuery.toString().replace(SECRET, '***')} answers; ${said}`, '']);
  });

  it('exits 4 for a Redis that refuses the password, or asks one the profile does not give, saying it refuses rather than that it cannot be reached', async () => {
    const redis = await startRedisServer(['--requirepass', 'the-right-one']);
    try {
      const wrong = `redis://:${SECRET}@127.0.0.1:${redis.port}`;
      const wrongConfig = profile('redis-wrong-password', `sqlite:${path.join(dir, 'redis-wrong.db')}`, wrong);
      const wrongSaid = `Redis at redis://:***@127.0.0.1:${redis.port} refuses the connection: WRONGPASS invalid username-password pair or user is disabled. (check the user and password in the profile's counters)`;
      const human = await runCli(['check', '--config', wrongConfig]);
      expect([human.code, human.stdout.split('\n').slice(3), human.stderr]).toEqual([4, [`counters: ${wrongSaid}`, UPSTREAM_ANSWERS, ''], '']);
      const json = await runCli(['--json', 'check', '--config', wrongConfig]);
      expect([json.code, JSON.parse(json.stdout).counters]).toEqual([4, { kind: 'redis', at: `redis://:***@127.0.0.1:${redis.port}`, ok: false, problem: wrongSaid }]);
      expect(human.stdout + human.stderr + json.stdout + json.stderr).not.toContain(SECRET);

      const wrongInQuery = await runCli(['check', '--config', profile('redis-wrong-password-query', `sqlite:${path.join(dir, 'redis-wrong.db')}`, `redis://127.0.0.1:${redis.port}?password=${SECRET}`)]);
      expect([wrongInQuery.code, wrongInQuery.stdout.split('\n')[3]]).toEqual([4, `counters: ${wrongSaid.replace(`redis://:***@127.0.0.1:${redis.port}`, `redis://127.0.0.1:${redis.port}?password=***`)}`]);

      const none = profile('redis-no-password', `sqlite:${path.join(dir, 'redis-none.db')}`, redis.url);
      const asked = await runCli(['check', '--config', none]);
      expect([asked.code, asked.stdout.split('\n')[3]]).toEqual([
        4,
        `counters: Redis at ${redis.url} refuses the connection: NOAUTH Authentication required. (check the user and password in the profile's counters)`,
      ]);

      const right = profile('redis-right-password', `sqlite:${path.join(dir, 'redis-right.db')}`, `redis://:the-right-one@127.0.0.1:${redis.port}`);
      const answers = await runCli(['check', '--config', right]);
      expect([answers.code, answers.stdout.split('\n')[3]]).toEqual([0, `counters: Redis at redis://:***@127.0.0.1:${redis.port} answers`]);
    } finally {
      await redis.kill();
    }
  });
  it('exits 4 for a Redis user whose ACL leaves out keygate\'s keys, scripts or channel, naming what is refused; warns of INFO refused; answers for one that allows them', async () => {
    // A Redis of the test's own: its users are made here, the shared Redis's ACL is left alone.
    const redis = await startRedisServer();
    const prefix = 'kgcheck:';
    const acl = (...rule: string[]) => {
      const set = spawnSync('redis-cli', ['-p', String(redis.port), 'ACL', 'SETUSER', ...rule], { encoding: 'utf8' });
      expect(set.stdout.trim()).toBe('OK');
    };
    const checked = async (user: string) => {
      const url = `redis://${user}:${SECRET}@127.0.0.1:${redis.port}/0?prefix=${prefix}`;
      const r = await runCli(['check', '--config', profile(`redis-acl-${user}`, `sqlite:${path.join(dir, 'redis-acl.db')}`, url)]);
      expect(r.stdout + r.stderr).not.toContain(SECRET);
      return [r.code, r.stdout.split('\n')[3]];
    };
    const shown = (user: string) => `redis://${user}:***@127.0.0.1:${redis.port}/0?prefix=${prefix}`;
    const rights = 'the user needs keys ~kgcheck:*, the channel &kgcheck:cache and the commands CLIENT SETNAME, DEL, EVAL, EVALSHA, EXEC, EXISTS, GET, HDEL, HGET, HINCRBYFLOAT, HMGET, HSET, HSETNX, LINDEX, LPOP, MULTI, PEXPIRE, PING, PTTL, PUBLISH, RPUSH, SADD, SELECT, SET, SREM, SRANDMEMBER, SUBSCRIBE, ZADD, ZCARD, ZRANGE, ZRANGEBYSCORE, ZREM, ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZSCORE, which +@all -@dangerous allows: docs/scale-out.md#a-redis-user-for-keygate';
    try {
      acl('otherkeys', 'on', `>${SECRET}`, 'resetkeys', '~elsewhere:*', 'resetchannels', '&kgcheck:*', '+@all');
      expect(await checked('otherkeys')).toEqual([
        4,
        `counters: Redis at ${shown('otherkeys')} answers PING, but refuses what keygate serve asks of it: NOPERM this user has no permissions to access one of the keys used as arguments (${rights})`,
      ]);
      acl('noscripts', 'on', `>${SECRET}`, 'resetkeys', '~kgcheck:*', 'resetchannels', '&kgcheck:*', '+@all', '-@scripting');
      expect(await checked('noscripts')).toEqual([
        4,
        `counters: Redis at ${shown('noscripts')} answers PING, but refuses what keygate serve asks of it: NOPERM this user has no permissions to run the 'eval' command (${rights})`,
      ]);
      // A command the check's script calls refused (Redis 7.0 says it as ERR, not NOPERM): the user's rights too.
      acl('nopexpire', 'on', `>${SECRET}`, 'resetkeys', '~kgcheck:*', 'resetchannels', '&kgcheck:*', '+@all', '-pexpire');
      const [code, line] = await checked('nopexpire');
      expect([code, String(line).replace(/ script: \w+, on @user_script:\d+\./, '')]).toEqual([
        4,
        `counters: Redis at ${shown('nopexpire')} answers PING, but refuses what keygate serve asks of it: ERR The user executing the script can't run this command or subcommand (${rights})`,
      ]);
      acl('nochannel', 'on', `>${SECRET}`, 'resetkeys', '~kgcheck:*', 'resetchannels', '+@all');
      expect(await checked('nochannel')).toEqual([
        4,
        `counters: Redis at ${shown('nochannel')} answers PING, but refuses what keygate serve asks of it: NOPERM this user has no permissions to access one of the channels used as arguments (${rights})`,
      ]);
      acl('noinfo', 'on', `>${SECRET}`, 'resetkeys', '~kgcheck:*', 'resetchannels', '&kgcheck:*', '+@all', '-@dangerous');
      expect(await checked('noinfo')).toEqual([
        0,
        `counters: Redis at ${shown('noinfo')} answers; it refuses INFO to this user: keygate serves all the same, but cannot tell a Redis still loading its data after a restart from a ready one, and says so once in its log (allow +info)`,
      ]);
      acl('keygate', 'on', `>${SECRET}`, 'resetkeys', '~kgcheck:*', 'resetchannels', '&kgcheck:*', '+@all', '-@dangerous', '+info');
      expect(await checked('keygate')).toEqual([0, `counters: Redis at ${shown('keygate')} answers`]);
      // Nothing was written: the check changes nothing.
      const keys = spawnSync('redis-cli', ['-p', String(redis.port), '--scan'], { encoding: 'utf8' });
      expect(keys.stdout).toBe('');
    } finally {
      await redis.kill();
    }
  });

  it("says an error of Redis's own state after PING (LOADING) as one that passes, and what serve does meanwhile as counterFailure says, not always a refusal", async () => {
    // A loopback server speaking Redis's protocol: PONG to PING, +OK to the connection's
    // name, and to the check's script what a Redis loading its data after a restart answers.
    const loading = 'LOADING Redis is loading the dataset in memory';
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      let pending = '';
      socket.on('data', (data: Buffer) => {
        pending += data.toString('latin1');
        // One reply per command (an array of bulk strings: `*N`, then `$len` and the word).
        for (let match = /^\*(\d+)\r\n/.exec(pending); match; match = /^\*(\d+)\r\n/.exec(pending)) {
          const words: string[] = [];
          let at = match[0].length;
          for (let i = 0; i < Number(match[1]); i++) {
            const head = /^\$(\d+)\r\n/.exec(pending.slice(at));
            if (!head || pending.length < at + head[0].length + Number(head[1]) + 2) return;
            words.push(pending.slice(at + head[0].length, at + head[0].length + Number(head[1])));
            at += head[0].length + Number(head[1]) + 2;
          }
          pending = pending.slice(at);
          const command = (words[0] ?? '').toUpperCase();
          socket.write(command === 'PING' ? '+PONG\r\n' : command === 'CLIENT' ? '+OK\r\n' : `-${loading}\r\n`);
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `redis://127.0.0.1:${(server.address() as AddressInfo).port}/0?prefix=kgcheck:`;
      const state = "an error of Redis's own state, not of the user's rights: LOADING, BUSY, MISCONF and OOM pass once Redis has loaded its data, ended its script, saved again or has memory again";
      const said: Record<string, string> = {
        closed: `${state}; until it does, keygate serve refuses requests with a rate limit, block policy or cost (service_unavailable; counterFailure: closed)`,
        open: `${state}; until it does, keygate serve admits requests with a rate limit, block policy or cost on per-process limits (counterFailure: open)`,
      };
      for (const counterFailure of ['closed', 'open']) {
        const file = path.join(dir, `redis-loading-${counterFailure}.yaml`);
        writeFileSync(file, stringify({ upstream: { url: UPSTREAM }, store: `sqlite:${path.join(dir, 'redis-loading.db')}`, counters: url, counterFailure }));
        const r = await runCli(['check', '--config', file]);
        expect([r.code, r.stdout.split('\n')[3]]).toEqual([4, `counters: Redis at ${url} answers PING, but refuses what keygate serve asks of it: ${loading} (${said[counterFailure]})`]);
      }
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('exits 4 for a Redis replica, which answers PING but takes no write, saying to name the primary', async () => {
    const primary = await startRedisServer();
    const replica = await startRedisServer(['--replicaof', '127.0.0.1', String(primary.port)]);
    try {
      const url = `${replica.url}/0?prefix=kgcheck:`;
      const r = await runCli(['check', '--config', profile('redis-replica', `sqlite:${path.join(dir, 'redis-replica.db')}`, url)]);
      expect([r.code, r.stdout.split('\n')[3]]).toEqual([
        4,
        `counters: Redis at ${url} answers PING, but refuses what keygate serve asks of it: READONLY You can't write against a read only replica. script: bbfa921ef52916eecf62afc6471035a4411917e4, on @user_script:1. (a replica: name the primary in the profile's counters)`,
      ]);
    } finally {
      await replica.kill();
      await primary.kill();
    }
  });
});

describe('keygate check: the upstream', () => {
  /** A profile forwarding to `url` (its store a SQLite file not made yet: exit 0 on its own). */
  const forwarding = (name: string, upstream: Record<string, unknown>) => {
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(file, stringify({ upstream, store: `sqlite:${path.join(dir, `${name}.db`)}` }));
    return file;
  };

  it('says an upstream that answers HTTP does, whatever the status (a 500 too), asked with HEAD /', async () => {
    const seen: string[] = [];
    const failing = createHttpServer((request, response) => {
      seen.push(`${request.method} ${request.url}`);
      response.statusCode = 500;
      response.end();
    });
    await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(failing.address() as AddressInfo).port}`;
      const config = forwarding('upstream-500', { url });
      const human = await runCli(['check', '--config', config]);
      expect([human.code, human.stdout.split('\n').slice(3), human.stderr]).toEqual([0, [`upstream: ${url} answers (HEAD /: 500)`, ''], '']);
      const json = await runCli(['--json', 'check', '--config', config]);
      expect([json.code, JSON.parse(json.stdout).upstream]).toEqual([0, { at: url, ok: true, status: 500 }]);
      expect(seen).toEqual(['HEAD /', 'HEAD /']);
    } finally {
      await new Promise((resolve) => failing.close(resolve));
    }
  });

  it('exits 4 for an upstream that refuses the connection (a typo in upstream.url), saying what serve would then answer', async () => {
    const url = await refusedUrl('http');
    const { host, hostname, port } = new URL(url);
    const config = forwarding('upstream-refused', { url });
    const said = `cannot reach the upstream at ${url}: the connection was refused, nothing listens at ${host} (connect ECONNREFUSED ${hostname}:${port}; check upstream.url and that the upstream is running; keygate serve would answer every request upstream_unavailable)`;
    const human = await runCli(['check', '--config', config]);
    expect([human.code, human.stdout.split('\n').slice(3), human.stderr]).toEqual([4, [`upstream: ${said}`, ''], '']);
    const json = await runCli(['--json', 'check', '--config', config]);
    expect([json.code, JSON.parse(json.stdout).ok, JSON.parse(json.stdout).upstream]).toEqual([4, true, { at: url, ok: false, problem: said }]);
  });

  it('exits 4 for an upstream that takes the connection and never answers, once the deadline passes', async () => {
    const silent = await silentListener();
    try {
      const url = `http://127.0.0.1:${silent.port}`;
      const said = `the upstream at ${url} took the connection but gave no answer to HEAD / within 3 s (check upstream.url is the API's own port, and that the upstream is not stuck; keygate serve would answer requests upstream_timeout)`;
      const config = forwarding('upstream-silent', { url });
      const human = await timedAfterAccept(['check', '--config', config], silent.accepted);
      expect([human.code, human.stdout.split('\n').slice(3), human.stderr]).toEqual([4, [`upstream: ${said}`, ''], '']);
      // A guard against a check that hangs, not a timing.
      expect(human.afterAcceptMs).toBeLessThan(DEADLINE_MS + EXIT_MARGIN_MS);
      const json = await runCli(['--json', 'check', '--config', config]);
      expect([json.code, JSON.parse(json.stdout).upstream]).toEqual([4, { at: url, ok: false, problem: said }]);
    } finally {
      await silent.close();
    }
  });

  it('exits 4 for an upstream that accepts no connection (a full accept queue: as a firewall that drops packets), once the deadline passes', async () => {
    const unaccepting = await unacceptingPort();
    try {
      const url = `http://127.0.0.1:${unaccepting.port}`;
      const said = `the upstream at ${url} accepted no connection within 3 s (check upstream.url, that the upstream is running, and that no firewall drops connections to 127.0.0.1:${unaccepting.port}; keygate serve would answer every request upstream_unavailable)`;
      const config = forwarding('upstream-unaccepting', { url });
      const started = Date.now();
      const human = await runCli(['check', '--config', config]);
      expect([human.code, human.stdout.split('\n').slice(3), human.stderr]).toEqual([4, [`upstream: ${said}`, ''], '']);
      // A guard against a check that hangs, not a timing.
      expect(Date.now() - started).toBeLessThan(DEADLINE_MS + EXIT_MARGIN_MS);
      const json = await runCli(['--json', 'check', '--config', config]);
      expect([json.code, JSON.parse(json.stdout).upstream]).toEqual([4, { at: url, ok: false, problem: said }]);
    } finally {
      unaccepting.close();
    }
  });

  it('exits 4 for an https:// upstream that serves plain HTTP (a failed TLS handshake), and for a host name that does not resolve', async () => {
    const url = UPSTREAM.replace('http:', 'https:');
    const tls = await runCli(['check', '--config', forwarding('upstream-not-tls', { url })]);
    expect([tls.code, tls.stdout.split('\n').slice(3)]).toEqual([
      4,
      [`upstream: the upstream at ${url} does not speak TLS: the TLS handshake failed (wrong version number); if it serves plain HTTP, upstream.url is http://, not https://`, ''],
    ]);
    const unknown = 'http://keygate-check-no-such-host.invalid:8080';
    const dns = await runCli(['check', '--config', forwarding('upstream-no-host', { url: unknown })]);
    expect(dns.code).toBe(4);
    // Offline machines may not even get an answer from DNS: either is said as a host name problem.
    expect(dns.stdout.split('\n')[3]).toMatch(
      /^upstream: cannot reach the upstream at http:\/\/keygate-check-no-such-host\.invalid:8080: (no such host name keygate-check-no-such-host\.invalid|the host name keygate-check-no-such-host\.invalid could not be looked up, DNS did not answer) \(getaddrinfo /,
    );
  });

  it.runIf(opensslRuns())('exits 4 for an upstream whose certificate this machine does not trust, and says it answers once NODE_EXTRA_CA_CERTS names it', async () => {
    const cert = path.join(dir, 'upstream-cert.pem');
    const key = path.join(dir, 'upstream-key.pem');
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    const secure = createHttpsServer({ cert: readFileSync(cert), key: readFileSync(key) }, (_request, response) => {
      response.statusCode = 404;
      response.end();
    });
    await new Promise<void>((resolve) => secure.listen(0, '127.0.0.1', resolve));
    try {
      const url = `https://localhost:${(secure.address() as AddressInfo).port}`;
      const config = forwarding('upstream-self-signed', { url });
      const untrusted = await runCli(['check', '--config', config]);
      expect([untrusted.code, untrusted.stdout.split('\n').slice(3)]).toEqual([
        4,
        [`upstream: the upstream at ${url} failed the TLS handshake: self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT; its certificate must be one this machine trusts, for localhost: NODE_EXTRA_CA_CERTS names a private CA's)`, ''],
      ]);
      const trusted = await runCli(['check', '--config', config], { env: { NODE_EXTRA_CA_CERTS: cert } });
      expect([trusted.code, trusted.stdout.split('\n').slice(3)]).toEqual([0, [`upstream: ${url} answers (HEAD /: 404)`, '']]);
    } finally {
      await new Promise((resolve) => secure.close(resolve));
    }
  });

  it('--offline does not try it; upstream.spawn is said, not tried (serve starts it); gateway: false has none', async () => {
    const silent = await silentListener();
    try {
      const config = forwarding('upstream-offline', { url: `http://127.0.0.1:${silent.port}` });
      const offline = await runCli(['check', '--offline', '--config', config]);
      expect([offline.code, offline.stdout, offline.stderr]).toEqual([0, `${config}: ok (1 plan, 1 route)\n${SERVES}\n`, '']);
      const offlineJson = await runCli(['--json', 'check', '--offline', '--config', config]);
      expect([offlineJson.code, Object.keys(JSON.parse(offlineJson.stdout))]).toEqual([0, ['file', 'ok', 'plans', 'routes', 'serve']]);
      expect(silent.accepted()).toBeUndefined();
    } finally {
      await silent.close();
    }

    const url = await refusedUrl('http');
    const spawned = forwarding('upstream-spawned', { url, spawn: ['node', 'upstream.js'] });
    const human = await runCli(['check', '--config', spawned]);
    expect([human.code, human.stdout.split('\n').slice(3), human.stderr]).toEqual([0, [`upstream: ${url} is started by keygate serve (upstream.spawn), so it is not running now and was not tried`, ''], '']);
    const json = await runCli(['--json', 'check', '--config', spawned]);
    expect([json.code, JSON.parse(json.stdout).upstream]).toEqual([0, { at: url, ok: true, spawned: true }]);

    const adminOnly = path.join(dir, 'upstream-none.yaml');
    writeFileSync(adminOnly, stringify({ gateway: false, store: `sqlite:${path.join(dir, 'upstream-none.db')}` }));
    const none = await runCli(['--json', 'check', '--config', adminOnly]);
    expect([none.code, Object.keys(JSON.parse(none.stdout))]).toEqual([0, ['file', 'ok', 'plans', 'routes', 'serve', 'store']]);
  });
});
