/**
 * An application that uses keygate as a library (createKeygate, or serve() in process)
 * while its stdout is a pipe nobody reads, or reads slowly: keygate's log holds none of
 * its requests, its `close()` resolves, and its process can then exit by itself, or with
 * `process.exit()`, at any time. A reader that is slow but alive loses no line. Each
 * application is a child process on the built dist/, as docs/library.md's examples are.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { createKeygate, parseConfigObject } from '../src/index.js';
import { DROP_WARNING_MS } from '../src/log.js';
import { tempDir } from './support/temp.js';
import { completeLogLines, longRequests, outputOf, type LogLine } from './support/log-lines.js';

const DIST = pathToFileURL(path.resolve(import.meta.dirname, '../dist/index.js')).href;
/** How long a line, a request or an exit is waited for before the test is taken as hung (a loaded host is slow). */
const WAIT_MS = 60_000;
/** Requests with a target of about 8 KB (LONG_PATH), in each of keygate's lines below: 200 of them are more than a pipe and a reader's buffer hold. */
const REQUESTS = 200;

/**
 * The application: a node:http server that asks `check` without a method (keygate answers
 * 400 and logs a warning with the target), or keygate's own serve() (a request line each).
 * On SIGTERM it stops as docs/library.md shows (`process.exit(code)` at once instead with
 * EXIT_AT_ONCE), saying on stderr what it does; then nothing ends it but its event loop.
 * LOG_BUFFER_SIZE sets log.bufferSize.
 */
const APP = `
import http from 'node:http';
import path from 'node:path';
import { createKeygate, parseConfigObject, serve } from ${JSON.stringify(DIST)};

const [mode, dir] = process.argv.slice(2);
const config = parseConfigObject({
  upstream: { url: 'http://127.0.0.1:9' },
  store: 'sqlite:' + path.join(dir, 'keygate.db'),
  listen: { host: '127.0.0.1', port: 0 },
  admin: { listen: { host: '127.0.0.1', port: 0 } },
  dashboard: { enabled: false },
  ...(process.env.LOG_BUFFER_SIZE ? { log: { bufferSize: Number(process.env.LOG_BUFFER_SIZE) } } : {}),
});
const loaded = { config, file: 'inline', dir };
let stop;
if (mode === 'serve') {
  const running = await serve(loaded);
  process.stderr.write('listening ' + running.gatewayUrl + '\\n');
  stop = () => running.close();
} else {
  const gate = await createKeygate(loaded);
  const server = http.createServer(async (req, res) => {
    const result = await gate.check({ url: req.url, headers: req.headers });
    res.writeHead(result.error.status, result.error.headers).end(result.error.body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.stderr.write('listening http://127.0.0.1:' + server.address().port + '\\n');
  stop = async () => {
    server.close();
    await gate.close();
  };
}
process.once('SIGTERM', async () => {
  if (process.env.EXIT_AT_ONCE) process.exit(Number(process.env.EXIT_AT_ONCE));
  process.stderr.write('closing\\n');
  await stop();
  process.stderr.write('closed\\n');
});
`;

function startApp(dir: string, mode: 'check' | 'serve', env: NodeJS.ProcessEnv = {}) {
  const script = path.join(dir, `app-${mode}-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(script, APP);
  const child: ChildProcessByStdio<null, Readable, Readable> = spawn(process.execPath, [script, mode, path.dirname(script)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  // Nothing read from stdout until a test says so.
  child.stdout.pause();
  const { stdout, stderr, exited, closed } = outputOf(child);
  /** The line of stderr that starts with `text`, once written. */
  const said = (text: string) =>
    new Promise<string>((resolve, reject) => {
      const deadline = Date.now() + WAIT_MS;
      const look = () => {
        const line = stderr().split('\n').find((l) => l.startsWith(text));
        if (line !== undefined) resolve(line);
        else if (Date.now() > deadline) reject(new Error(`no "${text}" on stderr within ${WAIT_MS / 1000} s:\n${stderr()}`));
        else setTimeout(look, 25);
      };
      look();
    });
  return {
    child,
    stdout,
    stderr,
    said,
    /** The exit code, or 'still running' if it has not exited within `ms`. */
    exited: (ms = WAIT_MS) => Promise.race([exited, new Promise<string>((resolve) => setTimeout(resolve, ms, 'still running').unref())]),
    closed: () => closed,
  };
}

const WARNING = 'library check was given a request without a method and url as strings: answered bad_request';

describe('keygate as a library with a stdout nobody reads', () => {
  const dir = tempDir('library-log-reader');

  for (const [mode, status] of [
    ['check', 400],
    ['serve', 401],
  ] as const) {
    it(`answers every request, and once ${mode === 'check' ? 'gate.close()' : "serve()'s close()"} resolves the process exits by itself, code 0`, async () => {
      const app = startApp(dir, mode);
      try {
        const url = (await app.said('listening ')).slice('listening '.length);
        expect(await longRequests(url, REQUESTS, WAIT_MS)).toEqual(Array.from({ length: REQUESTS }, () => status));
        app.child.kill('SIGTERM');
        // The lines kept are given up after a few seconds without a reader: close() resolves,
        // and nothing of keygate's is left to hold the event loop.
        await app.said('closed');
        expect(await app.exited()).toBe(0);
        app.child.stdout.resume();
        await app.closed();
        // What the pipe held came out whole and in order; the rest was given up.
        const lines = completeLogLines(app.stdout());
        const times = lines.map((line) => line.time);
        expect(times).toEqual([...times].sort((a, b) => a - b));
      } finally {
        app.child.kill('SIGKILL');
      }
    });
  }

  it('says dropped lines on stderr as they are dropped, and once close() resolves the process exits by itself, code 0', async () => {
    const app = startApp(dir, 'check', { LOG_BUFFER_SIZE: '65536' });
    try {
      const url = (await app.said('listening ')).slice('listening '.length);
      expect(await longRequests(url, REQUESTS, WAIT_MS)).toEqual(Array.from({ length: REQUESTS }, () => 400));
      // The first drop is said at once; the next would be DROP_WARNING_MS later, on a timer
      // that close() ends and that holds no process meanwhile.
      expect(JSON.parse(await app.said('{"level":40'))).toMatchObject({ name: 'keygate', droppedLines: 1, droppedLinesTotal: 1, bufferSize: 65_536 });
      app.child.kill('SIGTERM');
      await app.said('closed');
      // Held by that timer, it would exit only once the next warning was due.
      expect(await app.exited(DROP_WARNING_MS / 2)).toBe(0);
    } finally {
      app.child.kill('SIGKILL');
    }
  });

  it('says on stderr, before close() resolves, the lines dropped since its last warning there: the warnings add up to the last total', async () => {
    const app = startApp(dir, 'check', { LOG_BUFFER_SIZE: '65536' });
    try {
      const url = (await app.said('listening ')).slice('listening '.length);
      expect(await longRequests(url, REQUESTS, WAIT_MS)).toEqual(Array.from({ length: REQUESTS }, () => 400));
      expect(JSON.parse(await app.said('{"level":40'))).toMatchObject({ droppedLines: 1, droppedLinesTotal: 1 });
      // More dropped after it, within the minute: the next warning is not due yet.
      expect(await longRequests(url, REQUESTS, WAIT_MS)).toEqual(Array.from({ length: REQUESTS }, () => 400));
      app.child.kill('SIGTERM');
      await app.said('closed');
      expect(await app.exited()).toBe(0);
      // The application's own lines are text; keygate's warnings JSON, the last one before `closed`.
      const lines = app.stderr().split('\n');
      expect(lines.slice(-3)).toEqual([expect.stringMatching(/^\{"level":40,/), 'closed', '']);
      const warnings = lines.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as LogLine);
      const last = warnings.at(-1) as LogLine;
      expect(last.msg).toMatch(/^\d+ log line\(s\) dropped because standard output was not read, said as keygate's log closes: /);
      expect(warnings.reduce((sum, line) => sum + (line.droppedLines as number), 0)).toBe(last.droppedLinesTotal);
      // Of the 400 lines, the pipe and 64 KB held a few dozen at most.
      expect(last.droppedLinesTotal).toBeGreaterThan(REQUESTS);
    } finally {
      app.child.kill('SIGKILL');
    }
  });

  it('lets the application exit with process.exit() while keygate still keeps lines for the reader', async () => {
    const app = startApp(dir, 'check', { EXIT_AT_ONCE: '3' });
    try {
      const url = (await app.said('listening ')).slice('listening '.length);
      expect(await longRequests(url, REQUESTS, WAIT_MS)).toEqual(Array.from({ length: REQUESTS }, () => 400));
      app.child.kill('SIGTERM');
      // No exit hook of keygate's (pino's retried the writes for ever) holds it: the application's own code.
      expect(await app.exited()).toBe(3);
      expect(app.stderr()).toBe(`listening ${url}\n`);
    } finally {
      app.child.kill('SIGKILL');
    }
  });

  it('writes every line, in order, to a reader that is slow but alive, before close() resolves and the process exits', async () => {
    const app = startApp(dir, 'check');
    let pace: NodeJS.Timeout | undefined;
    try {
      const url = (await app.said('listening ')).slice('listening '.length);
      expect(await longRequests(url, REQUESTS, WAIT_MS)).toEqual(Array.from({ length: REQUESTS }, () => 400));
      app.child.kill('SIGTERM');
      await app.said('closing');
      // From now on the reader takes one chunk (at most 64 KB) every 400 ms: about 1.6 MB of
      // lines take it longer than keygate waits for a reader that takes none (5 s).
      pace = setInterval(() => {
        app.child.stdout.once('data', () => app.child.stdout.pause());
        app.child.stdout.resume();
      }, 400);
      expect(await app.exited()).toBe(0);
      clearInterval(pace);
      app.child.stdout.resume();
      await app.closed();
      expect(app.stderr()).toMatch(/closing\nclosed\n$/);
      const lines = completeLogLines(app.stdout());
      expect(lines.filter((line) => line.msg === WARNING)).toHaveLength(REQUESTS);
      const times = lines.map((line) => line.time);
      expect(times).toEqual([...times].sort((a, b) => a - b));
    } finally {
      clearInterval(pace);
      app.child.kill('SIGKILL');
    }
  });
});

describe("keygate as a library with the application's own logger", () => {
  const dir = tempDir('library-own-log');

  it('writes to it and leaves it open after close(): the application logs on', async () => {
    const written: string[] = [];
    let ended = false;
    const destination = { write: (line: string) => void written.push(line), end: () => (ended = true) };
    const log = pino({ level: 'info' }, destination);
    const config = parseConfigObject({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${path.join(dir, 'k.db')}` });
    const gate = await createKeygate({ config, file: 'inline', dir }, { log });
    // No method: answered 400, with a warning in the application's log.
    const result = await gate.check({ url: '/v1/x', headers: {} } as unknown as Parameters<typeof gate.check>[0]);
    expect(result).toMatchObject({ allowed: false, reason: 'bad_request' });
    await gate.close();
    log.info('after keygate closed');
    expect(ended).toBe(false);
    expect(written.map((line) => (JSON.parse(line) as LogLine).msg).slice(-2)).toEqual([WARNING, 'after keygate closed']);
  });
});
