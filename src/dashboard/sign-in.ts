/**
 * Checking an email and password, with lockouts that slow guessing without handing one
 * address a way to keep a member out (several can still: see the third point):
 *
 * - after MAX_FAILED_SIGN_INS wrong passwords in a row for an email from one client
 *   address, that address is paused for that email for LOCKOUT_MS: whoever is
 *   guessing, not the member signing in from elsewhere;
 * - an IPv6 host can pick a new address in its /64 for every try: after
 *   MAX_FAILED_SIGN_INS_PER_NETWORK in a row from one /64 the /64 is paused for that
 *   email, before such a host could lock the email itself (a member in the same /64 then
 *   waits too, as one behind the same IPv4 address does);
 * - after MAX_FAILED_SIGN_INS_PER_EMAIL wrong passwords in a row for an email from
 *   anywhere (guesses spread over many addresses), the email itself is paused for
 *   LOCKOUT_MS, for every address (kept in the store for members, shared by processes).
 *
 * Both are recorded in the audit log for members. Unknown emails get the same answers,
 * the same lockouts and the same scrypt work, so the sign-in form never tells whether an
 * email belongs to a member. A right password clears the email's count and those of that
 * address and its /64. Every count is in the store, so the processes behind a load
 * balancer count the same guesses, and `members unlock` lifts every pause of an email;
 * counts without a new failure for a day are forgotten. The store knows an email by its
 * keyed digest only (`signInEmailDigest`): what is typed in the field may be a password.
 * What cannot be anyone's address (no `@`: a password or a key pasted there) is not
 * counted at all.
 *
 * Apart from those, one client address (or /64) makes at most MAX_SIGN_INS_PER_ADDRESS
 * attempts a minute in a process, whatever the emails: beyond, it is told to wait before
 * any password is hashed or anything is written (a client trying a new email each time
 * would otherwise spend a scrypt, and a stored record, per request).
 */
import type { Runtime } from '../runtime.js';
import type { MemberRecord, SignInFailureRecord } from '../store/store.js';
import { holdsNul } from '../store/unstorable-text.js';
import { hashPassword, verifyPassword } from '../members/password.js';
import { audit } from '../operations/audit.js';
import { addressGroup } from '../gateway/trusted-proxies.js';
import { LOCKOUT_MS, MAX_FAILED_SIGN_INS, MAX_FAILED_SIGN_INS_PER_EMAIL, MAX_FAILED_SIGN_INS_PER_NETWORK, MAX_SIGN_INS_PER_ADDRESS, SIGN_IN_WINDOW_MS, signInEmailDigest } from '../members/lockout.js';

/**
 * No address is longer (RFC 5321); longer input is refused without being remembered. So is
 * one with a NUL: no store keeps text with one (store/unstorable-text.ts), so no member has
 * such an address, and its failures could not be counted. And one without an `@`, which no
 * member's address lacks (operations/members.ts `checkedEmail`): a password or a key
 * pasted into the field, say.
 */
const MAX_EMAIL_LENGTH = 254;
/** Failures in a row are forgotten a day after the last one (and a pause once it has ended). */
const FORGET_AFTER_MS = 24 * 60 * 60_000;
/** How often a process clears out forgotten records (on a failed sign-in). */
const PRUNE_EVERY_MS = 60_000;
/** The source of guesses at an email no member has, from any address. */
const ANYWHERE = '*';
const ACTOR = 'dashboard';
/**
 * The most client addresses whose attempts are counted at once: past it, the one counted
 * longest ago is forgotten (a client with a whole IPv6 /48 to try from cannot grow it, and
 * per-address counts are no defence against so many addresses anyway).
 */
const MAX_ADDRESSES_COUNTED = 50_000;

export type SignInResult =
  | { ok: true; member: MemberRecord }
  | { ok: false; reason: 'invalid' }
  | { ok: false; reason: 'locked'; until: number; retryAfterMs: number }
  /** Too many attempts from the client's address (or /64) this minute, whatever the emails. */
  | { ok: false; reason: 'throttled'; retryAfterMs: number };

export interface SignInChecker {
  /** `address`: the client's, as the dashboard sees it (behind trusted proxies, the one they name). */
  check(email: string, password: string, address: string): Promise<SignInResult>;
}

export function createSignInChecker(rt: Runtime): SignInChecker {
  // A real scrypt hash to verify against when the email is unknown (equal timing).
  let decoy: Promise<string> | undefined;
  let prunedAt = -Infinity;

  const locked = (until: number | null | undefined, now: number): SignInResult | undefined =>
    until != null && until > now ? { ok: false, reason: 'locked', until, retryAfterMs: until - now } : undefined;

  /**
   * One more failure from `source`, counted by the store in one statement (processes
   * guessing at once each count theirs): paused for LOCKOUT_MS once `max` are reached in
   * a row (a pause that has ended starts the count afresh; so does a day without one).
   */
  async function failSource(emailDigest: string, source: string, max: number, now: number): Promise<SignInFailureRecord> {
    const counted = await rt.store.countSignInFailure(emailDigest, source, now, now - FORGET_AFTER_MS);
    if (now - prunedAt >= PRUNE_EVERY_MS) {
      prunedAt = now;
      // Housekeeping: a failure here is no reason to fail the sign-in.
      rt.store.pruneSignInFailures(now - FORGET_AFTER_MS).catch((error: unknown) => rt.log.warn({ err: error }, 'could not forget old sign-in failures'));
    }
    if (counted.failures < max) return counted;
    const paused: SignInFailureRecord = { emailDigest, source, failures: 0, lockedUntil: now + LOCKOUT_MS, updatedAt: now };
    await rt.store.putSignInFailure(paused);
    return paused;
  }

  function forgetPairs(emailDigest: string, client: Client): Promise<void> {
    return rt.store.deleteSignInFailures(emailDigest, pairSources(client));
  }

  /**
   * A wrong password from `client`: the email's count goes up (`failEmail`, which says
   * when the email's lock ends if this failure locked it), then, unless the email is now
   * locked, those of its address and its /64. `onPaused` hears of a pause of either (one
   * that was paused already is refused before any password is checked: this one is new).
   */
  async function fail(emailDigest: string, client: Client, now: number, failEmail: () => Promise<number | null>, onPaused?: (until: number, scope: 'address' | 'network') => Promise<void>): Promise<SignInResult> {
    const emailLocked = locked(await failEmail(), now);
    if (emailLocked) {
      await forgetPairs(emailDigest, client);
      return emailLocked;
    }
    const byItself = (await failSource(emailDigest, client.address, MAX_FAILED_SIGN_INS, now)).lockedUntil;
    const byNetwork = client.network === undefined ? null : (await failSource(emailDigest, client.network, MAX_FAILED_SIGN_INS_PER_NETWORK, now)).lockedUntil;
    const scope = locked(byItself, now) ? 'address' : locked(byNetwork, now) ? 'network' : undefined;
    if (scope === undefined) return { ok: false, reason: 'invalid' };
    const until = (scope === 'address' ? byItself : byNetwork) as number;
    await onPaused?.(until, scope);
    return locked(until, now) as SignInResult;
  }

  /** A member's wrong password, counted in the store (in one statement): the end of the email's lock, if this one locked it. */
  async function failMember(member: MemberRecord, client: Client, now: number): Promise<number | null> {
    const failures = await rt.store.countMemberFailure(member.id);
    if (failures < MAX_FAILED_SIGN_INS_PER_EMAIL) return null;
    const until = now + LOCKOUT_MS;
    await rt.store.updateMember(member.id, { failedLogins: 0, lockedUntil: until });
    await auditLock(member, client, failures, until, 'email');
    return until;
  }

  function auditLock(member: MemberRecord, client: Client, failedSignIns: number, until: number, scope: 'address' | 'network' | 'email'): Promise<void> {
    // `address`: the email is paused for that client address only; `network`: for its /64; `email`: for every address.
    const network = scope === 'network' ? { network: client.network } : {};
    return audit(rt, { name: ACTOR, address: client.address }, 'member.locked', { accountId: member.accountId, detail: { email: member.email, scope, address: client.address, ...network, failedSignIns, until: new Date(until).toISOString() } });
  }

  // Attempts on one email run one after another: parallel guesses would otherwise all
  // read the same failure count before any of them wrote it, and never lock.
  const queues = new Map<string, Promise<SignInResult>>();

  /**
   * Attempts this minute by client address (an IPv4 one, or an IPv6 /64): a count, and when
   * its minute began. In the order the minutes began (an entry is set again, at the end,
   * when its minute starts afresh), so those that have ended are all at the front.
   */
  const attempts = new Map<string, { count: number; since: number }>();
  /** How long the client must wait before its next attempt, if it has made its minute's worth; else counts this one. */
  function throttled(address: string): SignInResult | undefined {
    const now = rt.clock();
    const client = clientOf(address);
    const source = client.network ?? client.address;
    let counted = attempts.get(source);
    if (counted === undefined || now - counted.since >= SIGN_IN_WINDOW_MS) {
      attempts.delete(source);
      for (const [at, old] of attempts) {
        if (now - old.since < SIGN_IN_WINDOW_MS && attempts.size < MAX_ADDRESSES_COUNTED) break;
        attempts.delete(at);
      }
      counted = { count: 0, since: now };
      attempts.set(source, counted);
    }
    if (counted.count >= MAX_SIGN_INS_PER_ADDRESS) return { ok: false, reason: 'throttled', retryAfterMs: counted.since + SIGN_IN_WINDOW_MS - now };
    counted.count += 1;
    return undefined;
  }

  return {
    async check(rawEmail, password, address) {
      const wait = throttled(address);
      if (wait) return wait;
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
    if (email.length > MAX_EMAIL_LENGTH || !email.includes('@') || holdsNul(email)) {
      await verifyPassword(password, await decoy);
      return { ok: false, reason: 'invalid' };
    }
    const emailDigest = signInEmailDigest(rt.hashKey, email);
    const client = clientOf(address);
    const pairs = pairSources(client);
    const held = new Map((await rt.store.listSignInFailures(emailDigest, [...pairs, ANYWHERE])).map((record) => [record.source, record]));
    // Paused for this address, or its /64: whichever pause ends later.
    const pairLocked = locked(Math.max(...pairs.map((source) => held.get(source)?.lockedUntil ?? 0)), now);
    if (pairLocked) return pairLocked;
    const member = await rt.store.findMemberByEmail(email);
    if (!member || member.passwordHash === null) {
      const stillLocked = locked(held.get(ANYWHERE)?.lockedUntil, now);
      if (stillLocked) return stillLocked;
      await verifyPassword(password, await decoy);
      return fail(emailDigest, client, now, async () => (await failSource(emailDigest, ANYWHERE, MAX_FAILED_SIGN_INS_PER_EMAIL, now)).lockedUntil);
    }
    const stillLocked = locked(member.lockedUntil, now);
    if (stillLocked) return stillLocked;
    if (!(await verifyPassword(password, member.passwordHash))) {
      return fail(emailDigest, client, now, () => failMember(member, client, now), (until, scope) => auditLock(member, client, member.failedLogins + 1, until, scope));
    }
    // Nothing counted for this address or its /64 when the check began: nothing to forget.
    if (pairs.some((source) => held.has(source))) await forgetPairs(emailDigest, client);
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

/** The sources the guesses from a client address are counted under (its address, and its /64 if it has one). */
export function signInSources(address: string): string[] {
  return pairSources(clientOf(address));
}

/** The sources a client's guesses are counted under: its address, and its /64 if it has one. */
function pairSources(client: Client): string[] {
  return client.network === undefined ? [client.address] : [client.address, client.network];
}
