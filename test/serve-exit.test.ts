/**
 * What `keygate serve` writes as it stops or fails to start, read the way journald or a
 * container runtime reads it: every line a JSON log line on stdout, nothing on stderr,
 * none lost and none out of order, even when the reader is slower than keygate writes.
 * A reader that stops reading holds no request: lines past log.bufferSize are dropped and
 * counted, and an exit waits a few seconds at most for it. The one exception to nothing
 * on stderr: lines dropped that way, or given up at the exit, are said there too, as a JSON
 * warning, at once (stdout's own warning waits for its reader); a stderr nobody reads holds
 * no request either.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Readable } from 'node:stream';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { BIN, runCli } from './support/cli.js';
import { tempDir } from './support/temp.js';
import { completeLogLines, logLines, longRequests, LONG_PATH, outputOf, type LogLine } from './support/log-lines.js';

/** How long a line is waited for before the test is taken as hung (a loaded host took 12 s for a CLI run). */
const LINE_TIMEOUT_MS = 60_000;

/**
 * A `keygate serve` as journald runs it: stdout and stderr kept apart, or, with
 * `stderrOnStdout`, one pipe for both (`2>&1`, journald's own stream).
 */
function startServe(file: string, env?: NodeJS.ProcessEnv, { stderrOnStdout = false } = {}) {
  const args = [BIN, 'serve', '--config', file];
  const [program, programArgs] = stderrOnStdout ? ['sh', ['-c', 'exec "$0" "$@" 2>&1', process.execPath, ...args]] : [process.execPath, args];
  const child: ChildProcessByStdio<null, Readable, Readable> = spawn(program, programArgs, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env: { ...process.env, ...env } } : {}) });
  const { stdout, stderr, exited, closed } = outputOf(child);
  return {
    child,
    stdout,
    stderr,
    exited: () => exited,
    // Everything read, once the process is gone and its pipes are drained.
    closed: () => closed,
    /** The first line of stdout containing `text`, once it has been written. */
    logged: (text: string) => firstLineWith(text, stdout, () => `${stdout()}\n${stderr()}`),
    /** The first line of stderr containing `text`, once it has been written. */
    warned: (text: string) => firstLineWith(text, stderr, stderr),
  };
}

/** Its stdout read again, a SIGTERM stops it as any does: exit code 0, and `keygate stopped` its last line. */
async function stopsAsAfterAnySigterm(serve: ReturnType<typeof startServe>): Promise<void> {
  serve.child.stdout.resume();
  serve.child.kill('SIGTERM');
  expect(await serve.exited()).toBe(0);
  await serve.closed();
  expect(logLines(serve.stdout()).at(-1)?.msg).toBe('keygate stopped');
}

/** The first complete line of `read()` containing `text`, once there is one (within LINE_TIMEOUT_MS); `shown` says what was read instead. */
function firstLineWith(text: string, read: () => string, shown: () => string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const deadline = Date.now() + LINE_TIMEOUT_MS;
    const look = () => {
      const line = read().split('\n').slice(0, -1).find((l) => l.includes(text));
      if (line !== undefined) resolve(line);
      else if (Date.now() > deadline) reject(new Error(`no "${text}" within ${LINE_TIMEOUT_MS / 1000} s:\n${shown()}`));
      else setTimeout(look, 25);
    };
    look();
  });
}

function profile(dir: string, name: string, fields: Record<string, unknown> = {}): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, stringify({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${path.join(dir, `${name}.db`)}`, listen: { port: 0 }, admin: { listen: { port: 0 } }, dashboard: { enabled: false }, ...fields }));
  return file;
}

describe('keygate serve as it stops', () => {
  const dir = tempDir('serve-exit');

  it('writes every line, in order, to a log reader slower than it writes, before it exits', async () => {
    const serve = startServe(profile(dir, 'slow-reader'));
    const { child } = serve;
    let pace: NodeJS.Timeout | undefined;
    try {
      const { gateway } = JSON.parse(await serve.logged('keygate is serving')) as { gateway: string };
      // From now on the reader takes one chunk (at most 64 KB) every 200 ms: the pipe stays full,
      // and keygate's lines wait for it (about 1 MB of them below).
      child.stdout.pause();
      pace = setInterval(() => {
        child.stdout.once('data', () => child.stdout.pause());
        child.stdout.resume();
      }, 200);
      // Each refused request is a line of about 3 KB (its target is logged).
      const target = `${gateway}${'/seg'.repeat(750)}`;
      const requests = 300;
      let sent = 0;
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          while (sent < requests) {
            sent++;
            const response = await fetch(target);
            expect(response.status).toBe(401);
            await response.arrayBuffer();
          }
        }),
      );
      child.kill('SIGTERM');
      expect(await serve.exited()).toBe(0);
      clearInterval(pace);
      child.stdout.resume();
      await serve.closed();

      const lines = logLines(serve.stdout());
      expect(lines.filter((line) => line.msg === 'request')).toHaveLength(requests);
      // In the order they were written: no line came out after a later one.
      const times = lines.map((line) => line.time);
      expect(times).toEqual([...times].sort((a, b) => a - b));
      expect(lines.slice(-2).map((line) => line.msg)).toEqual(['keygate stopping (SIGTERM): closing the listeners', 'keygate stopped']);
      expect(serve.stderr()).toBe('');
    } finally {
      clearInterval(pace);
      child.kill('SIGKILL');
    }
  });

  it('says a second SIGTERM, which cuts the readiness delay short, in a JSON line', async () => {
    const serve = startServe(profile(dir, 'second-signal', { shutdown: { readinessDelay: '10m' } }));
    const { child } = serve;
    try {
      await serve.logged('keygate is serving');
      child.kill('SIGTERM');
      await serve.logged('keygate stopping');
      child.kill('SIGTERM');
      expect(await serve.exited()).toBe(0);
      await serve.closed();
      const lines = logLines(serve.stdout());
      expect(lines.find((line) => line.msg.startsWith('SIGTERM again'))).toMatchObject({ level: 30, signal: 'SIGTERM', msg: 'SIGTERM again: closing the listeners now (once more: exiting at once)' });
      expect(lines.at(-1)?.msg).toBe('keygate stopped');
      expect(serve.stderr()).toBe('');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('says a second SIGTERM that exits at once (the drain still held by a half-sent request) as its last JSON line, and exits 1', async () => {
    const serve = startServe(profile(dir, 'exit-at-once', { shutdown: { drainTimeout: '1h' } }));
    const { child } = serve;
    let stalled: Socket | undefined;
    try {
      const { gateway } = JSON.parse(await serve.logged('keygate is serving')) as { gateway: string };
      // Headers begun and never finished: the drain waits for this request up to drainTimeout.
      const { hostname, port } = new URL(gateway);
      const socket = connect(Number(port), hostname);
      stalled = socket;
      await new Promise<void>((resolve) => socket.once('connect', resolve));
      await new Promise<void>((resolve) => socket.write('GET /v1/anything HTTP/1.1\r\nHost: keygate\r\n', () => resolve()));
      child.kill('SIGTERM');
      await serve.logged('keygate stopping');
      child.kill('SIGTERM');
      expect(await serve.exited()).toBe(1);
      await serve.closed();
      const lines = logLines(serve.stdout());
      expect(lines.at(-1)).toMatchObject({ level: 40, signal: 'SIGTERM', msg: 'SIGTERM again: exiting now' });
      expect(serve.stderr()).toBe('');
    } finally {
      stalled?.destroy();
      child.kill('SIGKILL');
    }
  });
});

/** An admin token for reading /metrics (at least 24 characters). */
const ADMIN_TOKEN = 'serve-exit-admin-token-0123456789';
/** How long one request may take before the gateway is taken as held by its log (it answers in milliseconds). */
const REQUEST_TIMEOUT_MS = 30_000;
/** Requests refused for want of a key, each a log line of about 8 KB: 200 of them are more than a pipe and a reader's buffer hold. */
const REQUESTS = 200;
const ALL_REFUSED = Array.from({ length: REQUESTS }, () => 401);
/** The message of the warning keygate writes on stderr when standard output's lines are dropped (the last, as it stops, says so). */
const DROP_WARNING = /^\d+ log line\(s\) dropped because standard output was not read(: |, said as keygate's log closes: )/;

/**
 * The gateway's and admin API's addresses, once keygate has written the last line it
 * writes by itself at start: every line after it is a request's.
 */
async function quietAfterStart(serve: ReturnType<typeof startServe>): Promise<{ gateway: string; admin: string }> {
  const addresses = JSON.parse(await serve.logged('keygate is serving')) as { gateway: string; admin: string };
  await serve.logged('the upstream accepts no connections');
  return addresses;
}

/** keygate_log_lines_dropped_total, read from the admin API's /metrics. */
async function droppedLogLines(admin: string): Promise<number> {
  const text = await (await fetch(`${admin}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).text();
  const value = /^keygate_log_lines_dropped_total (\d+)$/m.exec(text)?.[1];
  if (value === undefined) throw new Error(`no keygate_log_lines_dropped_total in /metrics:\n${text.slice(0, 500)}`);
  return Number(value);
}

/** Its exit code, or 'still running' if it has not exited within LINE_TIMEOUT_MS (taken as hung). */
function exitedWithin(serve: ReturnType<typeof startServe>): Promise<number | null | string> {
  return Promise.race([serve.exited(), new Promise<string>((resolve) => setTimeout(resolve, LINE_TIMEOUT_MS, 'still running').unref())]);
}

/** Resolves once nothing listens at `url` any more (a connection is refused), within LINE_TIMEOUT_MS. */
async function refusedAt(url: string): Promise<void> {
  const deadline = Date.now() + LINE_TIMEOUT_MS;
  for (;;) {
    try {
      await (await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).arrayBuffer();
    } catch {
      return;
    }
    if (Date.now() > deadline) throw new Error(`${url} still answers after ${LINE_TIMEOUT_MS / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('keygate serve with a log reader that stops reading', () => {
  const dir = tempDir('serve-log-reader');

  it('answers every request while its log reader reads nothing, drops the lines past log.bufferSize and counts them, and says how many once the reader reads again', async () => {
    const serve = startServe(profile(dir, 'stalled-reader', { log: { bufferSize: 65_536 } }), { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN });
    const { child } = serve;
    try {
      const { gateway, admin } = await quietAfterStart(serve);
      expect(await droppedLogLines(admin)).toBe(0);
      // From now on nothing is read: the pipe fills, then keygate's 64 KB of lines.
      child.stdout.pause();
      expect(await longRequests(gateway, REQUESTS, REQUEST_TIMEOUT_MS)).toEqual(ALL_REFUSED);
      const dropped = await droppedLogLines(admin);
      expect(dropped).toBeGreaterThan(0);

      child.stdout.resume();
      // Said once the reader has taken every line kept: a warning for each time it fell
      // behind (the reader's first chunks may let keygate catch up once before it stalls).
      await serve.logged(`"droppedLinesTotal":${dropped},`);
      const lines = completeLogLines(serve.stdout());
      const warnings = lines.filter((line) => line.msg.includes('log line(s) dropped'));
      expect(warnings.at(-1)).toMatchObject({ level: 40, droppedLines: expect.any(Number), droppedLinesTotal: dropped, bufferSize: 65_536 });
      expect(warnings.reduce((sum, line) => sum + (line.droppedLines as number), 0)).toBe(dropped);
      for (const warning of warnings) {
        expect(warning.msg).toBe(`${warning.droppedLines as number} log line(s) dropped: standard output was not read while 65536 bytes of lines waited for it (log.bufferSize); keygate_log_lines_dropped_total counts them`);
      }
      // Every request either logged, in order, or counted as dropped.
      const logged = lines.filter((line) => line.msg === 'request');
      expect(logged.length + dropped).toBe(REQUESTS);
      const times = lines.map((line) => line.time);
      expect(times).toEqual([...times].sort((a, b) => a - b));
      expect(await droppedLogLines(admin)).toBe(dropped);

      child.kill('SIGTERM');
      expect(await serve.exited()).toBe(0);
      await serve.closed();
      expect(logLines(serve.stdout()).at(-1)?.msg).toBe('keygate stopped');
      // Nothing on stderr but the drops, said there as they happened (the next test).
      for (const line of logLines(serve.stderr())) expect(line.msg).toMatch(DROP_WARNING);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('says on stderr, while its log reader still reads nothing, that lines are being dropped: one JSON line at the first drop', async () => {
    const serve = startServe(profile(dir, 'stalled-reader-warned', { log: { bufferSize: 65_536 } }), { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN });
    const { child } = serve;
    try {
      const { gateway, admin } = await quietAfterStart(serve);
      expect(serve.stderr()).toBe('');
      child.stdout.pause();
      expect(await longRequests(gateway, REQUESTS, REQUEST_TIMEOUT_MS)).toEqual(ALL_REFUSED);
      const dropped = await droppedLogLines(admin);
      expect(dropped).toBeGreaterThan(0);

      // stdout is still not read: its own warning waits behind the lines it keeps.
      const warning = JSON.parse(await serve.warned('log line(s) dropped')) as LogLine;
      expect(warning).toEqual({
        level: 40,
        time: expect.any(Number),
        name: 'keygate',
        droppedLines: 1,
        droppedLinesTotal: 1,
        bufferSize: 65_536,
        msg: '1 log line(s) dropped because standard output was not read: 65536 bytes of lines wait for it (log.bufferSize); keygate_log_lines_dropped_total counts them',
      });
      // The next one says the drops since, a minute later at the soonest (the test is over by then).
      const warnings = logLines(serve.stderr());
      for (const line of warnings) expect(line.msg).toMatch(DROP_WARNING);
      expect(warnings.reduce((sum, line) => sum + (line.droppedLines as number), 0)).toBeLessThanOrEqual(dropped);

      await stopsAsAfterAnySigterm(serve);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('says on stderr, as it stops, the lines dropped since its last warning there, though a minute has not passed: the warnings add up to the last total', async () => {
    const serve = startServe(profile(dir, 'stalled-reader-stopped', { log: { bufferSize: 65_536 } }), { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN });
    const { child } = serve;
    try {
      const { gateway, admin } = await quietAfterStart(serve);
      child.stdout.pause();
      expect(await longRequests(gateway, REQUESTS, REQUEST_TIMEOUT_MS)).toEqual(ALL_REFUSED);
      const first = JSON.parse(await serve.warned('log line(s) dropped')) as LogLine;
      expect(first).toMatchObject({ droppedLines: 1, droppedLinesTotal: 1 });
      // More dropped after it, within the minute: the next warning is not due yet.
      expect(await longRequests(gateway, REQUESTS, REQUEST_TIMEOUT_MS)).toEqual(ALL_REFUSED);
      const dropped = await droppedLogLines(admin);
      expect(dropped).toBeGreaterThan(1);

      // Stopped while stdout is still not read: the lines it keeps are given up after a few seconds.
      child.kill('SIGTERM');
      expect(await serve.exited()).toBe(0);
      child.stdout.resume();
      await serve.closed();
      const warnings = logLines(serve.stderr());
      for (const line of warnings) expect(line.msg).toMatch(DROP_WARNING);
      const last = warnings.at(-1) as LogLine;
      // Every drop said once: the last total is all of them, any of the stop's own lines (after /metrics was read) among them.
      expect(warnings.reduce((sum, line) => sum + (line.droppedLines as number), 0)).toBe(last.droppedLinesTotal);
      expect(last.droppedLinesTotal).toBeGreaterThanOrEqual(dropped);
      expect(last).toMatchObject({ level: 40, name: 'keygate', bufferSize: 65_536 });
      expect(last.msg).toBe(
        `${last.droppedLines as number} log line(s) dropped because standard output was not read, said as keygate's log closes: ${last.droppedLinesTotal as number} in all (keygate_log_lines_dropped_total), with 65536 bytes of lines waiting for it (log.bufferSize)`,
      );
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('answers every request, and exits, when stderr is not read either', async () => {
    // keygate's stderr is full from the start: a megabyte of empty lines waits in it (Node
    // keeps what the pipe has no room for), so the drop warning can only wait its turn.
    const filler = path.join(dir, 'fill-stderr.mjs');
    writeFileSync(filler, `process.stderr.write('\\n'.repeat(1024 * 1024));\n`);
    const serve = startServe(profile(dir, 'stalled-stderr', { log: { bufferSize: 65_536 } }), { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN, NODE_OPTIONS: `--import=${pathToFileURL(filler).href}` });
    const { child } = serve;
    child.stderr.pause();
    try {
      const { gateway, admin } = await quietAfterStart(serve);
      child.stdout.pause();
      expect(await longRequests(gateway, REQUESTS, REQUEST_TIMEOUT_MS)).toEqual(ALL_REFUSED);
      expect(await droppedLogLines(admin)).toBeGreaterThan(0);

      // Read again, stderr gets the warning kept for it, after the empty lines.
      child.stderr.resume();
      expect(JSON.parse(await serve.warned('log line(s) dropped'))).toMatchObject({ level: 40, droppedLines: 1, droppedLinesTotal: 1 });
      await stopsAsAfterAnySigterm(serve);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('says dropped lines only once its log reader reads again, each line whole, when stderr is the same pipe as stdout', async () => {
    const serve = startServe(profile(dir, 'shared-pipe', { log: { bufferSize: 65_536 } }), { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN }, { stderrOnStdout: true });
    const { child } = serve;
    try {
      const { gateway, admin } = await quietAfterStart(serve);
      child.stdout.pause();
      expect(await longRequests(gateway, REQUESTS, REQUEST_TIMEOUT_MS)).toEqual(ALL_REFUSED);
      const dropped = await droppedLogLines(admin);
      expect(dropped).toBeGreaterThan(0);

      child.stdout.resume();
      await serve.logged(`"droppedLinesTotal":${dropped},`);
      child.kill('SIGTERM');
      expect(await serve.exited()).toBe(0);
      await serve.closed();
      // Every line JSON: no warning of stderr's came between the lines stdout was still writing.
      const lines = logLines(serve.stdout());
      expect(lines.filter((line) => DROP_WARNING.test(line.msg))).toEqual([]);
      expect(lines.filter((line) => line.msg.includes('log line(s) dropped')).reduce((sum, line) => sum + (line.droppedLines as number), 0)).toBe(dropped);
      expect(lines.at(-1)?.msg).toBe('keygate stopped');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('writes every line, in order, to a log reader that pauses, though SIGTERM comes while it reads nothing', async () => {
    const serve = startServe(profile(dir, 'paused-reader'));
    const { child } = serve;
    try {
      const { gateway } = await quietAfterStart(serve);
      child.stdout.pause();
      // About 1.6 MB of lines: more than the pipe holds, less than log.bufferSize (16 MB).
      expect(await longRequests(gateway, REQUESTS, REQUEST_TIMEOUT_MS)).toEqual(ALL_REFUSED);
      child.kill('SIGTERM');
      // Its listeners closed: keygate is at its last step, its lines still waiting for the reader.
      await refusedAt(gateway);
      child.stdout.resume();
      expect(await serve.exited()).toBe(0);
      await serve.closed();

      const lines = logLines(serve.stdout());
      // The requests above: refusedAt's first probe (to /) may be answered, and logged, before the SIGTERM is handled.
      const logged = lines.filter((line) => line.msg === 'request' && line.target === LONG_PATH);
      expect(logged).toHaveLength(REQUESTS);
      // Each once, in the order they were written.
      expect(new Set(logged.map((line) => line.reqId)).size).toBe(REQUESTS);
      const times = lines.map((line) => line.time);
      expect(times).toEqual([...times].sort((a, b) => a - b));
      expect(lines.slice(-2).map((line) => line.msg)).toEqual(['keygate stopping (SIGTERM): closing the listeners', 'keygate stopped']);
      expect(serve.stderr()).toBe('');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('exits as after any SIGTERM, code 0, when its log reader never reads again: the lines it still keeps are given up after a few seconds, counted and said on stderr', async () => {
    const serve = startServe(profile(dir, 'gone-reader'));
    const { child } = serve;
    try {
      const { gateway } = await quietAfterStart(serve);
      const start = completeLogLines(serve.stdout()).length;
      child.stdout.pause();
      expect(await longRequests(gateway, REQUESTS, REQUEST_TIMEOUT_MS)).toEqual(ALL_REFUSED);
      child.kill('SIGTERM');
      // Read again only once it has exited (or been taken as hung).
      expect(await exitedWithin(serve)).toBe(0);
      child.stdout.resume();
      await serve.closed();
      // What the pipe held is there, in order; the rest was given up.
      const lines = completeLogLines(serve.stdout());
      const logged = lines.filter((line) => line.msg === 'request');
      expect(logged.length).toBeLessThan(REQUESTS);
      const times = lines.map((line) => line.time);
      expect(times).toEqual([...times].sort((a, b) => a - b));
      // None dropped while it ran (log.bufferSize is 16 MB): the one warning is of the lines given up.
      const warnings = logLines(serve.stderr());
      expect(warnings).toHaveLength(1);
      const [warning] = warnings as [LogLine];
      expect(warning.msg).toMatch(DROP_WARNING);
      expect(warning).toMatchObject({ level: 40, name: 'keygate', droppedLines: warning.droppedLinesTotal, bufferSize: 16_777_216 });
      // Each line after the start (the requests', then the stop's two) is on stdout or counted: none lost unsaid.
      const after = lines.slice(start);
      expect(after.every((line) => line.msg === 'request' || line.msg.startsWith('keygate stop'))).toBe(true);
      expect(after.length + (warning.droppedLinesTotal as number)).toBe(REQUESTS + 2);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('exits as after any SIGTERM, code 0, when stdout and stderr are one pipe that is never read again: nothing more can be said, the log ends where the pipe was full', async () => {
    const serve = startServe(profile(dir, 'gone-shared-reader', { log: { bufferSize: 65_536 } }), { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN }, { stderrOnStdout: true });
    const { child } = serve;
    try {
      const { gateway, admin } = await quietAfterStart(serve);
      child.stdout.pause();
      expect(await longRequests(gateway, REQUESTS, REQUEST_TIMEOUT_MS)).toEqual(ALL_REFUSED);
      expect(await droppedLogLines(admin)).toBeGreaterThan(0);
      child.kill('SIGTERM');
      // Its stop is bounded all the same: the lines kept are given up a few seconds after the reader last took one.
      expect(await exitedWithin(serve)).toBe(0);
      child.stdout.resume();
      await serve.closed();
      // What the pipe held, in order, every complete line JSON; no warning of stderr's (it would
      // have waited behind the same lines; stdout's own may have come, had keygate caught up
      // once before the pipe filled), and no `keygate stopped`: the log just ends.
      const lines = completeLogLines(serve.stdout());
      const times = lines.map((line) => line.time);
      expect(times).toEqual([...times].sort((a, b) => a - b));
      expect(lines.filter((line) => DROP_WARNING.test(line.msg))).toEqual([]);
      expect(lines.filter((line) => line.msg === 'keygate stopped')).toEqual([]);
      expect(serve.stderr()).toBe('');
    } finally {
      child.kill('SIGKILL');
    }
  });
});

/** Shaped as a key of the default format (`kg_live_…`), in the error's message. */
const LEAKED_KEY = `kg_live_${'A1b2'.repeat(10)}`;

/**
 * A module Node loads before keygate (`NODE_OPTIONS=--import`), standing for a bug: on
 * SIGUSR2 it throws from a timer (an uncaught exception) or rejects a promise no one awaits
 * (with a frozen TypeError: an error that takes no new message is still said, redacted).
 */
function bugOnSignal(dir: string, kind: 'throw' | 'reject'): string {
  const file = path.join(dir, `bug-${kind}.mjs`);
  const error = kind === 'throw' ? `new Error('boom ${LEAKED_KEY}')` : `Object.freeze(new TypeError('boom ${LEAKED_KEY}'))`;
  const bug = kind === 'throw' ? `setTimeout(() => { throw ${error}; })` : `void Promise.reject(${error})`;
  writeFileSync(file, `process.on('SIGUSR2', () => { ${bug}; });\n`);
  return file;
}

describe('keygate serve that meets an uncaught error', () => {
  const dir = tempDir('serve-crash');

  for (const [kind, origin, words, type] of [
    ['throw', 'uncaughtException', 'an uncaught exception', 'Error'],
    ['reject', 'unhandledRejection', 'an unhandled rejection', 'TypeError'],
  ] as const) {
    it(`says ${words} as one fatal JSON line with the error and exits 1, nothing on stderr`, async () => {
      const serve = startServe(profile(dir, kind), { NODE_OPTIONS: `--import=${pathToFileURL(bugOnSignal(dir, kind)).href}` });
      const { child } = serve;
      try {
        await serve.logged('keygate is serving');
        child.kill('SIGUSR2');
        expect(await serve.exited()).toBe(1);
        await serve.closed();
        const lines = logLines(serve.stdout());
        const fatal = lines.find((line) => line.level === 60);
        expect(fatal).toMatchObject({ origin, msg: `keygate stops on an unexpected error (${words}): boom kg_live_[REDACTED]`, err: { type, message: 'boom kg_live_[REDACTED]' } });
        expect((fatal?.err as { stack: string }).stack).toContain(`${type}: boom kg_live_[REDACTED]`);
        expect(serve.stdout()).not.toContain(LEAKED_KEY.slice('kg_live_'.length));
        expect(serve.stderr()).toBe('');
      } finally {
        child.kill('SIGKILL');
      }
    });
  }
});

describe("standard output's log once closed", () => {
  it('drops a line logged after it (in the moments before the exit) instead of throwing at the code that logs it', async () => {
    const script = `
      const { createLog, closeStandardOutput, droppedLogLines } = await import(${JSON.stringify(pathToFileURL(path.join(path.dirname(BIN), '..', 'dist', 'log.js')).href)});
      const log = createLog({ level: 'info' });
      log.info('before the close');
      await closeStandardOutput();
      log.info('after the close');
      process.stderr.write('dropped ' + droppedLogLines());`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect([code, stderr]).toEqual([0, 'dropped 1']);
    expect(stdout.trim().split('\n').map((line) => (JSON.parse(line) as LogLine).msg)).toEqual(['before the close']);
  });
});

describe('keygate serve that cannot start', () => {
  const dir = tempDir('serve-fail');

  it('with a port another process holds, logs why it failed as a JSON line, nothing on stderr, and makes no store: the port is tried before the SQLite file is made', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    // In a folder of its own, not there yet: nothing of the store (file, folder, lock) may be left.
    const folder = path.join(dir, 'port-taken-store');
    try {
      const r = await runCli(['serve', '--config', profile(dir, 'port-taken', { store: `sqlite:${path.join(folder, 'keygate.db')}`, admin: { listen: { port } } })], { env: { KEYGATE_ADMIN_TOKEN: '' } });
      expect([r.code, r.stderr]).toEqual([1, '']);
      expect(logLines(r.stdout).map(({ level, msg }) => [level, msg])).toEqual([
        [60, `keygate could not start: the admin cannot listen on 127.0.0.1:${port}: another process is using that port; change admin.listen.port in the profile (or, for a second process serving the same profile on this host, start it with --admin-port <port>)`],
      ]);
      expect(existsSync(folder)).toBe(false);
    } finally {
      taken.close();
    }
  });

  it('with a port another process holds, leaves a store that was there as it was: not opened, nothing beside it', async () => {
    const file = profile(dir, 'port-taken-existing');
    const store = path.join(dir, 'port-taken-existing.db');
    // Made and migrated by a command (which takes no lock): the store as an earlier start would leave it.
    expect((await runCli(['migrate', '--config', file])).code).toBe(0);
    const before = { bytes: readFileSync(store), mtimeMs: statSync(store).mtimeMs, beside: readdirSync(dir).filter((name) => name.startsWith('port-taken-existing.db')) };
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      const r = await runCli(['serve', '--config', file, '--port', String(port)]);
      expect([r.code, logLines(r.stdout).at(-1)?.msg]).toEqual([1, `keygate could not start: the gateway cannot listen on 127.0.0.1:${port}: another process is using that port; choose another port`]);
      expect({ bytes: readFileSync(store), mtimeMs: statSync(store).mtimeMs, beside: readdirSync(dir).filter((name) => name.startsWith('port-taken-existing.db')) }).toEqual(before);
    } finally {
      taken.close();
    }
  });

  it("refuses an upstream.url that names one of its own listeners (requests would come back to keygate, not reach the API), naming the field and the listener, exit code 2, before it opens anything", async () => {
    // A port free now: keygate's gateway would take it, and forward every request to itself.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const cases = [
      { name: 'upstream-is-gateway', fields: { upstream: { url: `http://localhost:${port}` }, listen: { port } }, problem: `upstream.url: http://localhost:${port}/ is keygate's own gateway (listen.port ${port}): requests would be forwarded to keygate itself, not to your API; give upstream.url the address your API listens on, or move the gateway to another port (listen.port, or --port)`, headline: "upstream.url is keygate's own gateway" },
      { name: 'upstream-is-admin', fields: { upstream: { url: `http://127.0.0.1:${port}/` }, admin: { listen: { port } } }, problem: `upstream.url: http://127.0.0.1:${port}/ is keygate's own admin API (admin.listen.port ${port}): requests would be forwarded to keygate itself, not to your API; give upstream.url the address your API listens on, or move the admin API to another port (admin.listen.port, or --admin-port)`, headline: "upstream.url is keygate's own admin API" },
    ];
    for (const { name, fields, problem, headline } of cases) {
      const file = profile(dir, name, fields);
      const serve = startServe(file);
      try {
        // Its first line: no migration applied, no listener opened.
        const first = JSON.parse(await serve.logged('"level"')) as LogLine;
        expect(first).toMatchObject({ level: 60, problems: [problem], msg: `keygate could not start: ${file}: cannot be served: ${headline}` });
        expect(await serve.exited()).toBe(2);
      } finally {
        serve.child.kill('SIGKILL');
      }
    }
  });

  it('says a profile it cannot use as one JSON line with its problems, exit code 2', async () => {
    const file = path.join(dir, 'typo.yaml');
    writeFileSync(file, 'upstream: {url: "http://127.0.0.1:9"}\nplans: {free: {apiAcess: false}}\n');
    const r = await runCli(['serve', '--config', file]);
    expect([r.code, r.stderr]).toEqual([2, '']);
    expect(logLines(r.stdout)).toEqual([
      // Named as every line of serve but request lines is (process, pid).
      { level: 60, time: expect.any(Number), name: 'keygate', process: expect.any(String), pid: expect.any(Number), problems: ['plans.free: unknown field "apiAcess" (did you mean "apiAccess"?)'], msg: `keygate could not start: ${file}: invalid configuration: plans.free: unknown field "apiAcess" (did you mean "apiAccess"?)` },
    ]);
  });
});
