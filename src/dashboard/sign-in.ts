/**
 * Checking an email and password, with lockouts that slow guessing without handing
 * anyone a way to keep a member out:
 *
 * - after MAX_FAILED_SIGN_INS wrong passwords in a row for an email from one client
 *   address, that address is paused for that email for LOCKOUT_MS (kept in memory, per
 *   process): whoever is guessing, not the member signing in from elsewhere;
 * - an IPv6 host can pick a new address in its /64 for every try: after
 *   MAX_FAILED_SIGN_INS_PER_NETWORK in a row from one /64 the /64 is paused for that
 *   email, before such a host could lock the email itself (a member in the same /64 then
 *   waits too, as one behind the same IPv4 address does);
 * - after MAX_FAILED_SIGN_INS_PER_EMAIL wrong passwords in a row for an email from
 *   anywhere (guesses spread over many addresses), the email itself is paused for
 *   LOCKOUT_MS, for every address (kept in the store for members, shared by processes).
 *
 * Both are recorded in the audit log for members. Unknown emails get the same answers,
 * the same lockouts (remembered in memory) and the same scrypt work, so the sign-in form
 * never tells whether an email belongs to a member. A right password clears the email's
 * count and those of that address and its /64.
 */
import type { Runtime } from '../runtime.js';
import type { MemberRecord } from '../store/store.js';
import { hashPassword, verifyPassword } from '../members/password.js';
import { audit } from '../operations/audit.js';
import { addressGroup } from '../gateway/trusted-proxies.js';
import { LOCKOUT_MS, MAX_FAILED_SIGN_INS, MAX_FAILED_SIGN_INS_PER_EMAIL, MAX_FAILED_SIGN_INS_PER_NETWORK } from '../members/lockout.js';

/** Email-and-address (or /64) pairs, and unknown emails, remembered for the lockouts; the oldest are forgotten first. */
const MAX_TRACKED = 10_000;
/** No address is longer (RFC 5321); longer input is refused without being remembered. */
const MAX_EMAIL_LENGTH = 254;
const ACTOR = 'dashboard';

export type SignInResult =
  | { ok: true; member: MemberRecord }
  | { ok: false; reason: 'invalid' }
  | { ok: false; reason: 'locked'; retryAfterMs: number };

interface Attempts {
  failures: number;
  lockedUntil: number | null;
}

export interface SignInChecker {
  /** `address`: the client's, as the dashboard sees it (behind trusted proxies, the one they name). */
  check(email: string, password: string, address: string): Promise<SignInResult>;
}

/** A map that forgets its oldest entries beyond MAX_TRACKED (an entry touched moves to the end). */
class Tracked {
  private readonly entries = new Map<string, Attempts>();

  get(key: string): Attempts | undefined {
    return this.entries.get(key);
  }

  /** One more failure; locked for LOCKOUT_MS once `max` are reached in a row (a lock that has ended is forgotten). */
  fail(key: string, max: number, now: number): Attempts {
    const attempts = this.entries.get(key) ?? { failures: 0, lockedUntil: null };
    this.entries.delete(key);
    if (attempts.lockedUntil !== null && attempts.lockedUntil <= now) attempts.lockedUntil = null;
    attempts.failures += 1;
    if (attempts.failures >= max) {
      attempts.failures = 0;
      attempts.lockedUntil = now + LOCKOUT_MS;
    }
    this.entries.set(key, attempts);
    if (this.entries.size > MAX_TRACKED) this.entries.delete(this.entries.keys().next().value as string);
    return attempts;
  }

  clear(key: string): void {
    this.entries.delete(key);
  }
}

export function createSignInChecker(rt: Runtime): SignInChecker {
  /** Failures per email and client address, members' and unknown emails' alike. */
  const byAddress = new Tracked();
  /** Failures per unknown email from anywhere (a member's are in the store). */
  const unknownEmails = new Tracked();
  // A real scrypt hash to verify against when the email is unknown (equal timing).
  let decoy: Promise<string> | undefined;

  const locked = (until: number | null | undefined, now: number): SignInResult | undefined =>
    until != null && until > now ? { ok: false, reason: 'locked', retryAfterMs: until - now } : undefined;

  /** The pause of `client` for `email`, by its address or its /64, if either is paused. */
  const paused = (email: string, client: Client, now: number): SignInResult | undefined =>
    locked(byAddress.get(pairKey(email, client.address))?.lockedUntil, now) ??
    (client.network === undefined ? undefined : locked(byAddress.get(pairKey(email, client.network))?.lockedUntil, now));

  function forgetPairs(email: string, client: Client): void {
    byAddress.clear(pairKey(email, client.address));
    if (client.network !== undefined) byAddress.clear(pairKey(email, client.network));
  }

  /**
   * A wrong password from `client`: the email's count goes up (`failEmail`, which says
   * when the email's lock ends if this failure locked it), then, unless the email is now
   * locked, those of its address and its /64. `onPaused` hears of a pause of either (one
   * that was paused already is refused before any password is checked: this one is new).
   */
  async function fail(email: string, client: Client, now: number, failEmail: () => Promise<number | null>, onPaused?: (until: number, scope: 'address' | 'network') => Promise<void>): Promise<SignInResult> {
    const emailLocked = locked(await failEmail(), now);
    if (emailLocked) {
      forgetPairs(email, client);
      return emailLocked;
    }
    const byItself = byAddress.fail(pairKey(email, client.address), MAX_FAILED_SIGN_INS, now).lockedUntil;
    const byNetwork = client.network === undefined ? null : byAddress.fail(pairKey(email, client.network), MAX_FAILED_SIGN_INS_PER_NETWORK, now).lockedUntil;
    const scope = locked(byItself, now) ? 'address' : locked(byNetwork, now) ? 'network' : undefined;
    if (scope === undefined) return { ok: false, reason: 'invalid' };
    const until = (scope === 'address' ? byItself : byNetwork) as number;
    await onPaused?.(until, scope);
    return locked(until, now) as SignInResult;
  }

  /** A member's wrong password, counted in the store: the end of the email's lock, if this one locked it. */
  async function failMember(member: MemberRecord, client: Client, now: number): Promise<number | null> {
    const failures = member.failedLogins + 1;
    if (failures < MAX_FAILED_SIGN_INS_PER_EMAIL) {
      await rt.store.updateMember(member.id, { failedLogins: failures });
      return null;
    }
    const until = now + LOCKOUT_MS;
    await rt.store.updateMember(member.id, { failedLogins: 0, lockedUntil: until });
    await auditLock(member, client, failures, until, 'email');
    return until;
  }

  function auditLock(member: MemberRecord, client: Client, failedSignIns: number, until: number, scope: 'address' | 'network' | 'email'): Promise<void> {
    // `address`: the email is paused for that client address only; `network`: for its /64; `email`: for every address.
    const network = scope === 'network' ? { network: client.network } : {};
    return audit(rt, ACTOR, 'member.locked', { accountId: member.accountId, detail: { email: member.email, scope, address: client.address, ...network, failedSignIns, until: new Date(until).toISOString() } });
  }

  // Attempts on one email run one after another: parallel guesses would otherwise all
  // read the same failure count before any of them wrote it, and never lock.
  const queues = new Map<string, Promise<SignInResult>>();

  return {
    async check(rawEmail, password, address) {
      const email = rawEmail.trim().toLowerCase();
      const previous = queues.get(email);
      const current = (previous ?? Promise.resolve()).catch(() => undefined).then(() => checkNow(email, password, address));
      queues.set(email, current);
      try {
        return await current;
      } finally {
        if (queues.get(email) === current) queues.delete(email);
      }
    },
  };

  async function checkNow(email: string, password: string, address: string): Promise<SignInResult> {
    const now = rt.clock();
    decoy ??= hashPassword('keygate decoy password');
    if (email === '' || email.length > MAX_EMAIL_LENGTH) {
      await verifyPassword(password, await decoy);
      return { ok: false, reason: 'invalid' };
    }
    const client = clientOf(address);
    const pairLocked = paused(email, client, now);
    if (pairLocked) return pairLocked;
    const member = await rt.store.findMemberByEmail(email);
    if (!member || member.passwordHash === null) {
      const stillLocked = locked(unknownEmails.get(email)?.lockedUntil, now);
      if (stillLocked) return stillLocked;
      await verifyPassword(password, await decoy);
      return fail(email, client, now, async () => unknownEmails.fail(email, MAX_FAILED_SIGN_INS_PER_EMAIL, now).lockedUntil);
    }
    const stillLocked = locked(member.lockedUntil, now);
    if (stillLocked) return stillLocked;
    if (!(await verifyPassword(password, member.passwordHash))) {
      return fail(email, client, now, () => failMember(member, client, now), (until, scope) => auditLock(member, client, member.failedLogins + 1, until, scope));
    }
    forgetPairs(email, client);
    if (member.failedLogins !== 0 || member.lockedUntil !== null) {
      await rt.store.updateMember(member.id, { failedLogins: 0, lockedUntil: null });
    }
    return { ok: true, member };
  }
}

/** A client as its guesses are counted: by its address (an IPv4 one however written) and, for IPv6, by its /64 too. */
interface Client {
  address: string;
  network: string | undefined;
}

function clientOf(address: string): Client {
  const group = addressGroup(address);
  return group.endsWith('::/64') ? { address, network: group } : { address: group, network: undefined };
}

/** The key of an email and a client address or /64 (a line break is in neither). */
function pairKey(email: string, addressOrNetwork: string): string {
  return `${email}\n${addressOrNetwork}`;
}
