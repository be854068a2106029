/**
 * Real processes for the scale-out tests: `keygate serve` children started from a
 * profile file (as an operator would), a private `redis-server` that a test may kill
 * and start again (the shared one on 6379 is never touched), and a TCP proxy in front
 * of PostgreSQL that a test can cut. Everything listens on loopback, on free ports, and
 * is stopped by the test that started it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { createServer as createHttpServer } from 'node:http';
import { BIN, runCli } from '../support/cli.js';
import { createTestDatabase, type TestDatabase } from '../backends/isolation.js';
import { namedPort } from '../support/ports.js';
import type { ConfigInput } from '../../src/config/schema.js';

export const ADMIN_TOKEN = 'scale-out-admin-token-0123456789';
/**
 * How long a start may take before it counts as failed: about a second on a quiet host,
 * but three keygate processes started at once on a loaded one took more than 20 s.
 */
const START_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 10_000;
const REDIS_SERVER = '/usr/bin/redis-server';

/** Writes a profile (JSON is YAML) and returns its path. */
export function writeProfile(dir: string, name: string, profile: ConfigInput): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, JSON.stringify(profile, null, 2));
  return file;
}

export interface GatewayProcess {
  readonly gatewayUrl: string;
  readonly adminUrl: string;
  /** Where its dashboard listens, if the profile turns it on. */
  readonly dashboardUrl: string | undefined;
  readonly child: ChildProcess;
  /** Everything the process wrote (stdout and stderr). */
  readonly output: string[];
  alive(): boolean;
  call(pathAndQuery: string, secret: string): Promise<Response>;
  admin(pathAndQuery: string, init?: { method?: string; body?: unknown }): Promise<Response>;
  /** Waits until a log line matching `pattern` appears after `from` lines. */
  waitForLog(pattern: RegExp, from?: number, ms?: number): Promise<boolean>;
  stop(): Promise<void>;
}

/** `keygate serve --config <file>`; resolves once it logs "keygate is serving". */
export function startGateway(configFile: string): Promise<GatewayProcess> {
  return spawnGateway(configFile).serving;
}

/** A `keygate serve` child, reachable before it serves (to kill it while it starts). */
export interface SpawnedGateway {
  readonly child: ChildProcess;
  /** Everything the process wrote (stdout and stderr). */
  readonly output: string[];
  /** Resolves once it logs "keygate is serving"; rejects if it exits first (catch it when killing it before). */
  readonly serving: Promise<GatewayProcess>;
}

/** `keygate serve --config <file>`, as startGateway, with the child at hand at once. */
export function spawnGateway(configFile: string): SpawnedGateway {
  const child = spawn(process.execPath, [BIN, 'serve', '--config', configFile], {
    env: { ...process.env, KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  let exited = false;
  let serving = false;

  const started = new Promise<GatewayProcess>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`keygate serve did not start within ${START_TIMEOUT_MS} ms:\n${output.join('\n')}`));
    }, START_TIMEOUT_MS);
    child.once('exit', (code) => {
      exited = true;
      clearTimeout(timer);
      if (!serving) reject(new Error(`keygate serve exited (${code}) before serving:\n${output.join('\n')}`));
    });

    let partial = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      partial += chunk.toString('utf8');
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (line === '') continue;
        output.push(line);
        if (serving || !line.includes('keygate is serving')) continue;
        const { gateway, admin, dashboard } = JSON.parse(line) as { gateway: string; admin: string; dashboard?: string };
        serving = true;
        clearTimeout(timer);
        resolve(gatewayProcess(child, output, { gateway, admin, dashboard }, () => exited));
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => output.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
  });
  return { child, output, serving: started };
}

function gatewayProcess(child: ChildProcess, output: string[], urls: { gateway: string; admin: string; dashboard: string | undefined }, exited: () => boolean): GatewayProcess {
  const { gateway: gatewayUrl, admin: adminUrl } = urls;
  return {
    gatewayUrl,
    adminUrl,
    dashboardUrl: urls.dashboard,
    child,
    output,
    alive: () => !exited(),
    call: (pathAndQuery, secret) => fetch(`${gatewayUrl}${pathAndQuery}`, { headers: { authorization: `Bearer ${secret}` } }),
    admin: (pathAndQuery, init = {}) =>
      fetch(`${adminUrl}${pathAndQuery}`, {
        method: init.method ?? (init.body ? 'POST' : 'GET'),
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
        ...(init.body ? { body: JSON.stringify(init.body) } : {}),
      }),
    async waitForLog(pattern, from = 0, ms = 10_000) {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        if (output.slice(from).some((line) => pattern.test(line))) return true;
        await sleep(25);
      }
      return false;
    },
    async stop() {
      if (exited()) return;
      const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const stopped = await Promise.race([done.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
      if (!stopped) {
        child.kill('SIGKILL');
        await done;
      }
    },
  };
}

/** Creates an account and a key through the admin API; returns the ids and the secret. */
export async function provisionKey(gateway: GatewayProcess, planId: string, name = planId): Promise<{ accountId: string; keyId: string; secret: string }> {
  const accountResponse = await gateway.admin('/v1/accounts', { body: { name, planId } });
  if (accountResponse.status !== 201) throw new Error(`could not create an account: ${accountResponse.status} ${await accountResponse.text()}`);
  const account = (await accountResponse.json()) as { id: string };
  const keyResponse = await gateway.admin('/v1/keys', { body: { accountId: account.id, name: `${name} key` } });
  if (keyResponse.status !== 201) throw new Error(`could not create a key: ${keyResponse.status} ${await keyResponse.text()}`);
  const key = (await keyResponse.json()) as { id: string; secret: string };
  return { accountId: account.id, keyId: key.id, secret: key.secret };
}

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * The profile of the cases where Redis is away or refuses: one metered route with a rate
 * limit and a block policy (everything a Redis admission decides), one free route.
 */
export function meteredProfile(name: string, upstream: Server, database: { url: string }, counters: string, failure: 'closed' | 'open'): ConfigInput {
  return {
    name,
    upstream: { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` },
    store: database.url,
    counters,
    counterFailure: failure,
    listen: { host: '127.0.0.1', port: 0 },
    admin: { listen: { host: '127.0.0.1', port: 0 } },
    dashboard: { enabled: false },
    errors: { envelope: 'message' },
    plans: { metered: { meters: { units: { limit: 100 } }, rateLimits: [{ limit: 50, window: '1h' }], block: { after: 2, within: '1h', duration: '10m' } } },
    routes: [{ method: 'GET', path: '/v1/charged', cost: { meter: 'units', perRequest: 1 } }, { path: '/v1/data' }],
  };
}

/**
 * Two keygate processes on one PostgreSQL database, counterFailure `closed` and `open`,
 * both on a private redis-server that refuses every write past `--maxmemory 1` (OOM),
 * with meteredProfile's plan and routes in front of an upstream answering {"data":[]}.
 * Their profiles are `<dir>/closed.yaml` and `<dir>/open.yaml`; their Redis prefix is
 * `<name>:` for both.
 */
export interface RefusingRedisPair {
  readonly closed: GatewayProcess;
  readonly open: GatewayProcess;
  readonly redis: RedisServer;
  stop(): Promise<void>;
}

export async function startRefusingRedisPair(dir: string, name: string): Promise<RefusingRedisPair> {
  const database: TestDatabase = await createTestDatabase(name);
  const upstream = createHttpServer((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end('{"data":[]}'));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const redis = await startRedisServer(['--maxmemory', '1', '--maxmemory-policy', 'noeviction']);
  const profile = (failure: 'closed' | 'open'): ConfigInput => meteredProfile(name, upstream, database, `${redis.url}/0?prefix=${name}:`, failure);
  const closedFile = writeProfile(dir, 'closed', profile('closed'));
  const migrated = await runCli(['migrate', '--config', closedFile]);
  if (migrated.code !== 0) throw new Error(`keygate migrate failed: ${migrated.stderr}`);
  const [closed, open] = await Promise.all([startGateway(closedFile), startGateway(writeProfile(dir, 'open', profile('open')))]);
  return {
    closed,
    open,
    redis,
    async stop() {
      await Promise.all([closed.stop(), open.stop()]);
      await redis.kill();
      await new Promise((resolve) => upstream.close(resolve));
      await database.drop();
    },
  };
}

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** SIGKILL: Redis loses everything (it keeps nothing on disk). */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
  /** CONFIG SET on this server, the test's own (never the shared one): `maxmemory 0` lets a server started with `--maxmemory 1` take writes. */
  configSet(name: string, value: string): Promise<void>;
}

/**
 * A private redis-server without persistence, as on the production machines. On a named
 * port (test/support/ports.ts): while it is killed, no server another test file starts
 * can take the port it starts again on. `args`: more of redis-server's options
 * (`--requirepass <password>`).
 */
export async function startRedisServer(args: string[] = []): Promise<RedisServer> {
  const port = await namedPort();
  let child: ChildProcess | undefined;
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args], { stdio: 'ignore' });
      const deadline = Date.now() + START_TIMEOUT_MS;
      while (!(await canConnect(port))) {
        if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`);
        await sleep(25);
      }
    },
    configSet: (name, value) =>
      new Promise<void>((resolve, reject) => execFile('redis-cli', ['-p', String(port), 'config', 'set', name, value], (error) => (error ? reject(error) : resolve()))),
    async kill() {
      const running = child;
      child = undefined;
      if (!running || running.exitCode !== null) return;
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.kill('SIGKILL');
      await exited;
    },
  };
  await server.start();
  return server;
}

export interface TcpProxy {
  readonly port: number;
  /** Closes the listener and cuts every connection: the target looks unreachable. */
  cut(): Promise<void>;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  /** Keeps every connection open but passes nothing either way: the target hangs. */
  stall(): void;
  /** Passes on what was held, and everything after it. */
  resume(): void;
  /** What clients sent to the target since the stall began, held (as text: Redis's protocol is). */
  heldFromClients(): string;
  /** Passes what clients send on to the target, and drops what it answers (until cut). */
  muteAnswers(): void;
}

/**
 * Forwards 127.0.0.1:<port> to 127.0.0.1:<targetPort>, until cut. On a named port
 * (test/support/ports.ts): while it is cut, no server another test file starts can take
 * the port it listens on again.
 */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const port = await namedPort();
  /** While stalled, what each direction would have written, held. */
  let held: { to: Socket; data: Buffer; answer: boolean }[] | undefined;
  let muted = false;
  const pass = (from: Socket, to: Socket, answers = false) =>
    from.on('data', (data: Buffer) => {
      if (held) held.push({ to, data, answer: answers });
      else if (!(answers && muted)) to.write(data);
    });
  const listen = async () => {
    server = createServer((client) => {
      const upstream = connect({ host: '127.0.0.1', port: targetPort });
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      pass(client, upstream);
      pass(upstream, client, true);
      client.once('end', () => upstream.end());
      upstream.once('end', () => client.end());
    });
    await new Promise<void>((resolve, reject) => (server as Server).once('error', reject).listen(port, '127.0.0.1', resolve));
  };
  await listen();
  return {
    get port() {
      return port;
    },
    async cut() {
      muted = false;
      const closing = new Promise((resolve) => server?.close(resolve));
      for (const socket of sockets) socket.destroy();
      await closing;
    },
    restore: listen,
    stall() {
      held ??= [];
    },
    resume() {
      const pending = held ?? [];
      held = undefined;
      for (const { to, data } of pending) if (!to.destroyed) to.write(data);
    },
    muteAnswers() {
      muted = true;
    },
    heldFromClients() {
      return Buffer.concat((held ?? []).filter((entry) => !entry.answer).map((entry) => entry.data)).toString('latin1');
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
