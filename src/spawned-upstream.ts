/**
 * The upstream `keygate serve` starts (`upstream.spawn`): started once its port is free,
 * waited for until it listens, and stopped with keygate.
 *
 * While it runs it is recorded in a small file beside the profile
 * (`<profile>.upstream.pid`). It runs detached, in a process group of its own, so a
 * keygate killed at once (SIGKILL, a crash) leaves it running on the upstream's port; the
 * next start finds it by this record and stops it rather than forward to it (older code,
 * older settings). A process is stopped only when it surely is that upstream: Linux's
 * /proc shows the recorded pid, started at the recorded moment, with the recorded command
 * line, leading its own group, and no longer the child of the keygate that started it (a
 * keygate still serving keeps its upstream). Where there is no /proc, nothing is recorded
 * and nothing is stopped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import type { LoadedConfig } from './config/load.js';
import type { Log } from './log.js';

/** The profile's own upstream, started by keygate and listening. */
export interface SpawnedUpstream {
  /** Stops it and whatever it started. */
  stop(): void;
}

/**
 * Starts the profile's own upstream (examples, demos) and waits until it accepts
 * connections. Its port must be free before: what then answers there is the child, not
 * another process (one a keygate killed at once left running is stopped first).
 */
export async function startUpstream(loaded: LoadedConfig, log: Log): Promise<SpawnedUpstream> {
  const [command, ...args] = loaded.config.upstream.spawn as [string, ...string[]];
  const url = new URL(loaded.config.upstream.url);
  const { host, port } = upstreamAddress(url);
  const recordFile = upstreamRecordFile(loaded);
  let left = findLeftUpstream(recordFile);
  if (left && !left.inUse) {
    const { pid, command: leftCommand, keygate } = left;
    if (await stopLeftUpstream(left)) {
      log.warn({ pid, command: leftCommand }, `upstream.spawn: stopped pid ${pid} ("${leftCommand}"), the upstream a keygate (pid ${keygate}) that ended without stopping it left running`);
      left = undefined;
    }
  }
  if (await canConnect(host, port, UPSTREAM_PROBE_MS)) {
    const whose =
      left === undefined
        ? ''
        : left.inUse
        ? ` (pid ${left.pid}, "${left.command}": the upstream of the keygate running as pid ${left.keygate})`
        : ` (pid ${left.pid}, "${left.command}": left running by a keygate that ended, pid ${left.keygate}; it did not stop on SIGTERM or SIGKILL)`;
    throw new Error(`upstream.spawn: port ${url.hostname}:${port} is already in use by another process${whose}; stop it or change upstream.url`);
  }
  // Told its port as platforms tell an app (PORT): upstream.url is then the one place that says it.
  const env = { ...process.env, PORT: String(port) };
  // In a process group of its own: a terminal's Ctrl-C (sent to the whole group) reaches
  // keygate alone, which stops it once its own requests are answered (after the readiness
  // delay and the drain), not while keygate still forwards to it.
  const child = spawn(command === 'node' ? process.execPath : command, args, { cwd: loaded.dir, env, stdio: ['ignore', 'inherit', 'inherit'], detached: true });
  const stop = () => {
    stopUpstream(child);
    forgetUpstream(recordFile);
  };
  // However keygate ends (at once, on a third signal; a failed start), its upstream goes with it.
  process.once('exit', stop);
  child.once('exit', () => process.off('exit', stop));
  const deadline = Date.now() + 15_000;
  const what = `upstream.spawn: "${loaded.config.upstream.spawn?.join(' ')}"`;
  /** Why the command stopped before it listened, once it has. */
  let ended: string | undefined;
  // A command that cannot be run (not found, not executable) is an 'error', not an exit.
  child.once('error', (error: NodeJS.ErrnoException) => {
    ended = error.code === 'ENOENT' ? `could not be started: ${command} not found` : `could not be started: ${error.message}`;
  });
  child.once('exit', (code, signal) => {
    ended ??= `exited (${signal ?? `code ${code}`}) before listening on ${url.host}`;
  });
  while (Date.now() < deadline && ended === undefined) {
    if (await canConnect(host, port)) {
      // SIGKILL leaves it running: the next start finds it by this record.
      if (child.pid !== undefined) recordUpstream(recordFile, child.pid);
      return { stop };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (ended !== undefined) throw new Error(`${what} ${ended}`);
  stop();
  throw new Error(`${what} did not start listening on ${url.host} within 15 s`);
}

/**
 * Stops a spawned upstream and whatever it started (`sh -c ...`, `npm start`): SIGTERM to
 * its process group, of which it is the leader (spawned detached).
 */
function stopUpstream(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    // Also when the child itself has exited: what it started may still run in its group.
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    // The group is gone already: the child itself, if it is still there.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }
}

/** Where an upstream URL points, as `connect` takes it. */
export function upstreamAddress(url: URL): { host: string; port: number } {
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) };
}

/**
 * Whether something accepts TCP connections at host:port; with `timeoutMs`, false when
 * nothing answers in that time. The socket does not keep the process alive.
 */
export function canConnect(host: string, port: number, timeoutMs?: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.unref();
    const done = (connected: boolean) => {
      socket.destroy();
      resolve(connected);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    if (timeoutMs !== undefined) socket.setTimeout(timeoutMs, () => done(false));
  });
}

/** How long the start-up look at the upstream waits for a connection. */
export const UPSTREAM_PROBE_MS = 5_000;

/** How long a left upstream's group has to end after SIGTERM before it is sent SIGKILL. */
const STOP_GRACE_MS = 5_000;
/** How long it has to end after SIGKILL. */
const KILL_GRACE_MS = 2_000;

interface UpstreamRecord {
  /** The keygate that started it. */
  keygate: number;
  pid: number;
  /** When it started, in clock ticks after boot: a pid given to another process later is not it. */
  started: string;
  /** Its command line as /proc showed it once it listened, the arguments separated by NUL. */
  cmdline: string;
}

/** An upstream a keygate started for this profile, still running. */
export interface LeftUpstream {
  pid: number;
  /** Its command line, the arguments separated by spaces. */
  command: string;
  /** The keygate that started it. */
  keygate: number;
  /** Whether that keygate still runs, its parent: then it is not left behind, but in use. */
  inUse: boolean;
}

export function upstreamRecordFile(loaded: LoadedConfig): string {
  return path.join(loaded.dir, `${path.basename(loaded.file)}.upstream.pid`);
}

/** Records the upstream this keygate started, once it listens. */
export function recordUpstream(recordFile: string, pid: number): void {
  const stat = readStat(pid);
  const cmdline = readCmdline(pid);
  if (stat === undefined || cmdline === undefined) return;
  const record: UpstreamRecord = { keygate: process.pid, pid, started: stat.started, cmdline };
  try {
    writeFileSync(recordFile, `${JSON.stringify(record)}\n`);
  } catch {
    // A folder keygate may not write to: a next start after a SIGKILL then refuses the port it holds.
  }
}

/** Drops the record of an upstream this keygate stopped. */
export function forgetUpstream(recordFile: string): void {
  try {
    unlinkSync(recordFile);
  } catch {
    // Never written, or gone already.
  }
}

/** The upstream the record names, if that very process still runs. */
export function findLeftUpstream(recordFile: string): LeftUpstream | undefined {
  let record: Partial<UpstreamRecord>;
  try {
    record = JSON.parse(readFileSync(recordFile, 'utf8')) as Partial<UpstreamRecord>;
  } catch {
    return undefined;
  }
  const { keygate, pid, started, cmdline } = record;
  if (typeof pid !== 'number' || typeof keygate !== 'number' || typeof cmdline !== 'string' || pid <= 1) return undefined;
  const stat = readStat(pid);
  if (stat === undefined || !runs(pid, stat) || stat.pgrp !== pid || stat.started !== started || readCmdline(pid) !== cmdline) return undefined;
  return { pid, command: cmdline.split('\0').join(' '), keygate, inUse: stat.ppid === keygate };
}

/**
 * Stops a left upstream and what it started (its process group): SIGTERM, then SIGKILL if
 * the group has not ended within STOP_GRACE_MS. Answers whether it ended.
 */
export async function stopLeftUpstream(left: LeftUpstream): Promise<boolean> {
  signalGroup(left.pid, 'SIGTERM');
  if (await groupEnds(left.pid, STOP_GRACE_MS)) return true;
  signalGroup(left.pid, 'SIGKILL');
  return groupEnds(left.pid, KILL_GRACE_MS);
}

function signalGroup(pgrp: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgrp, signal);
  } catch {
    // The group has ended.
  }
}

async function groupEnds(pgrp: number, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (groupRuns(pgrp)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/** Whether a process of the group still runs. */
function groupRuns(pgrp: number): boolean {
  return readdirSync('/proc').some((entry) => {
    const stat = /^\d+$/.test(entry) ? readStat(Number(entry)) : undefined;
    return stat !== undefined && stat.pgrp === pgrp && runs(Number(entry), stat);
  });
}

/**
 * Whether a process still runs, and so may still hold its sockets. One that has ended but
 * was not reaped (a zombie) does not; but the first thread to end, the main one, shows as
 * a zombie while the others are still ending (Node's have a dozen), and the process's
 * files, its listening socket among them, close only when the last one has.
 */
function runs(pid: number, stat: ProcStat): boolean {
  if (stat.state !== 'Z') return true;
  try {
    return readdirSync(`/proc/${pid}/task`).length > 1;
  } catch {
    return false;
  }
}

interface ProcStat {
  state: string;
  ppid: number;
  pgrp: number;
  started: string;
}

/** /proc/<pid>/stat's fields that say which process it is, or undefined (no such process, or no /proc). */
function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name, in parentheses, may hold spaces and parentheses: the fields follow its last ')'.
  const [state = '', ppid, pgrp, ...rest] = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // starttime is the 22nd field; rest begins at the 6th.
  return { state, ppid: Number(ppid), pgrp: Number(pgrp), started: rest[16] ?? '' };
}

function readCmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0$/, '');
  } catch {
    return undefined;
  }
}
