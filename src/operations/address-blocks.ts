/**
 * Client addresses blocked for their unknown keys (`auth.unknownKeys`), as an operator
 * sees and lifts them (the admin API, the dashboard's Address blocks page). With Redis
 * counters they are shared by every keygate process: any process's admin API or dashboard
 * lists them all and lifts one everywhere. With memory counters (and while Redis is away
 * or refuses these commands) each process counts and blocks by itself, so it answers for
 * itself alone, and the list says so (`from`). No CLI command reaches them.
 *
 * @example
 * listAddressBlocks(rt); // { enabled: true, policy: { limit: 20, … }, from: 'shared', blocks: [{ address: '2001:db8:0:7::/64', … }] }
 * await liftAddressBlock(rt, '2001:db8:0:7::1', 'admin-api'); // lifts the /64: { address: '2001:db8:0:7::/64', …, from: 'shared' }
 */
import { isIP } from 'node:net';
import type { Runtime } from '../runtime.js';
import type { Page } from '../store/store.js';
import type { BlockInForce } from '../auth/unknown-key-limit.js';
import { addressGroup } from '../gateway/trusted-proxies.js';
import { formatDuration } from '../config/duration.js';
import { actorName, audit, type Actor } from './audit.js';
import { isoTime } from './accounts.js';
import { OperationError } from './errors.js';

/** How an IPv6 address group is listed (`2001:db8:0:7::/64`), and may be named to lift it. */
const IPV6_GROUP_SUFFIX = '/64';

/** What the admin API says of an address it cannot read, naming the forms it takes. */
export const NOT_AN_ADDRESS = 'an IP address (192.0.2.7, 2001:db8::1) or an IPv6 /64 as GET /v1/address-blocks lists it (2001:db8:0:7::/64)';

/**
 * The address group an operator's address names, as blocks are kept: an IPv4 address
 * itself, an IPv6 address's /64 (any address in it, or the /64 as listed); undefined for
 * anything else.
 */
export function blockedAddressOf(text: string): string | undefined {
  const bare = text.endsWith(IPV6_GROUP_SUFFIX) ? text.slice(0, -IPV6_GROUP_SUFFIX.length) : text;
  const version = isIP(bare);
  if (version === 0 || (bare !== text && version !== 6)) return undefined;
  return addressGroup(bare);
}

/** A block as the admin API and the audit log give it: times in ISO 8601. */
function blockOut(block: BlockInForce) {
  return { address: block.address, unknownKeys: block.unknownKeys, blockedAt: isoTime(block.startedAt) as string, blockedUntil: isoTime(block.endsAt) as string };
}

/**
 * Whether `auth.unknownKeys` is on, its policy as the profile writes it, where the list
 * comes from (`BlocksFrom`; null while it is off), and the blocks in force (every
 * process's with Redis counters, this process's with memory counters or while Redis is
 * away), the oldest first (by when each began, then by address): all of them, or
 * `page.limit` after the block `page.after` names (its start and address: a block lifted
 * or ended meanwhile neither skips nor repeats one).
 */
export async function listAddressBlocks(rt: Pick<Runtime, 'config' | 'clock' | 'unknownKeyLimit'>, page: Page = {}) {
  const policy = rt.config.auth.unknownKeys;
  // Turned off, the runtime forgets every block: none is in force.
  const listed = policy === undefined ? undefined : await rt.unknownKeyLimit.blocksInForce(rt.clock());
  const inForce = (listed?.blocks ?? []).sort(oldestFirst);
  const { after, limit } = page;
  const first = after === undefined ? 0 : inForce.findIndex((block) => oldestFirst(block, { startedAt: after.createdAt, address: after.id }) > 0);
  const blocks = first < 0 ? [] : inForce.slice(first, limit === undefined ? undefined : first + limit);
  return {
    enabled: policy !== undefined,
    policy: policy === undefined ? null : { limit: policy.limit, window: formatDuration(policy.window), block: formatDuration(policy.block) },
    // Whether the list holds every block or this process's alone (Redis away: maybe not all in force).
    from: listed === undefined ? null : listed.from,
    blocks: blocks.map(blockOut),
  };
}

/** The order blocks are listed (and paged) in: the one begun longest ago first, then by address. */
function oldestFirst(a: Pick<BlockInForce, 'startedAt' | 'address'>, b: Pick<BlockInForce, 'startedAt' | 'address'>): number {
  return a.startedAt - b.startedAt || (a.address < b.address ? -1 : a.address > b.address ? 1 : 0);
}

/** Where a listed block stands in that order, for the next page's cursor (operations/cursor.ts). */
export function placeOfBlock(block: { address: string; blockedAt: string }): { createdAt: number; id: string } {
  return { createdAt: Date.parse(block.blockedAt), id: block.address };
}

/** Whether a cursor's id can be a listed block's: an address group as blocks are kept. */
export function isBlockedAddress(id: string): boolean {
  return blockedAddressOf(id) === id;
}

/**
 * Lifts the block of the address group `address` names (an IPv6 address: its /64), in
 * every process with Redis counters, as if it had ended: its next unknown key is counted
 * afresh. The answer's `from` says how far the lift reached (`BlockLifted`): while Redis
 * is away, this process's copy alone (`this-process-redis-away`, or
 * `this-process-redis-refused` when Redis answers with an error: other processes may still
 * refuse the address, and a block Redis holds comes back once it answers). Audited as
 * `address.unblocked`, with `from`. Refused (not_found) when no block of it is in force.
 */
export async function liftAddressBlock(rt: Pick<Runtime, 'config' | 'clock' | 'unknownKeyLimit' | 'store' | 'log'>, address: string, actor: Actor) {
  const group = blockedAddressOf(address);
  if (group === undefined) throw new OperationError('invalid', `address: ${NOT_AN_ADDRESS}`);
  if (rt.config.auth.unknownKeys === undefined) throw new OperationError('not_found', `no block of ${group}: auth.unknownKeys is off in this profile, so no address is blocked`);
  const lifted = await rt.unknownKeyLimit.lift(group, rt.clock());
  if (lifted === undefined) throw new OperationError('not_found', `no block of ${group} is in force (GET /v1/address-blocks lists them; with memory counters each process has its own)`);
  const { block, from } = lifted;
  const out = blockOut(block);
  rt.log.info({ client: group, unknownKeys: block.unknownKeys, blockedUntil: out.blockedUntil, from, actor: actorName(actor) }, 'client address block lifted (auth.unknownKeys)');
  await audit(rt, actor, 'address.unblocked', { detail: { address: group, unknownKeys: block.unknownKeys, blockedAt: block.startedAt, blockedUntil: block.endsAt, from } });
  return { ...out, from };
}
