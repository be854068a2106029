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

export function runCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { cwd: options.cwd, env: { ...process.env, ...options.env }, timeout: CLI_TIMEOUT_MS }, (error, stdout, stderr) => {
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
