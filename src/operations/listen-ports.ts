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
 * default, `::` where the machine has IPv6, else 0.0.0.0), bound and let go at once,
 * within a deadline; what is not known by then is not said.
 *
 * @example
 * await blockedListeners(config, ['gateway', 'admin'])
 * // → [{ listener: 'gateway', code: 'EADDRINUSE', host: '127.0.0.1', port: 8080, at: '127.0.0.1:8080' }]
 */
import { createServer, isIP, type Server } from 'node:net';
import { HOST_FIELD, listenSettings, PORT_FIELD, type ListenerKind } from '../config/servable.js';

/** How long one try may take (a host name's lookup included) before it is given up, saying nothing. */
const TRY_DEADLINE_MS = 3_000;

/** Why an address cannot be listened on, by the system's error code, and which field moves it (serve's refusal says these too). */
export const LISTEN_PROBLEMS: Record<string, { why: string; field: 'host' | 'port' }> = {
  EADDRINUSE: { why: 'another process is using that port', field: 'port' },
  ENOTFOUND: { why: 'no such host name', field: 'host' },
  EAI_AGAIN: { why: 'the host name could not be looked up', field: 'host' },
  EADDRNOTAVAIL: { why: 'that address belongs to no network interface of this machine', field: 'host' },
  EACCES: { why: 'this process may not listen on that port (ports under 1024 need privileges)', field: 'port' },
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
}

/** A refused listen(): where it was tried, for no host the address Node chose. */
type ListenError = NodeJS.ErrnoException & { address?: string };

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
  // One after another, as serve tries them: two listeners on one port must not take it from each other.
  const blocked: BlockedListener[] = [];
  for (const listener of listeners) {
    const { host, port } = at[listener];
    // Port 0 is any free port: never taken (but a host not this machine's is still refused).
    const refusal = await tryListen(host, port, deadlineMs);
    if (refusal === undefined) continue;
    const address = host || refusal.address || '0.0.0.0';
    blocked.push({ listener, code: refusal.code ?? 'unknown', host, port, at: `${isIP(address) === 6 ? `[${address}]` : address}:${port}`, message: refusal.message });
  }
  return blocked;
}

/** The warning `keygate check` prints for a listener serve could not open, naming the field that moves it. */
export function describeBlockedListener({ listener, code, host, port, at, message }: BlockedListener): string {
  const name = listener === 'admin' ? 'admin API' : listener;
  const portField = PORT_FIELD[listener];
  const hostField = HOST_FIELD[listener];
  const cannot = `keygate serve cannot open its ${name} there`;
  switch (code) {
    case 'EADDRINUSE':
      return `${portField}: ${at} is in use, so ${cannot} while it is: if that is the keygate already serving this profile (a check before its restart), it is expected; else change ${portField}, or stop what listens there`;
    case 'EACCES':
      return `${portField}: this user may not listen on port ${port} (ports under 1024 need privileges), so ${cannot} (${at}) when run as this user: if serve runs as another user, or with the capability to (CAP_NET_BIND_SERVICE), it is expected; else change ${portField} to 1024 or above`;
    case 'EADDRNOTAVAIL':
      return `${hostField}: ${host} is no address of this machine (no network interface has it), so ${cannot} (${at}): if the profile is for another machine, it is expected; else change ${hostField}`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `${hostField}: ${host} ${code === 'ENOTFOUND' ? 'is no host name known here' : 'could not be looked up'} (${code}), so ${cannot}: if the name is known only where serve runs, it is expected; else change ${hostField}`;
    default:
      return `${hostField}, ${portField}: ${cannot} (${at}): ${LISTEN_PROBLEMS[code]?.why ?? message}`;
  }
}

/** Why binding host:port is refused, as serve's listener would be; undefined for a free one, and for anything not known within the deadline. */
async function tryListen(host: string, port: number, deadlineMs: number): Promise<ListenError | undefined> {
  const deadline = AbortSignal.timeout(deadlineMs);
  const probe = createServer();
  const refusal = await new Promise<ListenError | undefined>((resolve) => {
    deadline.addEventListener('abort', () => resolve(undefined), { once: true });
    probe.once('error', resolve);
    // As serve's: a host name is looked up by listen() itself (its first address), no host is Node's default.
    probe.listen(port, host, () => resolve(undefined));
  });
  close(probe);
  return refusal;
}

/** Lets the probe go, now or as soon as it listens (one answered late, after the deadline). */
function close(probe: Server): void {
  if (probe.listening) probe.close();
  else probe.once('listening', () => probe.close());
}
