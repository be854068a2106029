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
import { readdirSync, readFileSync, readlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import path from 'node:path';
import type { LoadedConfig } from './config/load.js';
import { upstreamAddress } from './config/servable.js';
import type { Log } from './log.js';

/** The profile's own upstream, started by keygate: watched while keygate serves, and started again when it exits. */
export interface SpawnedUpstream {
  /** Where it listens: upstream.url, with the port keygate chose where that says port 0. */
  url: string;
  /** Why it is not running, while it is down (it exited and is not back yet); undefined while it runs. */
  down(): string | undefined;
  /**
   * While it is down and will be started again: milliseconds until the next try (0 while
   * one is under way); undefined while it runs, and once it is no longer started again.
   */
  nextStartInMs(): number | undefined;
  /** Times its command was started again after it exited, whether it then came to listen or not (a try that found its port taken did not start it), for /metrics. */
  restarts(): number;
  /** From now on one that exits is not started again (keygate is stopping: the one running serves the drain). */
  stopRestarting(): void;
  /** Stops it and whatever it started, and starts it no more. */
  stop(): void;
}

/** How long a started command has to accept connections on its port. */
const LISTEN_WITHIN_MS = 15_000;
/** The wait before an upstream that exited is started again: doubled by each exit or failed start, up to RESTART_MAX_MS. */
const RESTART_FIRST_MS = 1_000;
const RESTART_MAX_MS = 30_000;
/** An upstream that ran this long before it exited is started again after RESTART_FIRST_MS, as if it had never exited. */
const STAYED_UP_MS = 60_000;

/** The wait before start `attempt` since the upstream last stayed up (1: the first): 1 s, 2 s, 4 s … 30 s. */
export function restartDelay(attempt: number): number {
  return Math.min(RESTART_MAX_MS, RESTART_FIRST_MS * 2 ** (attempt - 1));
}

/**
 * Starts the profile's own upstream (examples, demos) and waits until it accepts
 * connections. Its port must be free before: what then answers there is the child, not
 * another process (one a keygate killed at once left running is stopped first).
 *
 * If it exits later, the exit is logged (error), `down()` says so, and it is started again
 * after `restartDelay` (what it started is stopped first, and its port must be free again),
 * until `stopRestarting()` or `stop()`. A failed start at start-up rejects, as before; a
 * failed start again is logged and tried again later.
 */
export async function startUpstream(loaded: LoadedConfig, log: Log): Promise<SpawnedUpstream> {
  const spawnCommand = loaded.config.upstream.spawn as [string, ...string[]];
  const [command, ...args] = spawnCommand;
  // The schema requires upstream.url with upstream.spawn.
  const url = new URL(loaded.config.upstream.url as string);
  const { host } = upstreamAddress(url);
  // Port 0: keygate chooses (see startOnChosenPort); else the profile's.
  const choosesPort = url.port === '0';
  let { port } = upstreamAddress(url);
  const recordFile = upstreamRecordFile(loaded);
  let left = findLeftUpstream(recordFile);
  if (left && !left.inUse) {
    const { pid, command: leftCommand, keygate } = left;
    if (await stopLeftUpstream(left)) {
      log.warn({ pid, command: leftCommand }, `upstream.spawn: stopped pid ${pid} ("${leftCommand}"), the upstream a keygate (pid ${keygate}) that ended without stopping it left running`);
      left = undefined;
    }
  }
  const portTaken = () => `upstream.spawn: port ${url.hostname}:${port} is already in use by another process`;
  if (!choosesPort && (await canConnect(host, port, UPSTREAM_PROBE_MS))) {
    const whose =
      left === undefined
        ? ''
        : left.inUse
        ? ` (pid ${left.pid}, "${left.command}": the upstream of the keygate running as pid ${left.keygate})`
        : ` (pid ${left.pid}, "${left.command}": left running by a keygate that ended, pid ${left.keygate}; it did not stop on SIGTERM or SIGKILL)`;
    throw new Error(`${portTaken()}${whose}; stop it or change upstream.url`);
  }
  // Logged as the profile says it; never its environment.
  const commandLine = spawnCommand.join(' ');
  const what = `upstream.spawn: "${commandLine}"`;
  // Told its port as platforms tell an app (PORT): upstream.url is then the one place that says it.
  const env = { ...process.env, PORT: String(port) };

  /** The process started last (running, starting, or exited), and its process group. */
  let child: ChildProcess | undefined;
  let group: Group | undefined;
  let restarting = true;
  let stopped = false;
  /** When the one running began to listen. */
  let upSince = 0;
  /** Starts since it last stayed up STAYED_UP_MS, this one included. */
  let attempt = 0;
  let restartTimer: NodeJS.Timeout | undefined;
  /** When restartTimer fires, while it is set. */
  let nextStartAt: number | undefined;
  /** Since when it is down, and why, while it is. */
  let outage: { since: number; why: string } | undefined;
  /** Starts of its command again so far (not tries that found its port taken). */
  let restarts = 0;

  /** Starts the command and waits until its port accepts connections: undefined once it does, else why it did not. */
  const launch = async (): Promise<string | undefined> => {
    // In a process group of its own: a terminal's Ctrl-C (sent to the whole group) reaches
    // keygate alone, which stops it once its own requests are answered (after the readiness
    // delay and the drain), not while keygate still forwards to it.
    const started = spawn(command === 'node' ? process.execPath : command, args, { cwd: loaded.dir, env, stdio: ['ignore', 'inherit', 'inherit'], detached: true });
    child = started;
    group = started.pid === undefined ? undefined : groupLedBy(started.pid);
    let listening = false;
    /** Why the command stopped before it listened, once it has. */
    let ended: string | undefined;
    // A command that cannot be run (not found, not executable) is an 'error', not an exit.
    started.once('error', (error: NodeJS.ErrnoException) => {
      ended = error.code === 'ENOENT' ? `could not be started: ${command} not found` : `could not be started: ${error.message}`;
    });
    started.once('exit', (code, signal) => {
      if (listening) exited(started, code, signal);
      else ended ??= `exited (${signal ?? `code ${code}`}) before listening on ${url.host}`;
    });
    const deadline = Date.now() + LISTEN_WITHIN_MS;
    while (Date.now() < deadline && ended === undefined && !stopped) {
      // On a port keygate chose, what answers must be the command's (another process may
      // have taken the port first, and the command fail on it a moment later).
      if ((await canConnect(host, port)) && ended === undefined && (!choosesPort || group === undefined || listensInGroup(group, port))) {
        listening = true;
        upSince = Date.now();
        // SIGKILL leaves it running: the next start finds it by this record.
        if (started.pid !== undefined) recordUpstream(recordFile, started.pid);
        return undefined;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return ended ?? `did not start listening on ${url.host} within ${LISTEN_WITHIN_MS / 1000} s`;
  };

  /** Starts it again after `restartDelay`, and says so in `down()`; `why`: what happened last. */
  const restartLater = (why: string) => {
    attempt++;
    const delay = restartDelay(attempt);
    outage = { since: outage?.since ?? Date.now(), why };
    nextStartAt = Date.now() + delay;
    restartTimer = setTimeout(() => void restart(), delay);
    return delay;
  };

  /** Its exit after it listened: logged, and followed by a new start unless keygate is stopping. */
  const exited = (gone: ChildProcess, code: number | null, signal: NodeJS.Signals | null) => {
    forgetUpstream(recordFile);
    if (stopped) return;
    const how = signal ?? `code ${code}`;
    // `upstreamPid`: `pid` is keygate's own, on every line of `keygate serve` but request lines.
    const fields = { command: commandLine, upstreamPid: gone.pid, code, signal };
    if (!restarting) {
      outage = { since: Date.now(), why: `it exited (${how}) while keygate was stopping` };
      log.warn(fields, `${what} (pid ${gone.pid}) exited (${how}) while keygate is stopping: not started again`);
      return;
    }
    if (Date.now() - upSince >= STAYED_UP_MS) attempt = 0;
    const delay = restartLater(`it exited (${how})`);
    log.error(
      { ...fields, restartInMs: delay },
      `${what} (pid ${gone.pid}) exited (${how}): requests are answered service_unavailable and /health/ready answers 503 until it is back; starting it again in ${delay / 1000} s`,
    );
  };

  const restart = async () => {
    restartTimer = undefined;
    nextStartAt = undefined;
    const previous = child?.pid;
    // What it started (`sh -c`, `npm start`) may still run in its group, holding the port.
    if (group !== undefined) await stopGroup(group);
    if (!restarting) return;
    let failure: string | undefined;
    if (await canConnect(host, port, UPSTREAM_PROBE_MS)) failure = `${portTaken()}; stop it or change upstream.url`;
    else if (restarting) {
      log.warn({ command: commandLine, attempt }, `${what}: starting it again (attempt ${attempt})`);
      restarts++;
      const notListening = await launch();
      if (notListening !== undefined) failure = `${what} ${notListening}`;
    }
    if (!restarting) return;
    if (failure === undefined) {
      outage = undefined;
      log.info({ command: commandLine, upstreamPid: child?.pid }, `${what} is back (pid ${child?.pid}), listening on ${url.host}`);
      return;
    }
    // One that started but did not listen in time is stopped before the next try.
    if (child !== undefined && group !== undefined && child.pid !== previous) stopUpstream(child, group);
    const delay = restartLater(failure);
    log.error({ command: commandLine, attempt, restartInMs: delay }, `${failure}; starting it again in ${delay / 1000} s`);
  };

  const stopRestarting = () => {
    restarting = false;
    clearTimeout(restartTimer);
  };
  const stop = () => {
    stopRestarting();
    stopped = true;
    process.off('exit', stop);
    if (child !== undefined && group !== undefined) stopUpstream(child, group);
    forgetUpstream(recordFile);
  };
  // However keygate ends (at once, on a third signal; a failed start), its upstream goes with it.
  process.once('exit', stop);
  let notListening: string | undefined;
  for (let chosen = 1; ; chosen++) {
    if (choosesPort) {
      port = await freePort(host);
      url.port = String(port);
      env.PORT = String(port);
    }
    notListening = await launch();
    // The port keygate chose was free a moment before; another process may have taken it
    // before the command listened on it (which then fails, EADDRINUSE): another port then.
    if (notListening === undefined || !choosesPort || chosen === CHOSEN_PORT_TRIES || !(await canConnect(host, port, UPSTREAM_PROBE_MS))) break;
    log.warn({ command: commandLine, port }, `${what}: port ${port}, free when keygate chose it, was taken by another process before the command listened on it (${notListening}); choosing another`);
    if (group !== undefined) await stopGroup(group);
  }
  if (notListening !== undefined) {
    stop();
    throw new Error(`${what} ${notListening}`);
  }
  return {
    url: url.origin,
    down: () => (outage === undefined ? undefined : `the upstream keygate started (upstream.spawn) is down since ${new Date(outage.since).toISOString()}: ${outage.why}`),
    nextStartInMs: () => (outage === undefined || !restarting ? undefined : nextStartAt === undefined ? 0 : Math.max(0, nextStartAt - Date.now())),
    restarts: () => restarts,
    stopRestarting,
    stop,
  };
}

/**
 * Stops a spawned upstream and whatever it started (`sh -c ...`, `npm start`): SIGTERM to
 * its process group, of which it is the leader (spawned detached).
 */
function stopUpstream(child: ChildProcess, group: Group): void {
  // Its number went to another process since: the group has ended (see `reused`).
  if (reused(group)) return;
  try {
    // Also when the child itself has exited: what it started may still run in its group.
    process.kill(-group.pgrp, 'SIGTERM');
  } catch {
    // The group is gone already: the child itself, if it is still there.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }
}

/** How many ports keygate chooses for an upstream.url with port 0 before it gives up (each taken before the command listened). */
const CHOSEN_PORT_TRIES = 3;

/** A port of `host` free now: the system's choice for a listener on port 0, closed again. */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
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

/** How long an upstream's group (one left running, what an exited one started) has to end after SIGTERM before it is sent SIGKILL. */
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
  /** When it started, in clock ticks after boot (as its record says, and /proc agreed). */
  started: string;
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
  return { pid, started, command: cmdline.split('\0').join(' '), keygate, inUse: stat.ppid === keygate };
}

/**
 * Stops a left upstream and what it started (its process group): SIGTERM, then SIGKILL if
 * the group has not ended within STOP_GRACE_MS. Answers whether it ended.
 */
export function stopLeftUpstream(left: LeftUpstream): Promise<boolean> {
  return stopGroup({ pgrp: left.pid, started: left.started });
}

/** Stops a process group: SIGTERM, then SIGKILL if it has not ended within STOP_GRACE_MS. Answers whether it ended. */
export async function stopGroup(group: Group): Promise<boolean> {
  signalGroup(group, 'SIGTERM');
  if (await groupEnds(group, STOP_GRACE_MS)) return true;
  signalGroup(group, 'SIGKILL');
  return groupEnds(group, KILL_GRACE_MS);
}

/**
 * A process group keygate started (its upstream, spawned detached, leads one): the
 * leader's pid, which is the group's id, and when the leader started (clock ticks after
 * boot, from /proc; undefined without it).
 */
export interface Group {
  pgrp: number;
  started: string | undefined;
}

/** The group `pid` leads, read while `pid` is known to be that process (just spawned). */
export function groupLedBy(pid: number): Group {
  return { pgrp: pid, started: readStat(pid)?.started };
}

/**
 * Whether the group has ended and its number now belongs to another process. Linux gives
 * no new process a number still in use as a group's id, so while any process of the group
 * runs, its leader's number is the leader's or no one's; a process with that number and
 * another start time means the group is gone, and a signal to the number would reach the
 * group that process leads (on a busy host numbers come round again within minutes:
 * pid_max is often 32,768).
 */
function reused(group: Group): boolean {
  if (group.started === undefined) return false;
  const stat = readStat(group.pgrp);
  return stat !== undefined && stat.started !== group.started;
}

function signalGroup(group: Group, signal: NodeJS.Signals): void {
  if (reused(group)) return;
  try {
    process.kill(-group.pgrp, signal);
  } catch {
    // The group has ended.
  }
}

async function groupEnds(group: Group, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (!reused(group) && groupRuns(group.pgrp)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/**
 * Whether the socket listening on `port` belongs to a process of the group, as Linux's
 * /proc shows sockets (their inodes, in /proc/net/tcp and tcp6) and each process's open
 * files; true where there is no /proc to ask.
 */
export function listensInGroup(group: Group, port: number): boolean {
  const inodes = new Set<string>();
  let tables = 0;
  try {
    for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
      let text: string;
      try {
        text = readFileSync(table, 'utf8');
        tables++;
      } catch {
        continue;
      }
      for (const line of text.split('\n').slice(1)) {
        // Fields: sl, local_address, rem_address, st (0A: LISTEN), ..., inode (the tenth).
        const fields = line.trim().split(/\s+/);
        const local = fields[1];
        if (local === undefined || fields[3] !== '0A' || Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) !== port) continue;
        inodes.add(`socket:[${fields[9]}]`);
      }
    }
    // No /proc: what answers is taken to be the command, as on a port the profile gives.
    if (tables === 0) return true;
    if (inodes.size === 0) return false;
    for (const entry of readdirSync('/proc')) {
      const stat = /^\d+$/.test(entry) ? readStat(Number(entry)) : undefined;
      if (stat === undefined || stat.pgrp !== group.pgrp) continue;
      let fds: string[];
      try {
        fds = readdirSync(`/proc/${entry}/fd`);
      } catch {
        continue;
      }
      for (const fd of fds) {
        try {
          if (inodes.has(readlinkSync(`/proc/${entry}/fd/${fd}`))) return true;
        } catch {
          // Closed meanwhile.
        }
      }
    }
    return false;
  } catch {
    // No /proc: what answers is taken to be the command, as on a port the profile gives.
    return true;
  }
}

/** Whether a process of the group still runs. */
function groupRuns(pgrp: number): boolean {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    // No /proc: whether a signal would reach any of its processes (a zombie's too).
    try {
      process.kill(-pgrp, 0);
      return true;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  return entries.some((entry) => {
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
