/**
 * How many client connections a listener holds open at once.
 *
 * Every connection takes a file descriptor, and a process has a fixed number of them.
 * Without a cap, clients that open connections and keep them (slow or idle ones, or a
 * flood) take them all: the admin API, /health, the store, Redis and the upstream pool
 * can then open nothing, and the process looks dead to everything that watches it. So
 * the gateway's listener is capped by default below the process's limit, leaving room
 * for the upstream pool and the rest; a connection over the cap is closed as it is
 * accepted (Node's `server.maxConnections`), counted, and logged once a minute.
 */
import { readFileSync } from 'node:fs';
import type { Server as NetServer } from 'node:net';
import { oncePer, type Log } from './log.js';

/** Descriptors the gateway's default cap leaves for the admin API, the dashboard, the store, Redis, logs and files. */
const RESERVED_DESCRIPTORS = 512;
/** The smallest default cap, however low the process's limit is. */
const MIN_DEFAULT_CAP = 64;
/** How often the log tells of connections closed over the cap, at most. */
const DROP_LOG_INTERVAL_MS = 60_000;

/**
 * The process's limit on open files (its soft limit, which Node raises to the hard one at
 * start), from /proc/self/limits; undefined where there is none or it cannot be read.
 */
export function openFilesLimit(limits: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number | undefined {
  let text: string;
  try {
    text = limits();
  } catch {
    return undefined;
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  const n = soft === undefined ? NaN : Number(soft);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * The gateway's cap when the profile sets none: the process's limit less the upstream
 * pool's connections and RESERVED_DESCRIPTORS; none when the limit is unknown.
 */
export function defaultGatewayCap(filesLimit: number | undefined, upstreamConnections: number): number | undefined {
  if (filesLimit === undefined) return undefined;
  return Math.max(MIN_DEFAULT_CAP, filesLimit - upstreamConnections - RESERVED_DESCRIPTORS);
}

/**
 * Caps each of a listener's servers (one per address it listens on) at `max` open
 * connections: Node closes one over it as it is accepted; here it is counted
 * (`dropped`) and logged, at most once a minute.
 */
export function capConnections(kind: string, field: string, max: number, log: Log, dropped: (kind: string) => void): (server: NetServer) => void {
  const logDrop = oncePer(DROP_LOG_INTERVAL_MS);
  const drop = () => {
    dropped(kind);
    logDrop(({ moreSinceLast }) =>
      log.warn(
        { listener: kind, maxConnections: max, ...(moreSinceLast === undefined ? {} : { moreSinceLast }) },
        `the ${kind} holds ${max} connections, its most (${field}): closed a new one as it came in${moreSinceLast === undefined ? '' : ` (and ${moreSinceLast} more since the last such line)`}`,
      ),
    );
  };
  return (server) => {
    server.maxConnections = max;
    server.on('drop', drop);
  };
}
