/**
 * What the benchmark's processes share: the upstream's answer, the undici pool options
 * keygate uses (so the bare proxy is built the same way), the profiles of the keygate
 * cases, the small IPC protocol between the runner and its child processes, and how a
 * script that measures one thing (cpu.js, syscalls.js) checks its options.
 *
 * Every child process is a server that stops by itself: when the runner says "stop",
 * when the runner goes away (IPC disconnect), or after MAX_LIFETIME_MS at the latest.
 */
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));

/**
 * No child outlives this, whatever happens to the runner. bench/instructions.js, whose
 * children run under valgrind, raises it (KEYGATE_BENCH_LIFETIME_MS).
 */
export const MAX_LIFETIME_MS = Number(process.env.KEYGATE_BENCH_LIFETIME_MS) > 0 ? Number(process.env.KEYGATE_BENCH_LIFETIME_MS) : 10 * 60_000;

/** The one request every case sends (same path, same header, through every hop). */
export const REQUEST_PATH = '/v1/data';

/** The upstream's small JSON answer (≈80 bytes). */
export const UPSTREAM_BODY = JSON.stringify({ data: [{ id: 'prj_1', name: 'example.com', position: 1 }] });

/**
 * The undici pool options keygate's proxy uses (src/gateway/proxy.ts) with the profile
 * defaults for upstream.connections (128) and upstream.timeout (30 s).
 */
export const UPSTREAM_CONNECTIONS = 128;
export const UPSTREAM_TIMEOUT_MS = 30_000;
export const UNDICI_OPTIONS = {
  connections: UPSTREAM_CONNECTIONS,
  pipelining: 1,
  keepAliveTimeout: 60_000,
  headersTimeout: UPSTREAM_TIMEOUT_MS,
  bodyTimeout: UPSTREAM_TIMEOUT_MS,
};

/** Limits high enough never to trigger during a run, and a meter that never runs out. */
export const HIGH_LIMITS = [
  { limit: 10_000_000, window: '1s' },
  { limit: 100_000_000, window: '1h' },
];
export const HUGE_METER = 1e14;

/**
 * The keygate profile of a case. `limits: true` adds the two windows and a per-request
 * cost on every request (cases d and e).
 */
export function keygateProfile({ upstreamUrl, store, counters, limits }) {
  return {
    name: 'bench',
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { url: upstreamUrl, connections: UPSTREAM_CONNECTIONS, timeout: UPSTREAM_TIMEOUT_MS },
    store,
    counters,
    dashboard: { enabled: false },
    // Per-request log lines off: the bench measures the gateway, not pino's output.
    log: { level: 'warn', requests: false },
    auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }] },
    plans: limits
      ? { bench: { rateLimits: HIGH_LIMITS, meters: { units: { limit: HUGE_METER } } } }
      : { bench: {} },
    routes: limits ? [{ path: '/*', cost: { meter: 'units', perRequest: 1 } }] : [{ path: '/*' }],
  };
}

/**
 * Child side of the protocol: report `ready` (with whatever the runner needs), stop on
 * request or when the runner disappears, never outlive MAX_LIFETIME_MS.
 */
export function serveUntilStopped(start) {
  let stop = async () => undefined;
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    try {
      await stop();
    } finally {
      // A normal exit, so --cpu-prof can write its profile.
      process.exit(0);
    }
  };
  setTimeout(shutdown, MAX_LIFETIME_MS).unref();
  process.on('disconnect', shutdown);
  process.on('SIGTERM', shutdown);
  process.on('message', (message) => {
    if (message?.type === 'stop') void shutdown();
  });
  start().then(
    (ready) => {
      stop = ready.stop;
      process.send?.({ type: 'ready', ...ready.info });
    },
    (error) => {
      process.send?.({ type: 'error', message: error instanceof Error ? error.message : String(error) });
      setTimeout(() => process.exit(1), 100);
    },
  );
}

/**
 * Parent side of the protocol: forks a bench server (`script` in bench/), waits for its
 * `ready`; `stop()` ends it (SIGKILL after 15 s), `request(type)` asks it something.
 * `children`, if given, holds it while it runs. `execPath` runs it under another
 * program (valgrind), which then needs Node's path first in `execArgv`.
 */
export async function startChild(script, args, { name = script, execArgv = [], execPath, env, startTimeoutMs = 60_000, children, discardStdout = false } = {}) {
  const child = fork(path.join(BENCH_DIR, script), args, {
    execArgv,
    ...(execPath ? { execPath } : {}),
    ...(env ? { env } : {}),
    // discardStdout: a pipe this process reads and throws away, as a log shipper would read it.
    stdio: ['ignore', discardStdout ? 'pipe' : 'inherit', 'inherit', 'ipc'],
  });
  child.stdout?.resume();
  children?.add(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      if (child.connected) child.send({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    children?.delete(child);
  };
  const info = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${startTimeoutMs / 1000} s`)), startTimeoutMs);
    child.on('message', function onMessage(message) {
      if (message?.type === 'ready' || message?.type === 'error') {
        clearTimeout(timer);
        child.off('message', onMessage);
        if (message.type === 'ready') resolve(message);
        else reject(new Error(`${name}: ${message.message}`));
      }
    });
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before it was ready`));
    });
  }).catch(async (error) => {
    await stop();
    throw error;
  });
  return {
    info,
    pid: child.pid,
    stop,
    request: (type) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name} did not answer ${type}`)), 10_000);
        child.on('message', function onMessage(message) {
          if (message?.type === type) {
            clearTimeout(timer);
            child.off('message', onMessage);
            resolve(message);
          }
        });
        child.send({ type });
      }),
  };
}

/** The machine a run was on, for its output and results. */
export function machineInfo() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAverageBefore: os.loadavg(),
  };
}

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on Linux everywhere in practice). */
const CLOCK_TICKS = 100;

/** utime + stime of a process (all its threads) in seconds, from /proc (Linux); undefined elsewhere. */
export function cpuSeconds(pid) {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/**
 * The machine's CPU time so far, all cores, in ticks: how much of it was idle (idle and
 * iowait) and in all (/proc/stat). Undefined where there is no /proc.
 */
export function machineTicks() {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1, 9).map(Number);
    return { idle: fields[3] + fields[4], total: fields.reduce((a, b) => a + b, 0) };
  } catch {
    return undefined;
  }
}

/** Ends a bench script that was called wrongly or cannot run here: `message` on stderr, exit code 2. */
export function stop(message) {
  console.error(message);
  process.exit(2);
}

/**
 * `--name`'s value among a script's `options` (its `--name=value` arguments) as a whole
 * number, at least 1, or `fallback` where it is not given; any other value stops the
 * script, saying so above its `usage` line.
 */
export function wholeOption(options, name, fallback, usage) {
  const value = options[name] === undefined ? fallback : Number(options[name]);
  if (!Number.isInteger(value) || value < 1) stop(`--${name} must be a whole number, at least 1\n${usage}`);
  return value;
}
