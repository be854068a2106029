/** Runs the built `keygate` command (bin/keygate.js → dist/) as a user would. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

export const BIN = path.resolve(import.meta.dirname, '../../bin/keygate.js');

/**
 * How long a command, or a line `keygate serve` should write, is waited for before it is
 * taken as hung: a second or so on a quiet host, but a CLI run took 12 s on a loaded one.
 */
const CLI_TIMEOUT_MS = 120_000;
const LOGGED_TIMEOUT_MS = 60_000;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `uid`/`gid`: run as that user (a test run as root trying what another user may not do). */
export function runCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; uid?: number; gid?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const as = options.uid === undefined ? {} : { uid: options.uid, gid: options.gid ?? options.uid };
    const child = execFile(process.execPath, [BIN, ...args], { cwd: options.cwd, env: { ...process.env, ...options.env }, timeout: CLI_TIMEOUT_MS, ...as }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(options.input ?? '');
  });
}

/** A `keygate serve` started as a user would, with what it writes (stdout and stderr) kept. */
export interface ServeProcess {
  child: ChildProcess;
  /** Everything written so far. */
  output(): string;
  /** Waits (up to 60 s) for a line containing `text` after the first `skip` of them, and answers it. */
  logged(text: string, skip?: number): Promise<string>;
  /** The exit code, once it has exited (null if a signal ended it). */
  exited(): Promise<number | null>;
}

export function spawnServe(configFile: string, env?: NodeJS.ProcessEnv, args: string[] = []): ServeProcess {
  const child = spawn(process.execPath, [BIN, 'serve', '--config', configFile, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env: { ...process.env, ...env } } : {}) });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return {
    child,
    output: () => output,
    logged: (text, skip = 0) =>
      new Promise<string>((resolve, reject) => {
        const deadline = Date.now() + LOGGED_TIMEOUT_MS;
        const look = () => {
          const line = output.split('\n').filter((l) => l.includes(text))[skip];
          if (line) resolve(line);
          else if (Date.now() > deadline) reject(new Error(`no "${text}" within ${LOGGED_TIMEOUT_MS / 1000} s:\n${output}`));
          else setTimeout(look, 25);
        };
        look();
      }),
    exited: () => exit,
  };
}

/** What `keygate serve` says when it cannot start: one JSON log line on stdout, level 60 (fatal). */
export interface StartFailure {
  code: number;
  /** `keygate could not start: <why>`. */
  msg: string;
  /** A bad profile's problems, one line each. */
  problems?: string[];
  /** What came on stderr: nothing. */
  stderr: string;
}

/** The last line of a `keygate serve` that could not start, read as its log line (it must be JSON, at level 60). */
export function startFailure(r: CliResult): StartFailure {
  const last = r.stdout.trimEnd().split('\n').at(-1) ?? '';
  const line = JSON.parse(last) as { level: number; msg: string; problems?: string[] };
  if (line.level !== 60) throw new Error(`not a fatal log line: ${last}`);
  return { code: r.code, msg: line.msg, ...(line.problems ? { problems: line.problems } : {}), stderr: r.stderr };
}
