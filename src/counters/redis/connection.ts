/**
 * Connecting to Redis so that an unreachable Redis never hangs or crashes a gateway:
 * commands fail at once while disconnected (no offline queue), time out quickly when
 * Redis stops answering, are never re-sent on a new connection (an admission must not
 * count twice), and reconnection is retried forever at a short, capped interval.
 *
 * `counters: redis://[user:password@]host:port[/db][?prefix=keygate:]` — `prefix` is
 * keygate's own parameter (prepended to every key and to the pub/sub channel, so
 * several deployments or test runs can share one Redis); the rest goes to ioredis.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { hearInfoRefused } from './info-refused.js';
import { hearUnusedPassword } from './unused-password.js';

export const DEFAULT_PREFIX = 'keygate:';

/**
 * The client gives up on any command after this long. Requests do not wait that long:
 * an admission has its own, shorter deadline (the batcher's `deadlineMs`; a balance
 * read, `withDeadline`).
 */
const COMMAND_TIMEOUT_MS = 5_000;
const CONNECT_TIMEOUT_MS = 1_000;
/** Closing waits this long for a socket to end (a half-open one would hold the process). */
const DISCONNECT_TIMEOUT_MS = 200;
/** Reconnect delay grows by this much per attempt... */
const RECONNECT_STEP_MS = 100;
/** ...up to this, so a returning Redis is used again within half a second. */
const RECONNECT_MAX_MS = 500;

/**
 * A CLI command (`use: 'command'`) answers a person or a script within about a second,
 * Redis or not: where Redis takes connections and does not answer (stopped with SIGSTOP, a
 * hung host behind a live proxy), nothing waits longer than this for it, its ready check
 * included (connectTimeout only covers the TCP connection).
 */
export const COMMAND_USE_WAIT_MS = 1_000;

export interface RedisTarget {
  /** The URL handed to ioredis (without keygate's own parameters). */
  url: string;
  prefix: string;
}

export function parseRedisUrl(url: string): RedisTarget {
  const parsed = new URL(url);
  const prefix = parsed.searchParams.get('prefix') ?? DEFAULT_PREFIX;
  parsed.searchParams.delete('prefix');
  return { url: parsed.toString(), prefix };
}

const reconnect = (attempt: number): number => Math.min(attempt * RECONNECT_STEP_MS, RECONNECT_MAX_MS);

/** What the process does with Redis: serve requests, or run one CLI command and exit. */
export type RedisUse = 'requests' | 'command';

/**
 * Options a CLI command changes: its commands time out with its wait, and closing does not
 * wait for a Redis that does not take the connection's end (each of the two connections
 * held the exit 200 ms, twice).
 */
function forUse(use: RedisUse): RedisOptions {
  return use === 'command' ? { commandTimeout: COMMAND_USE_WAIT_MS, disconnectTimeout: 0 } : {};
}

/**
 * What Redis may answer as a connection opens that ioredis would write to stderr itself
 * (plain text beside keygate's JSON log): heard here instead, for keygate to say in its own.
 */
export interface HeardAtConnect {
  /** Redis asks no password and the URL gives one (see unused-password.ts). */
  unusedPassword?: () => void;
  /** The ready check's INFO refused to the user by its ACL, with Redis's answer (see info-refused.ts). */
  infoRefused?: (refusal: string) => void;
}

/** The connection for the hot path: fail fast, never queue, never replay. */
export function commandClient(target: RedisTarget, use: RedisUse = 'requests', heard: HeardAtConnect = {}): Redis {
  const options: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: CONNECT_TIMEOUT_MS,
    disconnectTimeout: DISCONNECT_TIMEOUT_MS,
    retryStrategy: reconnect,
    connectionName: 'keygate',
    ...forUse(use),
  };
  return hearing(new Redis(target.url, options), heard);
}

/**
 * The subscriber connection for cache invalidations. It may queue its SUBSCRIBE until
 * Redis is reachable and re-subscribes after every reconnect.
 */
export function subscriberClient(target: RedisTarget, use: RedisUse = 'requests', heard: HeardAtConnect = {}): Redis {
  const options: RedisOptions = {
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
    autoResubscribe: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    disconnectTimeout: DISCONNECT_TIMEOUT_MS,
    retryStrategy: reconnect,
    connectionName: 'keygate-events',
    ...forUse(use),
  };
  return hearing(new Redis(target.url, options), heard);
}

/**
 * Before its connection opens (the constructor starts it; the AUTH and the ready check's
 * INFO go once it is up). INFO is heard whether or not the caller listens: ioredis's line
 * is never written.
 */
function hearing(client: Redis, heard: HeardAtConnect): Redis {
  if (heard.unusedPassword) hearUnusedPassword(client, heard.unusedPassword);
  hearInfoRefused(client, heard.infoRefused ?? (() => undefined));
  return client;
}

/**
 * Resolves true once the client is ready, or false after `ms` (or at its first
 * connection error, with `untilFirstError`: the client keeps trying in the background).
 */
export function whenReady(client: Redis, ms: number, untilFirstError = false): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ready: boolean) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('error', onError);
      resolve(ready);
    };
    const onReady = () => done(true);
    const onError = () => done(false);
    const timer = setTimeout(() => done(false), ms);
    client.once('ready', onReady);
    if (untilFirstError) client.once('error', onError);
  });
}
