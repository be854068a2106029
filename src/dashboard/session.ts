/**
 * Dashboard sessions. The cookie holds a random 256-bit id; the store keeps only its
 * SHA-256, so a leaked database cannot be replayed as cookies, nor sign forms (their
 * secret is derived from the id itself: csrf.ts `sessionFormSecret`). Sessions end after the
 * profile's `dashboard.sessionTtl` (absolute, not sliding) or at sign-out. Cookies are
 * HttpOnly and SameSite=Lax, and Secure (with the `__Host-` prefix) when
 * `dashboard.secureCookies` is on; Secure too in the answer to a request that came over
 * HTTPS.
 */
import { randomBytes } from 'node:crypto';
import type { CookieSerializeOptions } from '@fastify/cookie';
import type { FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import { sha256Hex } from '../keys/hash.js';
import type { AccountRecord, MemberRecord, SessionRecord } from '../store/store.js';
import { sessionFormSecret } from './csrf.js';
import { DASHBOARD_COOKIES } from './cookie-names.js';

const SESSION_ID_BYTES = 32;

export interface CookieSettings {
  sessionName: string;
  /** The cookie holding the CSRF secret of forms shown before sign-in. */
  formName: string;
  /** Attributes every dashboard cookie shares, in the answer to `request`. */
  attributes(request: FastifyRequest): CookieSerializeOptions;
}

/**
 * `overHttps`: whether a request reached the dashboard over HTTPS (behind a trusted proxy,
 * the scheme it says the visitor used). A cookie set in the answer to one is Secure even
 * without `secureCookies` (no https `publicUrl`): else the browser would send the session
 * to plain http on the same host too (a redirect to https on port 80, say), in clear.
 */
export function cookieSettings(rt: Pick<Runtime, 'config'>, overHttps: (request: FastifyRequest) => boolean): CookieSettings {
  const secure = rt.config.dashboard.secureCookies;
  return {
    // `__Host-` cookies cannot be set by a sibling subdomain (no cookie tossing).
    sessionName: secure ? DASHBOARD_COOKIES.secureSession : DASHBOARD_COOKIES.session,
    formName: secure ? DASHBOARD_COOKIES.secureForm : DASHBOARD_COOKIES.form,
    attributes: (request) => ({ path: '/', httpOnly: true, sameSite: 'lax', secure: secure || overHttps(request) }),
  };
}

/** Who is signed in, for one request. */
export interface Viewer {
  member: MemberRecord;
  session: SessionRecord;
  /** The member's account; null for an operator without one. */
  account: AccountRecord | null;
  /** What this session's forms are signed with (csrf.ts `sessionFormSecret`): derived from the cookie's session id, never stored. */
  formSecret: string;
}

function hashSessionId(id: string): string {
  return sha256Hex(id);
}

/**
 * A new session; the returned id goes into the cookie and nowhere else. It ends
 * `sessionTtl` from now, or at `endsAt` where it takes over from one that ends then (a
 * session that goes on under a new id is no longer for it).
 */
export async function startSession(rt: Runtime, member: MemberRecord, endsAt?: number): Promise<{ id: string; maxAgeSeconds: number }> {
  const now = rt.clock();
  const expiresAt = endsAt ?? now + rt.config.dashboard.sessionTtl;
  const id = randomBytes(SESSION_ID_BYTES).toString('base64url');
  await rt.store.deleteExpiredSessions(now);
  await rt.store.createSession({ idHash: hashSessionId(id), memberId: member.id, expiresAt, createdAt: now });
  return { id, maxAgeSeconds: Math.ceil((expiresAt - now) / 1000) };
}

/** The viewer behind a session cookie, or undefined if it is unknown or has expired. */
export async function loadViewer(rt: Runtime, id: string | undefined): Promise<Viewer | undefined> {
  if (!id || id.length > 128) return undefined;
  const session = await rt.store.getSession(hashSessionId(id));
  if (!session) return undefined;
  if (session.expiresAt <= rt.clock()) {
    await rt.store.deleteSession(session.idHash);
    return undefined;
  }
  const member = await rt.store.getMember(session.memberId);
  if (!member || member.passwordHash === null) return undefined;
  const account = member.accountId === null ? null : ((await rt.store.getAccount(member.accountId)) ?? null);
  // A member whose account was deleted has nothing left to see.
  if (member.role === 'member' && account === null) return undefined;
  return { member, session, account, formSecret: sessionFormSecret(id) };
}

export async function endSession(rt: Runtime, session: SessionRecord): Promise<void> {
  await rt.store.deleteSession(session.idHash);
}
