/**
 * Whether the addresses `keygate serve` would listen on are free, as `keygate check` asks
 * before a deploy or a restart: serve refuses to start on a port another process holds
 * (tryListening in serve.ts), and the check says so first, as a warning (the holder is
 * often the very keygate about to be restarted beside which the check is run).
 *
 * Only an address of this machine is tried (a wildcard, loopback, or one of its network
 * interfaces'): another machine's cannot be bound here, and what is free there cannot be
 * known from here. Each try binds and lets go at once, within a deadline.
 *
 * @example
 * await portsInUse(config, ['gateway', 'admin'])
 * // → [{ listener: 'gateway', field: 'listen.port', at: '127.0.0.1:8080' }]
 */
import { lookup } from 'node:dns/promises';
import { createServer, isIP, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { listenSettings, PORT_FIELD, type ListenerKind } from '../config/servable.js';

/** How long one try may take (a host name's lookup included) before it is given up, saying nothing. */
const TRY_DEADLINE_MS = 3_000;

export interface PortInUse {
  listener: ListenerKind;
  /** The profile field that sets its port (`listen.port`). */
  field: string;
  /** `127.0.0.1:8080`, `[::1]:8080`. */
  at: string;
}

interface ListenAt {
  host: string;
  port: number;
}

/** The listeners whose address another process (or a keygate already running) holds, in the order given. */
export async function portsInUse(
  config: { listen: ListenAt; admin: { listen: ListenAt }; dashboard: { listen: ListenAt } },
  listeners: readonly ListenerKind[],
  deadlineMs = TRY_DEADLINE_MS,
): Promise<PortInUse[]> {
  const at = listenSettings(config);
  // One after another, as serve tries them: two listeners on one port must not take it from each other.
  const taken: PortInUse[] = [];
  for (const listener of listeners) {
    const { host, port } = at[listener];
    // Port 0 is any free port: never taken.
    if (port === 0) continue;
    if (await inUse(host, port, deadlineMs)) taken.push({ listener, field: PORT_FIELD[listener], at: `${isIP(host) === 6 ? `[${host}]` : host || '0.0.0.0'}:${port}` });
  }
  return taken;
}

/** The warning `keygate check` prints for a listener whose address is taken. */
export function describePortInUse({ listener, field, at }: PortInUse): string {
  const name = listener === 'admin' ? 'admin API' : listener;
  return `${field}: ${at} is in use, so keygate serve cannot open its ${name} there while it is: if that is the keygate already serving this profile (a check before its restart), it is expected; else change ${field}, or stop what listens there`;
}

/** Whether binding host:port is refused as in use; false for a free one, an address not this machine's, and anything not known within the deadline. */
async function inUse(host: string, port: number, deadlineMs: number): Promise<boolean> {
  const deadline = AbortSignal.timeout(deadlineMs);
  const address = await localAddress(host, deadline);
  if (address === undefined || deadline.aborted) return false;
  const probe = createServer();
  const answer = await new Promise<'free' | 'in use' | 'unknown'>((resolve) => {
    deadline.addEventListener('abort', () => resolve('unknown'), { once: true });
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'EADDRINUSE' ? 'in use' : 'unknown'));
    probe.listen(port, address, () => resolve('free'));
  });
  close(probe);
  return answer === 'in use';
}

/** Lets the probe go, now or as soon as it listens (one answered late, after the deadline). */
function close(probe: Server): void {
  if (probe.listening) probe.close();
  else probe.once('listening', () => probe.close());
}

/** The address a listener on `host` binds, where it is this machine's; undefined otherwise. */
async function localAddress(host: string, deadline: AbortSignal): Promise<string | undefined> {
  if (host === '' || host === '0.0.0.0' || host === '::') return host || '0.0.0.0';
  if (isIP(host) !== 0) return isLocal(host) ? host : undefined;
  // A name: the address listen() would take for it (the first found), if it is this machine's.
  const found = await Promise.race([
    lookup(host).then(
      ({ address }) => address,
      () => undefined,
    ),
    new Promise<undefined>((resolve) => deadline.addEventListener('abort', () => resolve(undefined), { once: true })),
  ]);
  return found !== undefined && isLocal(found) ? found : undefined;
}

function isLocal(address: string): boolean {
  if (address === '::1' || /^127\./.test(address)) return true;
  return Object.values(networkInterfaces()).some((list) => list?.some((i) => i.address === address.replace(/%.*$/, '')));
}
