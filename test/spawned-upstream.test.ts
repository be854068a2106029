/**
 * `upstream.spawn` (src/spawned-upstream.ts): keygate forwards to the child it started,
 * never to another process on upstream.url's port, whether one it did not start or one
 * an earlier keygate, killed with SIGKILL, left running. Real `keygate serve` processes,
 * real upstream processes, on 127.0.0.1.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { groupLedBy, restartDelay, stopGroup, stopLeftUpstream } from '../src/spawned-upstream.js';
import { runCli, spawnServe, type ServeProcess } from './support/cli.js';
import { namedPort } from './support/ports.js';
import { tempDir } from './support/temp.js';

const dir = tempDir('spawned-upstream');

/** An upstream that answers every request with its own pid, and notes that it started. */
const UPSTREAM = `import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
writeFileSync('started', String(process.pid));
createServer((q, r) => r.setHeader('content-type', 'application/json').end(JSON.stringify({ pid: process.pid }))).listen(Number(process.env.PORT), '127.0.0.1');
`;

/**
 * An upstream like UPSTREAM that notes each of its starts (its pid, a line of `starts`): the
 * first listens at once, each later one (started again by keygate) only once the file `go`
 * exists, so that a test sees keygate while its upstream is down for as long as it needs.
 */
const GATED_UPSTREAM = `import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
appendFileSync('starts', process.pid + '\\n');
const listen = () => createServer((q, r) => r.setHeader('content-type', 'application/json').end(JSON.stringify({ pid: process.pid }))).listen(Number(process.env.PORT), '127.0.0.1');
if (readFileSync('starts', 'utf8').trim().split('\\n').length === 1) listen();
else {
  const gate = setInterval(() => {
    if (!existsSync('go')) return;
    clearInterval(gate);
    listen();
  }, 50);
}
`;

/**
 * An upstream like GATED_UPSTREAM whose later starts exit at once (code 1), before they
 * listen, until the file `go` exists: keygate waits longer before each next try.
 */
const FAILING_UPSTREAM = `import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
appendFileSync('starts', process.pid + '\\n');
if (readFileSync('starts', 'utf8').trim().split('\\n').length > 1 && !existsSync('go')) process.exit(1);
createServer((q, r) => r.setHeader('content-type', 'application/json').end(JSON.stringify({ pid: process.pid }))).listen(Number(process.env.PORT), '127.0.0.1');
`;

/**
 * An upstream whose first start loses its port to another process just before it listens,
 * as a race would have it: it starts a process of its own group (detached: not one keygate
 * stops with it) listening on PORT, notes that process's pid in `blocker`, then listens on
 * PORT itself and fails (EADDRINUSE). Each later start is UPSTREAM's.
 */
const RACED_UPSTREAM = `import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
appendFileSync('starts', process.pid + '\\n');
const listen = () => createServer((q, r) => r.setHeader('content-type', 'application/json').end(JSON.stringify({ pid: process.pid }))).listen(Number(process.env.PORT), '127.0.0.1');
if (readFileSync('starts', 'utf8').trim().split('\\n').length > 1) listen();
else {
  const taker = "require('node:http').createServer((q, r) => r.end('{\\"taker\\":true}')).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening'))";
  const blocker = spawn(process.execPath, ['-e', taker], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
  writeFileSync('blocker', String(blocker.pid));
  blocker.stdout.once('data', () => {
    blocker.unref();
    blocker.stdout.destroy();
    listen().once('error', () => process.exit(1));
  });
}
`;

/** A profile in a folder of its own whose upstream.spawn starts `upstream` (UPSTREAM) on `port`; `shutdown`: the profile's. */
function writeProfile(name: string, port: number, { upstream = UPSTREAM, shutdown, errors }: { upstream?: string; shutdown?: Record<string, string>; errors?: Record<string, unknown> } = {}): { file: string; folder: string } {
  const folder = path.join(dir, name);
  const file = path.join(folder, 'keygate.yaml');
  mkdirSync(folder);
  writeFileSync(path.join(folder, 'upstream.mjs'), upstream);
  writeFileSync(
    file,
    stringify({
      upstream: { url: `http://127.0.0.1:${port}`, spawn: ['node', 'upstream.mjs'] },
      store: `sqlite:${path.join(folder, 'k.db')}`,
      listen: { port: 0 },
      admin: { listen: { port: 0 } },
      dashboard: { enabled: false },
      ...(shutdown ? { shutdown } : {}),
      ...(errors ? { errors } : {}),
    }),
  );
  return { file, folder };
}

/** A key of a new account, made with the CLI as an operator would. */
async function keyFor(file: string): Promise<string> {
  const account = JSON.parse((await runCli(['--config', file, 'accounts', 'create', '--name', 'Acme', '--json'])).stdout) as { id: string };
  const key = JSON.parse((await runCli(['--config', file, 'keys', 'create', '--account', account.id, '--name', 'k', '--json'])).stdout) as { secret: string };
  return key.secret;
}

/** The pid of the upstream process that answered a request through the gateway. */
async function upstreamPid(serve: ServeProcess, secret: string): Promise<number> {
  const gateway = (JSON.parse(await serve.logged('keygate is serving')) as { gateway: string }).gateway;
  const response = await fetch(`${gateway}/v1/whoami`, { headers: { authorization: `Bearer ${secret}` } });
  expect(response.status).toBe(200);
  return ((await response.json()) as { pid: number }).pid;
}

/** Whether a process runs (one that ended but was not reaped, a zombie, does not). */
function runs(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Waits (up to `ms`) until `pid` no longer runs; answers whether it stopped. */
async function stops(pid: number, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (runs(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  return !runs(pid);
}

/**
 * Whether a socket listens on 127.0.0.1:`port`, read from /proc/net/tcp at this very
 * moment (a connection attempt would wait for the event loop, and a socket closed meanwhile
 * would pass for never open).
 */
function listensNow(port: number): boolean {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  // Fields: sl, local_address, rem_address, st (0A: LISTEN).
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .some((line) => {
      const [, address, , state] = line.trim().split(/\s+/);
      return address === local && state === '0A';
    });
}

/** The exit code, or 'running' if the process has not exited within `ms`. */
function exitWithin(serve: ServeProcess, ms: number): Promise<number | null | 'running'> {
  return Promise.race([serve.exited(), new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), ms))]);
}

/**
 * Ends what a test started, whatever state it left: keygates first, then upstreams still
 * running. An upstream that ended long ago may have left its number to another process
 * (another test's keygate): only a process running the test's upstream script is killed.
 */
/** Why a serve process could not start: its last line, the fatal log line (`keygate could not start: …`). */
function startFailureOf(serve: ServeProcess): string {
  const fatal = serve
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { level: number; msg: string })
    .findLast((line) => line.level === 60);
  return fatal?.msg ?? `no fatal log line in: ${serve.output()}`;
}

function cleanUp(serves: ServeProcess[], upstreams: number[]): void {
  for (const serve of serves) serve.child.kill('SIGKILL');
  for (const pid of upstreams) if (runs(pid) && runsUpstreamScript(pid)) process.kill(pid, 'SIGKILL');
}

function runsUpstreamScript(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('upstream.mjs');
  } catch {
    return false;
  }
}

describe('upstream.spawn forwards to its own child only', () => {
  it('refuses to start when another process already listens on upstream.url\'s port, naming the field and the port; the command is never started and the other server is left alone', async () => {
    const port = await namedPort();
    let requests = 0;
    const other = createServer((_request, response) => {
      requests++;
      response.end('the other server');
    });
    await new Promise<void>((resolve) => other.listen(port, '127.0.0.1', resolve));
    const { file, folder } = writeProfile('taken', port);
    const serve = spawnServe(file);
    try {
      expect(await exitWithin(serve, 20_000)).toBe(1);
      expect(startFailureOf(serve)).toBe(`keygate could not start: upstream.spawn: port 127.0.0.1:${port} is already in use by another process; stop it or change upstream.url`);
      expect(existsSync(path.join(folder, 'started'))).toBe(false);
      // Still listening, and sent no request by keygate.
      expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('the other server');
      expect(requests).toBe(1);
    } finally {
      serve.child.kill('SIGKILL');
      await new Promise((resolve) => other.close(resolve));
    }
  });

  // The left upstream is known by what Linux's /proc shows of it.
  describe.skipIf(process.platform !== 'linux')('an upstream left running by a keygate killed with SIGKILL', () => {
    it('is stopped by the next start, which serves through a fresh one and says so; none remains once that keygate stops', async () => {
      const { file } = writeProfile('killed', await namedPort());
      const secret = await keyFor(file);
      const first = spawnServe(file);
      const upstreams: number[] = [];
      let second: ServeProcess | undefined;
      try {
        const left = await upstreamPid(first, secret);
        upstreams.push(left);
        first.child.kill('SIGKILL');
        await first.exited();
        // Left running: no keygate stopped it.
        expect(runs(left)).toBe(true);

        second = spawnServe(file);
        const fresh = await upstreamPid(second, secret);
        upstreams.push(fresh);
        expect(fresh).not.toBe(left);
        expect(runs(left)).toBe(false);
        expect(second.output()).toContain(`upstream.spawn: stopped pid ${left} (\\"${process.execPath} upstream.mjs\\"), the upstream a keygate (pid ${first.child.pid}) that ended without stopping it left running`);

        second.child.kill('SIGTERM');
        expect(await exitWithin(second, 20_000)).toBe(0);
        expect(await stops(fresh)).toBe(true);
        expect(existsSync(`${file}.upstream.pid`)).toBe(false);
      } finally {
        cleanUp([first, ...(second ? [second] : [])], upstreams);
      }
    });

    // An upstream's process group outlives no process of it, and then its number may go to
    // any new process (another keygate, say, itself a group's leader): that one is not stopped.
    it('signals no group whose number went to another process since', async () => {
      const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { detached: true, stdio: 'ignore' });
      const pid = child.pid as number;
      try {
        const now = groupLedBy(pid);
        expect(now.started).toMatch(/^\d+$/);
        // The group keygate started had this number, with a leader that started at another time.
        expect(await stopGroup({ pgrp: pid, started: String(Number(now.started) - 1) })).toBe(true);
        await new Promise((resolve) => setTimeout(resolve, 200));
        expect(runs(pid)).toBe(true);
        // The group as it is now is stopped.
        expect(await stopGroup(now)).toBe(true);
        expect(runs(pid)).toBe(false);
      } finally {
        if (runs(pid)) process.kill(pid, 'SIGKILL');
      }
    });

    // Its main thread shows as ended (a zombie) while its other threads still end and its
    // socket still listens: the port check that follows would find the port in use.
    it('is stopped only once its listening socket has closed, so the port is free when the stop answers', async () => {
      for (let round = 0; round < 10; round++) {
        const port = await namedPort();
        const server = `require('node:http').createServer((q, r) => r.end()).listen(${port}, '127.0.0.1', () => console.log('listening'))`;
        const child = spawn(process.execPath, ['-e', server], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
        const pid = child.pid as number;
        try {
          await new Promise((resolve) => child.stdout.once('data', resolve));
          expect(listensNow(port)).toBe(true);
          expect(await stopLeftUpstream({ pid, started: groupLedBy(pid).started as string, command: 'node -e', keygate: process.pid, inUse: false })).toBe(true);
          expect(listensNow(port)).toBe(false);
        } finally {
          if (runs(pid)) process.kill(pid, 'SIGKILL');
        }
      }
    });

    it('is not the upstream of a keygate still serving the profile: a second start is refused naming it, and the first goes on serving through it', async () => {
      const port = await namedPort();
      const { file } = writeProfile('serving', port);
      const secret = await keyFor(file);
      const first = spawnServe(file);
      const upstreams: number[] = [];
      let second: ServeProcess | undefined;
      try {
        const upstream = await upstreamPid(first, secret);
        upstreams.push(upstream);
        second = spawnServe(file);
        expect(await exitWithin(second, 20_000)).toBe(1);
        expect(startFailureOf(second)).toBe(
          `keygate could not start: upstream.spawn: port 127.0.0.1:${port} is already in use by another process (pid ${upstream}, "${process.execPath} upstream.mjs": the upstream of the keygate running as pid ${first.child.pid}); stop it or change upstream.url`,
        );
        expect(await upstreamPid(first, secret)).toBe(upstream);
        first.child.kill('SIGTERM');
        expect(await exitWithin(first, 20_000)).toBe(0);
        expect(await stops(upstream)).toBe(true);
      } finally {
        cleanUp([first, ...(second ? [second] : [])], upstreams);
      }
    });
  });
});

/** The pids of the upstream's starts so far (GATED_UPSTREAM notes each). */
function starts(folder: string): number[] {
  const file = path.join(folder, 'starts');
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').map(Number) : [];
}

/** Waits (up to 60 s) until `done` answers true, looking every 50 ms; fails the test naming `what` if it never does. */
async function until(what: string, done: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`not within 60 s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The gateway's and the admin API's addresses, from the line `keygate serve` logs once it serves. */
async function addresses(serve: ServeProcess): Promise<{ gateway: string; admin: string }> {
  return JSON.parse(await serve.logged('keygate is serving')) as { gateway: string; admin: string };
}

/** An admin token for the admin API's /metrics. */
const ADMIN_TOKEN = 'spawned-upstream-admin-token-3b9e';

/** One unlabelled series of /metrics (keygate_upstream_up, keygate_upstream_restarts_total), or undefined if it shows none. */
async function metric(admin: string, name: string): Promise<number | undefined> {
  const response = await fetch(`${admin}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  expect(response.status).toBe(200);
  const line = (await response.text()).split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe.skipIf(process.platform !== 'linux')('upstream.spawn with upstream.url on port 0', () => {
  it('starts the command on a port keygate chose (PORT), and on another when a process took that one before the command listened; requests reach the command, never that process', async () => {
    const { file, folder } = writeProfile('port-zero', 0, { upstream: RACED_UPSTREAM });
    const secret = await keyFor(file);
    const serve = spawnServe(file);
    const blocker = () => Number(readFileSync(path.join(folder, 'blocker'), 'utf8'));
    try {
      const served = await upstreamPid(serve, secret);
      const [first, second] = starts(folder);
      expect(served).toBe(second);
      const warning = JSON.parse(await serve.logged('was taken by another process before the command listened on it')) as { level: number; port: number; msg: string };
      expect(warning.level).toBe(40);
      // The process that took the first port still has it; the gateway's upstream is on another.
      const { gateway } = await addresses(serve);
      const upstream = (JSON.parse(await serve.logged('keygate is serving')) as { upstream: string }).upstream;
      expect(upstream).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      expect(new URL(upstream).port).not.toBe(String(warning.port));
      expect(await (await fetch(`http://127.0.0.1:${warning.port}/`)).json()).toEqual({ taker: true });
      expect(((await (await fetch(`${gateway}/v1/whoami`, { headers: { authorization: `Bearer ${secret}` } })).json()) as { pid: number }).pid).toBe(second);
      expect(runs(first as number)).toBe(false);
    } finally {
      cleanUp([serve], starts(folder));
      if (existsSync(path.join(folder, 'blocker')) && runs(blocker())) process.kill(blocker(), 'SIGKILL');
    }
  });

  it('is refused without upstream.spawn, naming the field', async () => {
    const folder = path.join(dir, 'port-zero-no-spawn');
    mkdirSync(folder);
    const file = path.join(folder, 'keygate.yaml');
    writeFileSync(file, stringify({ upstream: { url: 'http://127.0.0.1:0' }, store: `sqlite:${path.join(folder, 'k.db')}` }));
    const result = await runCli(['--config', file, 'check', '--offline']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('  - upstream.url: port 0 (any free port) only with upstream.spawn');
  });
});

describe('restartDelay', () => {
  it('waits 1 s before the first start again, doubling with each one after, up to 30 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map(restartDelay)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
  });
});

// Processes are seen through Linux's /proc, as above.
describe.skipIf(process.platform !== 'linux')('an upstream.spawn upstream that exits while keygate serves', () => {
  it('is logged as an error naming its signal, /health/ready answers 503 with the reason until it is back, and it is started again with no one acting; none remains once keygate stops', async () => {
    const { file, folder } = writeProfile('restarted', await namedPort(), { upstream: GATED_UPSTREAM });
    const secret = await keyFor(file);
    // In keygate's environment, and so in the upstream's: never in the log.
    const serve = spawnServe(file, { UPSTREAM_SECRET: 'sk_never_logged_7f3a' });
    try {
      const first = await upstreamPid(serve, secret);
      const { gateway, admin } = await addresses(serve);
      expect((await fetch(`${admin}/health/ready`)).status).toBe(200);

      process.kill(first, 'SIGKILL');
      const exit = JSON.parse(await serve.logged(`(pid ${first}) exited`)) as Record<string, unknown>;
      expect(exit).toMatchObject({ level: 50, command: 'node upstream.mjs', upstreamPid: first, signal: 'SIGKILL', code: null });
      expect(exit.msg).toContain(`upstream.spawn: "node upstream.mjs" (pid ${first}) exited (SIGKILL)`);

      // Started again, and held by the test before it listens: keygate is not ready meanwhile.
      await until('the upstream is started again', () => starts(folder).length >= 2);
      const down = await fetch(`${admin}/health/ready`);
      expect(down.status).toBe(503);
      expect(await down.json()).toMatchObject({ status: 'unavailable', reason: expect.stringMatching(/^the upstream keygate started \(upstream\.spawn\) is down since .*: it exited \(SIGKILL\)$/) });
      const refused = await fetch(`${gateway}/v1/whoami`, { headers: { authorization: `Bearer ${secret}` } });
      expect(refused.status).toBe(503);
      // A start is under way: try again in a second.
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(await serve.logged('starting it again (attempt')).toContain('upstream.spawn: \\"node upstream.mjs\\": starting it again (attempt 1)');

      writeFileSync(path.join(folder, 'go'), '');
      await until('/health/ready answers 200', async () => (await fetch(`${admin}/health/ready`)).status === 200);
      const restarted = starts(folder).at(-1) as number;
      expect(await upstreamPid(serve, secret)).toBe(restarted);
      expect(await serve.logged(`is back (pid ${restarted})`)).toContain('"level":30');

      serve.child.kill('SIGTERM');
      expect(await exitWithin(serve, 60_000)).toBe(0);
      for (const pid of starts(folder)) expect(await stops(pid, 60_000)).toBe(true);
      expect(existsSync(`${file}.upstream.pid`)).toBe(false);
      expect(serve.output()).not.toContain('sk_never_logged_7f3a');
    } finally {
      cleanUp([serve], starts(folder));
    }
  });

  it('shows in /metrics: keygate_upstream_up 0 while it is down, each start of it again in keygate_upstream_restarts_total, and 1 once it is back', async () => {
    const { file, folder } = writeProfile('metrics', await namedPort(), { upstream: GATED_UPSTREAM });
    const serve = spawnServe(file, { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN });
    try {
      const { admin } = await addresses(serve);
      expect(await metric(admin, 'keygate_upstream_up')).toBe(1);
      expect(await metric(admin, 'keygate_upstream_restarts_total')).toBe(0);

      process.kill(starts(folder)[0] as number, 'SIGKILL');
      // Started again, and held by the test before it listens.
      await until('the upstream is started again', () => starts(folder).length >= 2);
      expect(await metric(admin, 'keygate_upstream_up')).toBe(0);
      expect(await metric(admin, 'keygate_upstream_restarts_total')).toBe(1);

      writeFileSync(path.join(folder, 'go'), '');
      await until('keygate_upstream_up is 1 again', async () => (await metric(admin, 'keygate_upstream_up')) === 1);
      expect(await metric(admin, 'keygate_upstream_restarts_total')).toBe(1);
    } finally {
      cleanUp([serve], starts(folder));
    }
  });

  it('has requests answered with the profile\'s service_unavailable (503, in its envelope) with Retry-After: the seconds until keygate next tries to start it; logged as upstream_unavailable', async () => {
    // The API's own answer for a service briefly unavailable (SE Ranking Data API's table).
    const errors = { envelope: 'error_description', reasons: { service_unavailable: { reasonPhrase: 'Service unavailable', message: 'System is busy. Please try again later.' } } };
    const { file, folder } = writeProfile('retry-after', await namedPort(), { upstream: FAILING_UPSTREAM, errors });
    const secret = await keyFor(file);
    const serve = spawnServe(file);
    try {
      const first = await upstreamPid(serve, secret);
      const { gateway } = await addresses(serve);
      process.kill(first, 'SIGKILL');
      // Tried after 1 s and 2 s, each exiting before it listens: the next try is 4 s away.
      await serve.logged('starting it again in 4 s');
      const refused = await fetch(`${gateway}/v1/whoami`, { headers: { authorization: `Bearer ${secret}` } });
      expect(refused.status).toBe(503);
      expect(refused.statusText).toBe('Service unavailable');
      expect(await refused.json()).toEqual({ error_description: 'System is busy. Please try again later.' });
      // The operator reads why: the upstream, not a backend of keygate's.
      expect(JSON.parse(await serve.logged('"status":503'))).toMatchObject({ msg: 'request', outcome: 'upstream_error', reason: 'upstream_unavailable' });
      // 4 as soon as it is logged; 2 leaves this test's request a slow 2 s to arrive.
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(2);
      expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(4);

      writeFileSync(path.join(folder, 'go'), '');
      await until('the upstream is back', async () => (await fetch(`${gateway}/v1/whoami`, { headers: { authorization: `Bearer ${secret}` } })).status === 200);
      expect(await upstreamPid(serve, secret)).toBe(starts(folder).at(-1));
    } finally {
      cleanUp([serve], starts(folder));
    }
  });

  it('is not left running when keygate stops while starting it again', async () => {
    const { file, folder } = writeProfile('stopped-while-restarting', await namedPort(), { upstream: GATED_UPSTREAM });
    const secret = await keyFor(file);
    const serve = spawnServe(file);
    try {
      const first = await upstreamPid(serve, secret);
      process.kill(first, 'SIGKILL');
      // Started again, not listening yet (no `go`).
      await until('the upstream is started again', () => starts(folder).length >= 2);
      serve.child.kill('SIGTERM');
      expect(await exitWithin(serve, 60_000)).toBe(0);
      for (const pid of starts(folder)) expect(await stops(pid, 60_000)).toBe(true);
    } finally {
      cleanUp([serve], starts(folder));
    }
  });

  it('is not started again once keygate is stopping: the exit is logged as a warning, and keygate stops as asked', async () => {
    const { file, folder } = writeProfile('exited-while-stopping', await namedPort(), { upstream: GATED_UPSTREAM, shutdown: { readinessDelay: '10m' } });
    const secret = await keyFor(file);
    const serve = spawnServe(file);
    try {
      const first = await upstreamPid(serve, secret);
      serve.child.kill('SIGTERM');
      await serve.logged('keygate stopping (SIGTERM)');
      process.kill(first, 'SIGKILL');
      const exit = JSON.parse(await serve.logged(`(pid ${first}) exited`)) as Record<string, unknown>;
      expect(exit).toMatchObject({ level: 40, upstreamPid: first, signal: 'SIGKILL', msg: `upstream.spawn: "node upstream.mjs" (pid ${first}) exited (SIGKILL) while keygate is stopping: not started again` });
      // A second signal cuts the readiness delay short.
      serve.child.kill('SIGTERM');
      expect(await exitWithin(serve, 60_000)).toBe(0);
      expect(starts(folder)).toEqual([first]);
      expect(await stops(first, 60_000)).toBe(true);
    } finally {
      cleanUp([serve], starts(folder));
    }
  });
});
