/**
 * Standard output's log when its reader reads nothing: what standard error says about the
 * lines dropped, and when. Each case is a child process on the built dist/log.js whose
 * stdout pipe is not read until it has exited, so its log's queue fills as it would for a
 * stalled log shipper; the clock of its drop warnings is the test's own (createLog's
 * `dropWarningClock`), so a minute's cadence is seen without waiting a minute.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DROP_WARNING_MS } from './log.js';
import { completeLogLines, logLines, outputOf, type LogLine } from '../test/support/log-lines.js';

const LOG_JS = pathToFileURL(path.resolve(import.meta.dirname, '../dist/log.js')).href;
/** Bytes of padding in each line: 100 of them are more than a pipe (64 KB) and the queue below hold. */
const PAD_BYTES = 8_000;
/** log.bufferSize in the child. */
const BUFFER_BYTES = 65_536;
/** How long the child's close waits for a reader that takes nothing: it never will, so this only shortens the test. */
const CLOSE_MS = 200;

/** What a warning on standard error says, while keygate runs and as its log closes. */
const RUNNING = /^\d+ log line\(s\) dropped because standard output was not read: 65536 bytes of lines wait for it \(log\.bufferSize\); keygate_log_lines_dropped_total counts them$/;
const CLOSING = /^\d+ log line\(s\) dropped because standard output was not read, said as keygate's log closes: \d+ in all \(keygate_log_lines_dropped_total\), with \d+ bytes of lines waiting for it \(log\.bufferSize\)$/;

/**
 * Runs `body` in a child with `log` (createLog on standard output), `burst()` (logs 100
 * lines at once), `advance(ms)` (moves the drop warnings' clock on, running what falls due)
 * `logged` (lines logged so far) and `stages` (what it pushes there); then closes standard
 * output's log and says on its last stderr line `{"logged":…,"dropped":…,"stages":[…]}`
 * (`dropped`: droppedLogLines()). `readerGone`: its stdout is closed from the start.
 */
function runChild(options: string, body: string, { readerGone = false } = {}) {
  const script = `
    const { createLog, closeStandardOutput, droppedLogLines } = await import(${JSON.stringify(LOG_JS)});
    let now = 0;
    let due = [];
    const dropWarningClock = {
      now: () => now,
      after(ms, then) {
        const wait = { at: now + ms, then };
        due.push(wait);
        return () => { due = due.filter((other) => other !== wait); };
      },
    };
    const advance = (ms) => {
      now += ms;
      const ready = due.filter((wait) => wait.at <= now);
      due = due.filter((wait) => wait.at > now);
      for (const wait of ready) wait.then();
    };
    const log = createLog({ level: 'info', ${options} });
    let logged = 0;
    const stages = [];
    const burst = () => {
      for (let i = 0; i < 100; i++) {
        log.info({ pad: 'x'.repeat(${PAD_BYTES}) }, 'line');
        logged++;
      }
    };
    ${body}
    await closeStandardOutput(${CLOSE_MS});
    process.stderr.write(JSON.stringify({ logged, dropped: droppedLogLines(), stages }) + '\\n');`;
  const child: ChildProcessByStdio<null, Readable, Readable> = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Not read until the child has exited: its writes fill the pipe, then its log's queue.
  // `readerGone`: never read, the pipe closed at once (a log shipper that died): its writes fail.
  child.stdout.pause();
  if (readerGone) child.stdout.destroy();
  const output = outputOf(child);
  return {
    child,
    /** Its exit code, then everything it wrote: stdout's complete lines, stderr's warnings and its last line. */
    async ended() {
      const code = await output.exited;
      child.stdout.resume();
      await output.closed;
      const stderr = logLines(output.stderr());
      const { logged, dropped, stages } = stderr.at(-1) as unknown as { logged: number; dropped: number; stages: number[] };
      return { code, stdout: completeLogLines(output.stdout()), warnings: stderr.slice(0, -1), logged, dropped, stages };
    },
  };
}

describe("standard output's log with a reader that reads nothing", () => {
  it('says drops on stderr at the first, then once per DROP_WARNING_MS with the drops since: periods of drops, warnings that add up', async () => {
    const child = runChild(`bufferSize: ${BUFFER_BYTES}, dropWarningClock`, `
      burst();
      advance(${DROP_WARNING_MS - 1});
      burst();
      stages.push(droppedLogLines());
      advance(1);
      burst();
      stages.push(droppedLogLines());
      advance(${DROP_WARNING_MS});`);
    try {
      const { code, warnings, dropped, stages } = await child.ended();
      expect(code).toBe(0);
      // The first drop at once; the next warning a minute later (not a millisecond before), with
      // every drop since; the next a minute after that. Any later one is the last, as the log closes.
      expect(warnings.slice(0, 3).map((line) => RUNNING.test(line.msg))).toEqual([true, true, true]);
      for (const warning of warnings.slice(3)) expect(warning.msg).toMatch(CLOSING);
      expect(warnings[0]).toMatchObject({ level: 40, name: 'keygate', droppedLines: 1, droppedLinesTotal: 1, bufferSize: BUFFER_BYTES });
      expect(warnings.slice(1, 3).map((line) => line.droppedLinesTotal)).toEqual(stages);
      // Each total is the drops said so far: none said twice, none left out.
      let said = 0;
      for (const warning of warnings) {
        said += warning.droppedLines as number;
        expect(warning.droppedLinesTotal).toBe(said);
      }
      expect(said).toBe(dropped);
    } finally {
      child.child.kill('SIGKILL');
    }
  });

  for (const [before, options] of [
    ['none dropped before (log.bufferSize is 16 MB)', ''],
    // More than the pipe and the test's reader take before they are full: lines are still kept.
    ['others dropped before (log.bufferSize is 1 MB)', 'bufferSize: 1_048_576'],
  ] as const) {
    it(`counts as dropped the lines still kept when its close gives up on the reader, ${before}, and says them in the last warning: each line is on stdout or counted`, async () => {
      const child = runChild(options, 'burst(); burst();');
      try {
        const { code, stdout, warnings, logged, dropped } = await child.ended();
        expect(code).toBe(0);
        const last = warnings.at(-1) as LogLine;
        expect(last.msg).toMatch(CLOSING);
        expect(last.droppedLinesTotal).toBe(dropped);
        expect(warnings.reduce((sum, line) => sum + (line.droppedLines as number), 0)).toBe(dropped);
        // What the pipe held came out whole; a line cut short in it is among those counted.
        expect(stdout.every((line) => line.msg === 'line')).toBe(true);
        expect(stdout.length + dropped).toBe(logged);
      } finally {
        child.child.kill('SIGKILL');
      }
    });
  }
  it('counts and says the lines kept, and every line after, once its reader is gone (EPIPE): none lost unsaid', async () => {
    const child = runChild('', 'burst(); await new Promise((resolve) => setTimeout(resolve, 100)); burst();', { readerGone: true });
    try {
      const { code, warnings, logged, dropped } = await child.ended();
      expect(code).toBe(0);
      expect(dropped).toBe(logged);
      expect(warnings.length).toBeGreaterThan(0);
      expect(warnings.at(-1)?.msg).toMatch(CLOSING);
      expect(warnings.reduce((sum, line) => sum + (line.droppedLines as number), 0)).toBe(dropped);
    } finally {
      child.child.kill('SIGKILL');
    }
  });
});
