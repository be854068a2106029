/**
 * Reading keygate's JSON log lines from a child's stdout, and the load the log-reader
 * tests put on it: requests with a long target, so that each line is about 8 KB and a
 * few hundred are more than a pipe and a reader's buffer hold.
 */

import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';

export interface LogLine {
  level: number;
  time: number;
  msg: string;
  [field: string]: unknown;
}

/** Every line of `text` as a log line: each must be JSON. */
export function logLines(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      try {
        return JSON.parse(line) as LogLine;
      } catch {
        throw new Error(`not a JSON log line: ${line.slice(0, 200)}`);
      }
    });
}

/** The complete lines of `text` (a last one cut short by an exit left out), each a log line. */
export function completeLogLines(text: string): LogLine[] {
  return logLines(text.slice(0, text.lastIndexOf('\n') + 1));
}

/** A target of about 8 KB, logged whole in each request's line. */
export const LONG_PATH = '/seg'.repeat(2_000);

/**
 * `count` requests to `url` + LONG_PATH, 20 at a time; answers their statuses. Each is
 * given up after `timeoutMs`: a server held by its log fails the test instead of hanging it.
 */
export async function longRequests(url: string, count: number, timeoutMs: number): Promise<number[]> {
  const statuses: number[] = [];
  let sent = 0;
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (sent < count) {
        sent++;
        const response = await fetch(`${url}${LONG_PATH}`, { signal: AbortSignal.timeout(timeoutMs) });
        await response.arrayBuffer();
        statuses.push(response.status);
      }
    }),
  );
  return statuses;
}

/** What a child process wrote so far, and when it exited (its code) and closed (its pipes drained too). */
export function outputOf(child: ChildProcessByStdio<null, Readable, Readable>): { stdout: () => string; stderr: () => string; exited: Promise<number | null>; closed: Promise<void> } {
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return {
    stdout: () => stdout,
    stderr: () => stderr,
    exited: new Promise<number | null>((resolve) => child.once('exit', resolve)),
    closed: new Promise<void>((resolve) => child.once('close', () => resolve())),
  };
}
