/**
 * CSRF protection for every form. A signed-in member's forms carry an HMAC of their
 * session's own secret (stored with the session, never sent as a cookie); the sign-in
 * and invitation forms, which have no session yet, carry an HMAC of a random secret in
 * a short-lived HttpOnly SameSite=Strict cookie. A POST without a matching token is
 * refused with 403 before any handler runs.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { CookieSettings } from './session.js';

/** The hidden form field that carries the token. */
export const CSRF_FIELD = '_csrf';
const PRE_SESSION_MAX_AGE_S = 2 * 60 * 60;
const PURPOSE = 'keygate-dashboard-form';

export function newCsrfSecret(): string {
  return randomBytes(32).toString('base64url');
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
