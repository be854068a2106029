/**
 * Whether `keygate serve` could open its listeners where the profile says, as `keygate
 * check` asks before a deploy or a restart: serve refuses to start on an address it cannot
 * listen on (tryListening in serve.ts), and the check says so first, as a warning, with
 * the reason in words: a port another process holds (often the very keygate about to be
 * restarted beside which the check is run), an address that is not this machine's or a
 * host name not known here (a profile for another machine), a port this user may not
 * listen on (serve may run as another user).
 *
 * Each listener is tried as serve listens: on its host as written (no host is Node's
 * default, `::` where the machine has IPv6, else 0.0.0.0), within a deadline (what is not
 * known by then is not said), each held until all are tried and then let go: one refused
 * where an earlier one of keygate's own listens (a host name that is the other's address,
 * which the profile's validation cannot see) is said as that, not as another process.
 *
 * @example
 * await blockedListeners(config, ['gateway', 'admin'])
 * // → [{ listener: 'gateway', code: 'EADDRINUSE', host: '127.0.0.1', port: 8080, at: '127.0.0.1:8080' }]
 */
import { readFileSync } from 'node:fs';
import { createServer, isIP, type Server } from 'node:net';
import { hostsOverlap } from '../config/listen-hosts.js';
import { HOST_FIELD, listenSettings, PORT_FIELD, type ListenerKind } from '../config/servable.js';

const LISTENER_NAME = { gateway: 'gateway', admin: 'admin API', dashboard: 'dashboard' } as const;

/** How long one try may take (a host name's lookup included) before it is given up, saying nothing. */
const TRY_DEADLINE_MS = 3_000;

/** Where Linux says the lowest port any user may listen on (net.ipv4.ip_unprivileged_port_start). */
const UNPRIVILEGED_PORT_START = '/proc/sys/net/ipv4/ip_unprivileged_port_start';
/** The traditional limit, and the one of systems without that setting. */
const TRADITIONAL_PORT_START = 1024;

/**
 * The lowest port any user may listen on: Linux's setting, which a system may lower (to 80,
 * or 0 in many containers), else 1024. `read` gives the setting's text (tests).
 */
export function unprivilegedPortStart(read: () => string = () => readFileSync(UNPRIVILEGED_PORT_START, 'utf8')): number {
  try {
    const text = read().trim();
    const port = Number(text);
    return /^\d+$/.test(text) && port <= 65_536 ? port : TRADITIONAL_PORT_START;
  } catch {
    return TRADITIONAL_PORT_START;
  }
}

/** This machine's, read once. */
const PRIVILEGED_BELOW = unprivilegedPortStart();

/** Why an address cannot be listened on, by the system's error code, and which field moves it (serve's refusal says these too). */
export const LISTEN_PROBLEMS: Record<string, { why: string; field: 'host' | 'port' }> = {
  EADDRINUSE: { why: 'another process is using that port', field: 'port' },
  ENOTFOUND: { why: 'no such host name', field: 'host' },
  EAI_AGAIN: { why: 'the host name could not be looked up', field: 'host' },
  EADDRNOTAVAIL: { why: 'that address belongs to no network interface of this machine', field: 'host' },
  EACCES: { why: `this process may not listen on that port (ports under ${PRIVILEGED_BELOW} need privileges)`, field: 'port' },
};

export interface BlockedListener {
  listener: ListenerKind;
  /** The system's error code (`EADDRINUSE`, `EACCES`, ...). */
  code: string;
  host: string;
  port: number;
  /** Where it was tried: `127.0.0.1:8080`, `[::]:8080` (no host, on a machine with IPv6). */
  at: string;
  /** The system's words, for a code LISTEN_PROBLEMS does not know. */
  message: string;
  /** Another of keygate's listeners that holds that address (serve opens it first). */
  sharedWith?: ListenerKind;
}

/** A refused listen(): where it was tried, for no host the address Node chose. */
export type ListenError = NodeJS.ErrnoException & { address?: string };

interface ListenAt {
  host: string;
  port: number;
}

/** The listeners serve could not open where the profile says, in the order given. */
export async function blockedListeners(
  config: { listen: ListenAt; admin: { listen: ListenAt }; dashboard: { listen: ListenAt } },
  listeners: readonly ListenerKind[],
  deadlineMs = TRY_DEADLINE_MS,
): Promise<BlockedListener[]> {
  const at = listenSettings(config);
  const refused = await tryListeners(
    listeners.map((listener) => ({ listener, ...at[listener] })),
    { deadlineMs },
  );
  return refused.map(({ listener, host, port, error, sharedWith }) => ({
    listener,
    code: error.code ?? 'unknown',
    host,
    port,
    at: where(host, port, error),
    message: error.message,
    ...(sharedWith === undefined ? {} : { sharedWith }),
  }));
}

/** One listener's address, as serve listens on it. */
export interface ListenTry {
  listener: ListenerKind;
  host: string;
  port: number;
}

export interface ListenRefusal extends ListenTry {
  error: ListenError;
  /** The listener tried before it that holds that address (EADDRINUSE): two of keygate's own on one address, not another process. */
  sharedWith?: ListenerKind;
}

/**
 * Tries each address in order as serve listens on it (a host name looked up by listen(),
 * no host Node's default), each held until all are tried, as serve's listeners hold them:
 * one refused as in use where an earlier one of them holds that address (a host name that
 * is the other's address, two ports given alike by serve's flags) names that listener.
 * Answers the refusals in order; `firstOnly`: the first alone (serve stops there). With
 * `deadlineMs`, a try not answered by then is taken as free, saying nothing.
 */
export async function tryListeners(tries: readonly ListenTry[], { deadlineMs, firstOnly = false }: { deadlineMs?: number; firstOnly?: boolean } = {}): Promise<ListenRefusal[]> {
  const held: { listener: ListenerKind; probe: Server }[] = [];
  const refused: ListenRefusal[] = [];
  try {
    for (const attempt of tries) {
      const probe = createServer();
      const error = await tryListen(probe, attempt.host, attempt.port, deadlineMs);
      if (error === undefined) {
        held.push({ listener: attempt.listener, probe });
        continue;
      }
      void close(probe);
      // Which of ours holds it: the address it was refused at, against each held one's (both as bound: addresses, `::`).
      const holder =
        error.code === 'EADDRINUSE' && error.address !== undefined
          ? held.find(({ probe: other }) => {
              const bound = other.address();
              return typeof bound === 'object' && bound !== null && bound.port === attempt.port && hostsOverlap(bound.address, error.address as string);
            })
          : undefined;
      refused.push({ ...attempt, error, ...(holder === undefined ? {} : { sharedWith: holder.listener }) });
      if (firstOnly) break;
    }
  } finally {
    // Let go before serve listens there itself.
    await Promise.all(held.map(({ probe }) => close(probe)));
  }
  return refused;
}

/** `127.0.0.1:8080`, `[::1]:8080`; no host: where Node tried (`[::]:8080`, or 0.0.0.0 on a machine without IPv6); a name with the address it found (`vm (127.0.0.1):8080`). */
export function where(host: string, port: number, error: ListenError): string {
  const address = host || error.address || '0.0.0.0';
  if (isIP(address) === 0 && error.address !== undefined) return `${address} (${error.address}):${port}`;
  return `${isIP(address) === 6 ? `[${address}]` : address}:${port}`;
}

/**
 * The warning `keygate check` prints for a listener serve could not open, naming the field
 * that moves it. `privilegedBelow`: the machine's lowest port any user may take.
 */
export function describeBlockedListener({ listener, code, host, port, at, message, sharedWith }: BlockedListener, privilegedBelow = PRIVILEGED_BELOW): string {
  const name = LISTENER_NAME[listener];
  const portField = PORT_FIELD[listener];
  const hostField = HOST_FIELD[listener];
  const cannot = `keygate serve cannot open its ${name} there`;
  if (sharedWith !== undefined) {
    return `${portField}: ${at} is where keygate serve opens its ${LISTENER_NAME[sharedWith]} (${PORT_FIELD[sharedWith]}, and ${HOST_FIELD[sharedWith]} is that address too), so ${cannot}: give each listener a port of its own`;
  }
  switch (code) {
    case 'EADDRINUSE':
      return `${portField}: ${at} is in use, so ${cannot} while it is: if that is the keygate already serving this profile (a check before its restart), it is expected; else change ${portField}, or stop what listens there`;
    case 'EACCES':
      // A port any user may take, refused all the same (a security module's policy): not its number's doing.
      if (port >= privilegedBelow) return `${portField}: this user may not listen on port ${port} (EACCES; not for its number: this system lets any user take ports from ${privilegedBelow} up), so ${cannot} (${at}) when run as this user: if serve runs as another user, it is expected; else see what refuses it (a security policy such as SELinux or AppArmor)`;
      return `${portField}: this user may not listen on port ${port} (ports under ${privilegedBelow} need privileges), so ${cannot} (${at}) when run as this user: if serve runs as another user, or with the capability to (CAP_NET_BIND_SERVICE), it is expected; else change ${portField} to ${privilegedBelow} or above`;
    case 'EADDRNOTAVAIL':
      return `${hostField}: ${host} is no address of this machine (no network interface has it), so ${cannot} (${at}): if the profile is for another machine, it is expected; else change ${hostField}`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `${hostField}: ${host} ${code === 'ENOTFOUND' ? 'is no host name known here' : 'could not be looked up'} (${code}), so ${cannot}: if the name is known only where serve runs, it is expected; else change ${hostField}`;
    default:
      return `${hostField}, ${portField}: ${cannot} (${at}): ${LISTEN_PROBLEMS[code]?.why ?? message}`;
  }
}

/** Why binding host:port is refused, as serve's listener would be; undefined once it listens, and for anything not known within the deadline (if any). */
async function tryListen(probe: Server, host: string, port: number, deadlineMs: number | undefined): Promise<ListenError | undefined> {
  return new Promise<ListenError | undefined>((resolve) => {
    if (deadlineMs !== undefined) AbortSignal.timeout(deadlineMs).addEventListener('abort', () => resolve(undefined), { once: true });
    probe.once('error', resolve);
    // As serve's: a host name is looked up by listen() itself (its first address), no host is Node's default.
    probe.listen(port, host, () => resolve(undefined));
  });
}

/** Lets the probe go, now or as soon as it listens (one answered late, after the deadline); resolves once it is closed, or at once for one that never listened. */
function close(probe: Server): Promise<void> {
  return new Promise((resolve) => {
    if (probe.listening) probe.close(() => resolve());
    else {
      probe.once('listening', () => probe.close());
      resolve();
    }
  });
}
