/**
 * Members: people who sign in to the dashboard. The operator invites them (CLI or admin
 * API); the invitation link carries a one-time token (stored hashed) that lets the
 * member choose a password.
 */
import { DAY_MS } from '../config/duration.js';
import { randomBytes } from 'node:crypto';
import { sha256Hex } from '../keys/hash.js';
import type { Runtime } from '../runtime.js';
import type { MemberInviting, MemberRecord, MemberRole } from '../store/store.js';
import { newId } from '../ids.js';
import { emailRefusal, isEmailAddress } from '../members/email.js';
import { hashPassword, MIN_PASSWORD_LENGTH } from '../members/password.js';
import { signInEmailDigest } from '../members/lockout.js';
import { looksLikeOwnId, OperationError, otherKind } from './errors.js';
import { audit, type Actor } from './audit.js';
import { getAccount, isoTime } from './accounts.js';

export const INVITE_TTL_MS = 7 * DAY_MS;
export const RESET_TTL_MS = DAY_MS;

/**
 * How many of an account's latest events are searched for the invitation a form made:
 * a form sent again is sent within moments (a reload, a double click).
 */
const RECENT_EVENTS_SEARCHED = 200;

/** The invitation a dashboard form made already, and what became of its link. */
export interface InvitedByForm {
  email: string;
  /** When the form made it. */
  at: number;
  /** Still the member's pending invitation; used (a password was set with it); or ended (replaced, expired, member removed). */
  link: 'live' | 'used' | 'ended';
}

export interface Invitation {
  member: MemberRecord;
  /** One-time token, shown once; the link is `<dashboard>/invite/<token>`. */
  token: string;
  url: string;
  /** The pending invitation this one replaced (its link no longer works), if any. */
  replaced?: { accountId: string | null; role: MemberRole };
}

export function hashToken(token: string): string {
  return sha256Hex(token);
}

/** Where members reach the dashboard: `publicUrl`, else the address it listens on. */
export function dashboardUrl(rt: Pick<Runtime, 'config' | 'listening'>): string {
  const { dashboard } = rt.config;
  return (dashboard.publicUrl ?? rt.listening.dashboard ?? `http://${dashboard.listen.host}:${dashboard.listen.port}`).replace(/\/$/, '');
}

/**
 * What to say beside a dashboard link made where the profile turns the dashboard off: it
 * leads nowhere until keygate serves the dashboard. Undefined where it is on.
 */
export function dashboardOffNote(config: Pick<Runtime['config'], 'dashboard'>): string | undefined {
  if (config.dashboard.enabled) return undefined;
  return 'this profile turns the dashboard off (dashboard.enabled: false): the link opens nothing until keygate serves the dashboard';
}

/**
 * What to say beside a dashboard link made by a process that does not serve the dashboard
 * (the CLI) where the profile has it listen on port 0 and names no `publicUrl`: the link
 * then says port 0, which no browser reaches; the port is the one `keygate serve` chose.
 * Undefined where the link's address is a real one.
 */
export function dashboardPortZeroNote(rt: Pick<Runtime, 'config' | 'listening'>): string | undefined {
  const { dashboard } = rt.config;
  if (!dashboard.enabled || dashboard.publicUrl !== undefined || rt.listening.dashboard !== undefined || dashboard.listen.port !== 0) return undefined;
  return 'this profile has the dashboard listen on port 0 (any free port) and sets no dashboard.publicUrl, so the link names port 0: put the port keygate serve chose in its place (its "keygate is serving" log line names the dashboard\'s address), or set dashboard.publicUrl';
}

/**
 * An address as it is typed for a new member: trimmed, lower-cased, and held to the rule
 * of members/email.ts. No refusal repeats it: the dashboard's form shows it as typed, and
 * what was pasted into the field (a token, a password) goes nowhere else.
 */
function checkedEmail(raw: string): string {
  const email = raw.trim().toLowerCase();
  const refusal = emailRefusal(email);
  if (refusal !== undefined) throw new OperationError('invalid', refusal, undefined, { field: 'email', message: refusal });
  return email;
}

export async function inviteMember(rt: Runtime, input: { email: string; accountId: string | null; role?: MemberRole }, actor: Actor): Promise<Invitation> {
  const { email, role } = await checkedInvitation(rt, input);
  return rt.store.invitingMember(email, (store) => invite(rt, store, { email, role, accountId: input.accountId }, actor));
}

/**
 * Invites as a dashboard form asks, once per form (`form`: its id, an HMAC keyed with the
 * session's secret; only the output is kept): the form sent again — a reload, or a double
 * click whose two sends may reach two processes — finds the invitation it made, which is
 * answered instead. The form's id and the link's expiry go in the audit entry, so that
 * later sends can tell whether that link is still the one.
 */
export async function inviteMemberOnce(rt: Runtime, input: { email: string; accountId: string; role?: MemberRole }, actor: Actor, form: string): Promise<Invitation | { sentAlready: InvitedByForm }> {
  const { email, role } = await checkedInvitation(rt, input);
  return rt.store.invitingMember(email, async (store) => {
    const made = await invitationOfForm(rt, store, input.accountId, form);
    return made ? { sentAlready: made } : invite(rt, store, { email, role, accountId: input.accountId }, actor, form);
  });
}

async function checkedInvitation(rt: Runtime, input: { email: string; accountId: string | null; role?: MemberRole }): Promise<{ email: string; role: MemberRole }> {
  const email = checkedEmail(input.email);
  const role = input.role ?? 'member';
  if (role === 'member' && input.accountId === null) throw new OperationError('invalid', 'a member belongs to an account: give its id, or invite an operator (sees every account)');
  if (role === 'operator' && input.accountId !== null) throw new OperationError('invalid', 'an operator sees every account and belongs to none: leave the account out');
  if (input.accountId !== null) await getAccount(rt, input.accountId);
  return { email, role };
}

/** Writes the invitation (a new member, or a new link for one who has not set a password), inside `Store.invitingMember`. */
async function invite(rt: Runtime, store: MemberInviting, input: { email: string; accountId: string | null; role: MemberRole }, actor: Actor, form?: string): Promise<Invitation> {
  const { email, role } = input;
  const token = randomBytes(24).toString('base64url');
  const now = rt.clock();
  const existing = await store.findMemberByEmail(email);
  let member: MemberRecord;
  let replaced: Invitation['replaced'];
  if (existing) {
    if (existing.passwordHash !== null) {
      // Of which account: an operator inviting someone to one account may find them in another.
      if (existing.role === 'operator') throw new OperationError('conflict', `${email} is already an operator`);
      const of = existing.accountId === null ? '' : ` of “${(await store.getAccount(existing.accountId))?.name ?? existing.accountId}”`;
      throw new OperationError('conflict', `${email} is already a member${of}`);
    }
    replaced = { accountId: existing.accountId, role: existing.role };
    member = (await store.updateMember(existing.id, {
      inviteHash: hashToken(token),
      inviteExpiresAt: now + INVITE_TTL_MS,
      role,
      accountId: input.accountId,
    })) as MemberRecord;
  } else {
    member = {
      id: newId('mem'),
      accountId: input.accountId,
      email,
      passwordHash: null,
      role,
      inviteHash: hashToken(token),
      inviteExpiresAt: now + INVITE_TTL_MS,
      failedLogins: 0,
      lockedUntil: null,
      createdAt: now,
    };
    await store.createMember(member);
  }
  await audit({ store, clock: rt.clock }, actor, 'member.invited', { accountId: input.accountId, detail: { email, role, ...(replaced ? { replacedInvitationTo: replaced.accountId } : {}), ...(form === undefined ? {} : { form, linkExpiresAt: member.inviteExpiresAt }) } });
  return { member, token, url: `${dashboardUrl(rt)}/invite/${token}`, ...(replaced ? { replaced } : {}) };
}

/**
 * The invitation a form made, by the form's id in its audit entry (among the account's
 * latest events, newest first), and what became of its link: still the member's pending
 * invitation (same account, same expiry), used (the member of this account has set a
 * password, and no invitation of the address came after this one), or ended.
 */
async function invitationOfForm(rt: Runtime, store: MemberInviting, accountId: string, form: string): Promise<InvitedByForm | undefined> {
  const events = await store.listAudit({ accountId, limit: RECENT_EVENTS_SEARCHED });
  const at = events.findIndex((e) => e.action === 'member.invited' && e.detail.form === form);
  const entry = events[at];
  if (!entry) return undefined;
  const email = String(entry.detail.email);
  const member = await store.findMemberByEmail(email);
  const ours = member !== undefined && member.accountId === accountId && member.role === 'member';
  // Accepting a link clears its expiry: a used one is told by the password and by no later invitation having replaced it.
  const replaced = events.slice(0, at).some((e) => e.action === 'member.invited' && e.detail.email === email);
  const pending = ours && member.passwordHash === null && member.inviteExpiresAt === entry.detail.linkExpiresAt && (member.inviteExpiresAt ?? 0) > rt.clock();
  const link = pending ? 'live' : ours && member.passwordHash !== null && !replaced ? 'used' : 'ended';
  return { email, at: entry.at, link };
}

/** A member as an operator names one: by id, or by e-mail address (any case). */
type MemberRef = { id: string } | { email: string };

async function findMember(rt: Runtime, ref: MemberRef): Promise<MemberRecord> {
  const member = 'id' in ref ? await rt.store.getMember(ref.id) : await rt.store.findMemberByEmail(ref.email.trim().toLowerCase());
  if (!member) throw noMember(ref);
  return member;
}

/** Repeats the id or address asked for only when it looks like one (see `notFound`). */
function noMember(ref: MemberRef): OperationError {
  if ('id' in ref) return new OperationError('not_found', `${looksLikeOwnId(ref.id) ? `no member ${ref.id}` : 'no such member'}${otherKind('member', ref.id)}`);
  const email = ref.email.trim();
  return new OperationError('not_found', isEmailAddress(email) ? `no member ${email}` : 'no such member');
}

/**
 * A one-time link for a member who forgot their password: the same page as an
 * invitation. The old password keeps working until the new one is set (to lock someone
 * out, remove them: removeMember).
 */
export async function passwordResetLink(rt: Runtime, email: string, actor: Actor): Promise<Invitation> {
  const member = await findMember(rt, { email });
  const token = randomBytes(24).toString('base64url');
  const updated = (await rt.store.updateMember(member.id, { inviteHash: hashToken(token), inviteExpiresAt: rt.clock() + RESET_TTL_MS })) as MemberRecord;
  await audit(rt, actor, 'member.password_reset', { accountId: member.accountId, detail: { email: member.email } });
  return { member: updated, token, url: `${dashboardUrl(rt)}/invite/${token}` };
}

/**
 * Removes a member (by id or e-mail): signed out everywhere, and neither their password
 * nor a pending invitation or reset link works any more.
 */
export async function removeMember(rt: Runtime, ref: MemberRef, actor: Actor): Promise<MemberRecord> {
  const member = await findMember(rt, ref);
  // Gone meanwhile (removed by another operator): no member either.
  if (!(await rt.store.deleteMember(member.id))) throw noMember(ref);
  // The id too: a page asked to remove that member again finds who removed them, and when.
  // `invitation`: what was removed was an invitation not yet accepted (withdrawn, as the dashboard says).
  await audit(rt, actor, 'member.removed', { accountId: member.accountId, detail: { email: member.email, role: member.role, memberId: member.id, ...(member.passwordHash === null ? { invitation: true } : {}) } });
  return member;
}

/**
 * Lifts every sign-in pause of a member's email (after wrong passwords from anywhere, and
 * those of single client addresses or /64s; all kept in the store, so every process sees
 * them end) and forgets the wrong passwords counted towards them. `lifted`: whether a
 * pause was in force.
 */
export async function unlockMember(rt: Runtime, ref: MemberRef, actor: Actor): Promise<{ member: MemberRecord; lifted: boolean }> {
  const member = await findMember(rt, ref);
  const now = rt.clock();
  // The email's own lock, and the pauses of the addresses (and /64s) that guessed at it.
  const emailDigest = signInEmailDigest(rt.hashKey, member.email);
  const paused = (await rt.store.listSignInFailures(emailDigest)).some((record) => record.lockedUntil !== null && record.lockedUntil > now);
  const lifted = paused || lockedUntilOf(member, now) !== null;
  await rt.store.deleteSignInFailures(emailDigest);
  const updated = (await rt.store.updateMember(member.id, { failedLogins: 0, lockedUntil: null })) ?? member;
  await audit(rt, actor, 'member.unlocked', { accountId: member.accountId, detail: { email: member.email, lifted } });
  return { member: updated, lifted };
}

/** Whether sign-ins with a member's email are paused for every address now: until when, or null. */
export function lockedUntilOf(member: MemberRecord, now: number): number | null {
  return member.lockedUntil !== null && member.lockedUntil > now ? member.lockedUntil : null;
}

/** A member as the admin API and `members list --json` give it (no secrets: no hashes, no links); times in ISO 8601. */
export function memberOut(member: MemberRecord, now: number) {
  const lockedUntil = lockedUntilOf(member, now);
  return {
    id: member.id,
    email: member.email,
    accountId: member.accountId,
    role: member.role,
    status: member.passwordHash ? ('active' as const) : ('invited' as const),
    createdAt: isoTime(member.createdAt) as string,
    lockedUntil: isoTime(lockedUntil),
  };
}

/**
 * Sets the password of an invited member, or of one who asked for a reset; the token
 * stops working. The email's own pause is lifted, and so are those of `sources` (the
 * address and /64 the password was set from): whoever was paused there for wrong guesses
 * at the old password has just proved they hold the link. Other addresses' pauses stand:
 * a guesser elsewhere gets no fresh tries against the new password. `client.address` is
 * what the audit event names the change as made from (the dashboard's reading of it).
 */
export async function acceptInvitation(rt: Runtime, token: string, password: string, client: { address: string; sources: readonly string[] } | null = null): Promise<MemberRecord> {
  const inviteHash = hashToken(token);
  const member = await rt.store.findMemberByInvite(inviteHash);
  if (!member || member.inviteExpiresAt === null || member.inviteExpiresAt <= rt.clock()) throw linkNotWorking();
  checkNewPassword(password);
  const reset = member.passwordHash !== null;
  const passwordHash = await hashPassword(password);
  // Used in another tab, withdrawn or expired while the password was hashed: the first to set one wins.
  const updated = await rt.store.useMemberInvite(member.id, inviteHash, rt.clock(), passwordHash);
  if (!updated) throw linkNotWorking();
  // Whoever was signed in with the old password is signed out.
  await rt.store.deleteSessionsOf(member.id);
  if (client !== null && client.sources.length > 0) await rt.store.deleteSignInFailures(signInEmailDigest(rt.hashKey, member.email), client.sources);
  await audit(rt, { name: member.email, address: client?.address ?? null }, reset ? 'member.password_changed' : 'member.joined', { accountId: member.accountId, detail: { email: member.email, ...(reset ? { via: 'reset_link' } : {}) } });
  return updated;
}

function linkNotWorking(): OperationError {
  return new OperationError('not_found', 'this invitation link is invalid or has expired; ask for a new one');
}

/**
 * What every password a member chooses must be (from an invitation, a reset link, or
 * changing their own): at least MIN_PASSWORD_LENGTH characters, and more than spaces.
 */
export function checkNewPassword(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) throw new OperationError('invalid', `choose a password of at least ${MIN_PASSWORD_LENGTH} characters`);
  if (password.trim() === '') throw new OperationError('invalid', 'choose a password that is more than spaces');
}

/**
 * A signed-in member changes their own password. `verifiedCurrent` is their current
 * password, already checked as a sign-in checks it (the dashboard's sign-in checker, so
 * that a wrong one counts towards the email's pauses: a stolen session is no unlimited
 * way to guess it); here it only tells whether the new one is the same. Every session of
 * the member ends, so one stolen before dies now (the caller starts a new one for
 * whoever asked), and so does a reset link not yet used. Audited as
 * `member.password_changed` with `via: current_password` (a reset link's says `reset_link`),
 * from `address` (the client's, as the dashboard reads it).
 */
export async function changePassword(rt: Runtime, member: MemberRecord, verifiedCurrent: string, password: string, address: string | null = null): Promise<MemberRecord> {
  checkNewPassword(password);
  // scrypt hashes the NFKC form (members/password.ts): equal forms are the same password.
  if (password.normalize('NFKC') === verifiedCurrent.normalize('NFKC')) throw new OperationError('invalid', 'the new password is the same as the current one: choose a different one');
  // A reset link not yet used stops working too: it would replace the password just chosen.
  const updated = await rt.store.updateMember(member.id, { passwordHash: await hashPassword(password), inviteHash: null, inviteExpiresAt: null });
  // Removed meanwhile (by an operator): nothing to change.
  if (!updated) throw noMember({ id: member.id });
  await rt.store.deleteSessionsOf(member.id);
  await audit(rt, { name: member.email, address }, 'member.password_changed', { accountId: member.accountId, detail: { email: member.email, via: 'current_password' } });
  return updated;
}
