/**
 * CSRF protection for every form. A signed-in member's forms carry an HMAC of their
 * session's own secret, derived from the session id (which only the member's browser
 * holds: the store keeps its SHA-256 alone, so no copy of the store can make a token);
 * the sign-in and invitation forms, which have no session yet, carry an HMAC of a random
 * secret in a short-lived HttpOnly SameSite=Strict cookie. A POST without a matching
 * token is refused with 403 before any handler runs.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { CookieSettings } from './session.js';

/** The hidden form field that carries the token. */
export const CSRF_FIELD = '_csrf';
const PRE_SESSION_MAX_AGE_S = 2 * 60 * 60;
const PURPOSE = 'keygate-dashboard-form';
const SESSION_SECRET_PURPOSE = 'keygate-dashboard-session-form-secret';

export function newCsrfSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The secret of a signed-in session's forms (their tokens, and the ids their create forms
 * derive): an HMAC of the session id, under a fixed purpose. Nothing stored is enough to
 * compute it: not the id's SHA-256 (a hash of the id alone, not this), nor any secret.
 */
export function sessionFormSecret(sessionId: string): string {
  return createHmac('sha256', SESSION_SECRET_PURPOSE).update(sessionId).digest('base64url');
}

export function csrfToken(secret: string): string {
  return createHmac('sha256', secret).update(PURPOSE).digest('base64url');
}

export function csrfTokenMatches(secret: string, token: unknown): boolean {
  if (typeof token !== 'string' || token === '') return false;
  const expected = Buffer.from(csrfToken(secret));
  const actual = Buffer.from(token);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** The token for a form shown before sign-in; sets the pre-session cookie if needed. */
export function preSessionCsrfToken(request: FastifyRequest, reply: FastifyReply, cookies: CookieSettings): string {
  let secret = request.cookies[cookies.formName];
  if (!secret) {
    secret = newCsrfSecret();
    reply.setCookie(cookies.formName, secret, { ...cookies.attributes(request), sameSite: 'strict', maxAge: PRE_SESSION_MAX_AGE_S });
  }
  return csrfToken(secret);
}

export function preSessionSecret(request: FastifyRequest, cookies: CookieSettings): string | undefined {
  return request.cookies[cookies.formName];
}

/** The token submitted with a form (or, for scripts, in the X-CSRF-Token header). */
export function submittedToken(request: FastifyRequest): unknown {
  const body = request.body as Record<string, unknown> | undefined;
  return body?.[CSRF_FIELD] ?? request.headers['x-csrf-token'];
}
