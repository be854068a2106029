/**
 * Checking an email and password, with a lockout: after MAX_FAILED_SIGN_INS wrong
 * passwords in a row the email is locked for LOCKOUT_MS. Unknown emails get the same
 * answers, the same lockout (remembered in memory) and the same scrypt work, so the
 * sign-in form never tells whether an email belongs to a member.
 */
import type { Runtime } from '../runtime.js';
import type { MemberRecord } from '../store/store.js';
import { hashPassword, verifyPassword } from '../members/password.js';
import { audit } from '../operations/audit.js';

export const MAX_FAILED_SIGN_INS = 5;
export const LOCKOUT_MS = 15 * 60_000;
/** Unknown emails remembered for the lockout; the oldest are forgotten first. */
const MAX_TRACKED_UNKNOWN = 10_000;
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
  check(email: string, password: string): Promise<SignInResult>;
}

export function createSignInChecker(rt: Runtime): SignInChecker {
  const unknown = new Map<string, Attempts>();
  // A real scrypt hash to verify against when the email is unknown (equal timing).
  let decoy: Promise<string> | undefined;

  const locked = (until: number | null, now: number): SignInResult | undefined =>
    until !== null && until > now ? { ok: false, reason: 'locked', retryAfterMs: until - now } : undefined;

  async function failUnknown(email: string, now: number): Promise<SignInResult> {
    const attempts = unknown.get(email) ?? { failures: 0, lockedUntil: null };
    unknown.delete(email);
    attempts.failures += 1;
    if (attempts.failures >= MAX_FAILED_SIGN_INS) attempts.lockedUntil = now + LOCKOUT_MS;
    unknown.set(email, attempts);
    if (unknown.size > MAX_TRACKED_UNKNOWN) unknown.delete(unknown.keys().next().value as string);
    return locked(attempts.lockedUntil, now) ?? { ok: false, reason: 'invalid' };
  }

  async function failMember(member: MemberRecord, now: number): Promise<SignInResult> {
    const failures = member.failedLogins + 1;
    if (failures < MAX_FAILED_SIGN_INS) {
      await rt.store.updateMember(member.id, { failedLogins: failures });
      return { ok: false, reason: 'invalid' };
    }
    const until = now + LOCKOUT_MS;
    await rt.store.updateMember(member.id, { failedLogins: 0, lockedUntil: until });
    await audit(rt, ACTOR, 'member.locked', { accountId: member.accountId, detail: { email: member.email, failedSignIns: failures, until: new Date(until).toISOString() } });
    return { ok: false, reason: 'locked', retryAfterMs: LOCKOUT_MS };
  }

  // Attempts on one email run one after another: parallel guesses would otherwise all
  // read the same failure count before any of them wrote it, and never lock.
  const queues = new Map<string, Promise<SignInResult>>();

  return {
    async check(rawEmail, password) {
      const email = rawEmail.trim().toLowerCase();
      const previous = queues.get(email);
      const current = (previous ?? Promise.resolve()).catch(() => undefined).then(() => checkNow(email, password));
      queues.set(email, current);
      try {
        return await current;
      } finally {
        if (queues.get(email) === current) queues.delete(email);
      }
    },
  };

  async function checkNow(email: string, password: string): Promise<SignInResult> {
    const now = rt.clock();
    decoy ??= hashPassword('keygate decoy password');
    if (email === '' || email.length > MAX_EMAIL_LENGTH) {
      await verifyPassword(password, await decoy);
      return { ok: false, reason: 'invalid' };
    }
    const member = await rt.store.findMemberByEmail(email);
    if (!member || member.passwordHash === null) {
      const tracked = unknown.get(email);
      const stillLocked = locked(tracked?.lockedUntil ?? null, now);
      if (stillLocked) return stillLocked;
      await verifyPassword(password, await decoy);
      return failUnknown(email, now);
    }
    const stillLocked = locked(member.lockedUntil, now);
    if (stillLocked) return stillLocked;
    if (!(await verifyPassword(password, member.passwordHash))) return failMember(member, now);
    if (member.failedLogins !== 0 || member.lockedUntil !== null) {
      await rt.store.updateMember(member.id, { failedLogins: 0, lockedUntil: null });
    }
    return { ok: true, member };
  }
}
