/**
 * Starting one example for its end-to-end test, the way a user would run it but on free
 * ports: the shipped `examples/<name>/keygate.yaml` (validated as it is), its
 * `upstream.mjs` in this process on a free loopback port, a real SQLite file in a temp
 * folder, and a controlled clock. The same profile is written next to the database so
 * the `keygate` CLI works on the very store the running gateway uses.
 *
 * `runServeCommand` instead runs the documented one command
 * (`node bin/keygate.js serve --config <profile>`) as a child process, with
 * `upstream.spawn` starting the upstream.
 *
 * @example
 * const clock = controlledClock();
 * const ex = await startExample('ranktracker', { clock });
 * const { secret } = await ex.createKey(account.id, 'my key');
 * await ex.call('/v1/domains', { headers: { authorization: secret } });
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { loadConfigFile, type LoadedConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { startKeygate, type TestKeygate } from '../../test/support/keygate.js';
import { refusedUrl } from '../../test/support/refused.js';
import { namedPorts } from '../../test/support/ports.js';
import { canConnect } from '../../src/spawned-upstream.js';
import { BIN, runCli, type CliResult } from '../../test/support/cli.js';

export const EXAMPLES_DIR = path.resolve(import.meta.dirname, '..');
export const REPO_DIR = path.resolve(EXAMPLES_DIR, '..');

/** A clock the test moves by hand; the gateway's windows, blocks and expiries read it. */
export interface ControlledClock {
  now(): number;
  advance(ms: number): void;
  /**
   * Moves the clock up to real time if it is behind. The CLI stamps what it does
   * (revoked at, created at) with real time; the gateway must not see those in its future.
   */
  catchUp(): void;
}

export function controlledClock(start = Date.now()): ControlledClock {
  let now = start;
  return {
    now: () => now,
    advance(ms) {
      now += ms;
    },
    catchUp() {
      now = Math.max(now, Date.now());
    },
  };
}

export interface AccountOut {
  id: string;
  name: string;
  planId: string;
}

export interface KeyOut {
  id: string;
  name: string;
  hint: string;
  accountId: string | null;
  mode: 'live' | 'test';
  scopes: string[];
  expiresAt: number | string | null;
  secret: string;
}

export interface RunningExample {
  /** The running gateway (and admin API), see test/support/keygate.ts. */
  kg: TestKeygate;
  /** The shipped profile, loaded and validated exactly as `keygate serve` would. */
  shipped: LoadedConfig;
  /** The profile the test runs: the shipped one with store and upstream.url replaced. */
  configFile: string;
  upstreamUrl: string;
  clock: ControlledClock;
  /** fetch against the gateway. */
  call(pathAndQuery: string, init?: RequestInit): Promise<Response>;
  /** `keygate <args> --config <this profile>`; the clock catches up afterwards. */
  cli(args: string[]): Promise<CliResult>;
  /** `keygate <args>`; fails the test (with the CLI's stderr) on a non-zero exit. */
  cliOk(args: string[]): Promise<CliResult>;
  /** `keygate <args> --json`, parsed; fails the test on a non-zero exit. */
  cliJson<T>(args: string[]): Promise<T>;
  /** Through the admin API (the gateway's own clock). */
  createAccount(name: string, planId?: string): Promise<AccountOut>;
  updateAccount(id: string, patch: Record<string, unknown>): Promise<AccountOut>;
  createKey(accountId: string, name: string, extra?: { mode?: 'live' | 'test'; scopes?: string[] }): Promise<KeyOut>;
  revokeKey(id: string): Promise<void>;
  close(): Promise<void>;
}

export function profileFile(name: string): string {
  return path.join(EXAMPLES_DIR, name, 'keygate.yaml');
}

/** The shipped profile as plain YAML data (before defaults), to adjust for a test run. */
export function rawProfile(name: string): Record<string, unknown> & ConfigInput {
  return parseYaml(readFileSync(profileFile(name), 'utf8')) as Record<string, unknown> & ConfigInput;
}

/**
 * `upstream`: another upstream than the example's own (one that is down, or never
 * answers: see `refusedUrl`, `silentUpstream`), with the profile's timeout or another.
 * `dashboard`: serve the profile's dashboard too (on a free port, `kg.dashboardUrl`), for
 * a document's steps a member takes there; off otherwise, as most tests need no browser.
 */
export async function startExample(name: string, options: { clock?: ControlledClock; upstream?: { url: string; timeout?: string }; dashboard?: boolean } = {}): Promise<RunningExample> {
  const clock = options.clock ?? controlledClock();
  const shipped = loadConfigFile(profileFile(name));
  const raw = rawProfile(name);

  let upstream: Server | undefined;
  if (!options.upstream) {
    const module = (await import(pathToFileURL(path.join(EXAMPLES_DIR, name, 'upstream.mjs')).href)) as { createUpstream(): Server };
    const own = module.createUpstream();
    await new Promise<void>((resolve, reject) => {
      own.once('error', reject);
      own.listen(0, '127.0.0.1', () => resolve());
    });
    upstream = own;
  }
  const upstreamUrl = options.upstream?.url ?? `http://127.0.0.1:${(upstream?.address() as AddressInfo).port}`;

  const dir = mkdtempSync(path.join(tmpdir(), `keygate-${name}-`));
  const { spawn: _spawn, ...upstreamConfig } = raw.upstream as Record<string, unknown>;
  const profile = {
    ...raw,
    store: `sqlite:${path.join(dir, 'keygate.db')}`,
    upstream: { ...upstreamConfig, url: upstreamUrl, ...(options.upstream?.timeout ? { timeout: options.upstream.timeout } : {}) },
    log: { level: 'warn', requests: false },
    ...(options.dashboard ? { dashboard: { ...(raw.dashboard as Record<string, unknown> | undefined), enabled: true } } : {}),
  } as ConfigInput;
  const configFile = path.join(dir, 'keygate.yaml');
  writeFileSync(configFile, stringifyYaml(profile));

  let kg: TestKeygate;
  try {
    kg = await startKeygate(profile, { dir, clock: clock.now });
  } catch (error) {
    upstream?.close();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  const admin = async <T>(method: string, p: string, body?: unknown): Promise<T> => {
    const response = await kg.admin(p, { method, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await response.text();
    if (!response.ok) throw new Error(`admin ${method} ${p}: ${response.status} ${text}`);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  };

  const cli = async (args: string[]) => {
    // The running gateway must have written its balances before the CLI reads the store.
    await kg.runtime.flush();
    const result = await runCli([...args, '--config', configFile], { cwd: dir });
    clock.catchUp();
    return result;
  };

  const cliOk = async (args: string[]) => {
    const result = await cli(args);
    if (result.code !== 0) throw new Error(`keygate ${args.join(' ')} exited ${result.code}: ${result.stderr}${result.stdout}`);
    return result;
  };

  return {
    kg,
    shipped,
    configFile,
    upstreamUrl,
    clock,
    call: (p, init) => kg.call(p, init),
    cli,
    cliOk,
    async cliJson<T>(args: string[]) {
      return JSON.parse((await cliOk([...args, '--json'])).stdout) as T;
    },
    createAccount: (accountName, planId) => admin<AccountOut>('POST', '/v1/accounts', { name: accountName, ...(planId ? { planId } : {}) }),
    updateAccount: (id, patch) => admin<AccountOut>('PATCH', `/v1/accounts/${id}`, patch),
    createKey: (accountId, keyName, extra = {}) => admin<KeyOut>('POST', '/v1/keys', { accountId, name: keyName, ...extra }),
    async revokeKey(id) {
      await admin('POST', `/v1/keys/${id}/revoke`);
    },
    async close() {
      await kg.close();
      if (upstream) await new Promise<void>((resolve) => (upstream as Server).close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The example twice more, in front of an upstream that is down (`down`) and one that
 * takes connections and never answers (`slow`, with a 300 ms timeout); `close` stops all.
 */
export async function startFailingExamples(name: string): Promise<{ down: RunningExample; slow: RunningExample; close(): Promise<void> }> {
  const silent = await silentUpstream();
  const down = await startExample(name, { upstream: { url: await refusedUrl() } });
  const slow = await startExample(name, { upstream: { url: silent.url, timeout: '300ms' } });
  return {
    down,
    slow,
    async close() {
      await down.close();
      await slow.close();
      await silent.close();
    },
  };
}

/** An upstream that takes connections and never answers, until closed. */
async function silentUpstream(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The body of a response as JSON, with the status and content type alongside. */
export async function read(response: Response): Promise<{ status: number; type: string | null; body: unknown }> {
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: the raw text is what the user sees
  }
  return { status: response.status, type: response.headers.get('content-type'), body };
}

/**
 * The response as the document writes one: the status code with its reason phrase (the
 * status line), the Content-Type, and the body as text, unparsed, so key order and
 * spacing count. For the documents' example bodies, byte for byte.
 */
export async function readExact(response: Response): Promise<{ status: string; type: string | null; text: string }> {
  return { status: `${response.status} ${response.statusText}`, type: response.headers.get('content-type'), text: await response.text() };
}

export interface ServeCommand {
  gatewayUrl: string;
  /** The CLI on the same profile and working directory as the server. */
  cli(args: string[]): Promise<CliResult>;
  output(): string;
  stop(): Promise<number | null>;
}

/**
 * Runs `node bin/keygate.js serve --config <profile>` as a child process from a temp
 * working directory (so `./data/...` lands there), waits until the gateway port accepts
 * connections (at most 20 s), and stops it with SIGTERM.
 *
 * The profile is the shipped one with only `upstream.url` changed, to a free port (the
 * upstream `upstream.spawn` starts listens where keygate tells it, in PORT), and the
 * listeners are moved to free ports by `serve --port --admin-port --dashboard-port`, as a
 * user running an example beside something else would: so this test can run while the
 * example, or another run of the suite, holds the fixed ports.
 * examples/profiles.test.ts checks the shipped ports themselves. They are
 * named ports (test/support/ports.ts): the process listens on them a second or more
 * later, and a server another test file starts meanwhile must not get one.
 */
export async function runServeCommand(name: string): Promise<ServeCommand> {
  const cwd = mkdtempSync(path.join(tmpdir(), `keygate-serve-${name}-`));
  const [gatewayPort, adminPort, dashboardPort, upstreamPort] = (await namedPorts(4)) as [number, number, number, number];
  const raw = rawProfile(name) as Record<string, Record<string, unknown>>;
  const profile = {
    ...raw,
    // The shipped command, run from the example's folder (the profile is written elsewhere).
    upstream: { ...raw.upstream, url: `http://127.0.0.1:${upstreamPort}`, spawn: ['node', path.join(EXAMPLES_DIR, name, 'upstream.mjs')] },
  };
  const configFile = path.join(cwd, 'keygate.yaml');
  writeFileSync(configFile, stringifyYaml(profile));
  const loaded = loadConfigFile(configFile);

  const env = { ...process.env, KEYGATE_ADMIN_TOKEN: '' };
  const ports = ['--port', String(gatewayPort), '--admin-port', String(adminPort), '--dashboard-port', String(dashboardPort)];
  const child: ChildProcess = spawn(process.execPath, [BIN, 'serve', '--config', configFile, ...ports], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));

  const stop = async () => {
    if (!done) child.kill('SIGTERM');
    const code = await exited;
    rmSync(cwd, { recursive: true, force: true });
    return code;
  };

  const { host } = loaded.config.listen;
  const port = gatewayPort;
  // A second or so on a quiet host; much more on a loaded one.
  const deadline = Date.now() + 60_000;
  while (!done && Date.now() < deadline && !(await canConnect(host, port))) await new Promise((r) => setTimeout(r, 100));
  if (done || !(await canConnect(host, port))) {
    await stop();
    throw new Error(`keygate serve --config ${configFile} (examples/${name}) did not start:\n${output}`);
  }
  return {
    gatewayUrl: `http://${host}:${port}`,
    cli: (args) => runCli([...args, '--config', configFile], { cwd, env }),
    output: () => output,
    stop,
  };
}

/**
 * Sends `head` (request line and header lines, without the final blank line) byte for
 * byte over a new socket, for what fetch would tidy up (whitespace around a header
 * value). Resolves with the status code and the body once the whole response is in
 * (by Content-Length or the last chunk), then closes the socket.
 */
export function rawRequest(baseUrl: string, head: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    let data = '';
    const finish = (complete: boolean) => {
      const split = data.indexOf('\r\n\r\n');
      if (split === -1) return complete ? reject(new Error(`incomplete response: ${JSON.stringify(data)}`)) : undefined;
      const headers = data.slice(0, split + 2);
      const rest = data.slice(split + 4);
      const length = /\r\ncontent-length: *(\d+)\r\n/i.exec(headers);
      const chunked = /\r\ntransfer-encoding: *chunked\r\n/i.test(headers);
      const done = complete || (length ? Buffer.byteLength(rest) >= Number(length[1]) : chunked && rest.endsWith('0\r\n\r\n'));
      if (!done) return undefined;
      socket.destroy();
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0), body: chunked ? dechunk(rest) : rest });
    };
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(`${head}\r\nHost: ${hostname}:${port}\r\n\r\n`));
    socket.on('data', (chunk: string) => {
      data += chunk;
      finish(false);
    });
    socket.once('error', reject);
    socket.once('end', () => finish(true));
  });
}

function dechunk(text: string): string {
  let out = '';
  let rest = text;
  for (;;) {
    const eol = rest.indexOf('\r\n');
    if (eol === -1) return out;
    const size = Number.parseInt(rest.slice(0, eol), 16);
    if (!size) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}
