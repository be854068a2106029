/**
 * What every dashboard page shares: the runtime, cookie settings and sign-in checker,
 * who is signed in (`request.viewer`), the guards that decide what a viewer may see,
 * one-shot notices carried across a redirect, and form fields read as their forms send
 * them (anything else is refused).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Runtime } from '../runtime.js';
import type { AccountRecord } from '../store/store.js';
import type { CookieSettings, Viewer } from './session.js';
import type { SignInChecker } from './sign-in.js';
import { csrfToken, CSRF_FIELD, preSessionCsrfToken } from './csrf.js';
import { html, type Html } from './html.js';
import { DASHBOARD_COOKIES } from './cookie-names.js';
import { OperationError } from '../operations/errors.js';
import type { Actor } from '../operations/audit.js';
import { orList } from '../list-words.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is signed in; null on public pages for anonymous visitors. */
    viewer: Viewer | null;
  }
  interface FastifyContextConfig {
    /** Reachable without signing in (sign-in, invitation); its forms use pre-session CSRF. */
    public?: boolean;
  }
}

export interface Dashboard {
  rt: Runtime;
  cookies: CookieSettings;
  /** Signs the notices carried in a cookie: kept in the store, so every process signs alike. */
  noticeKey: string;
  signIn: SignInChecker;
  /** The client's address (behind trusted proxies, the one they name): what sign-in lockouts are counted by, and what the audit log names a change as made from. */
  addressOf(request: FastifyRequest): string;
}

/** Thrown by handlers for anything the viewer may not see: rendered as a plain 404. */
export class PageNotFound extends Error {
  constructor() {
    super('page not found');
    this.name = 'PageNotFound';
  }
}

export function viewerOf(request: FastifyRequest): Viewer {
  if (!request.viewer) throw new PageNotFound();
  return request.viewer;
}

/** The signed-in member's own account; operators without one have no keys page. */
export function ownAccount(request: FastifyRequest): { viewer: Viewer; account: AccountRecord } {
  const viewer = viewerOf(request);
  if (!viewer.account) throw new PageNotFound();
  return { viewer, account: viewer.account };
}

/** Operator pages do not exist for members. */
export function operatorOf(request: FastifyRequest): Viewer {
  const viewer = viewerOf(request);
  if (viewer.member.role !== 'operator') throw new PageNotFound();
  return viewer;
}

/** Who the audit log names for the viewer's actions: their email, and the address the request came from. */
export function actorOf(dash: Dashboard, request: FastifyRequest): Actor {
  return { name: viewerOf(request).member.email, address: dash.addressOf(request) };
}

/** The hidden CSRF field for a signed-in viewer's forms. */
export function csrfField(request: FastifyRequest): Html {
  return html`<input type="hidden" name="${CSRF_FIELD}" value="${csrfToken(viewerOf(request).formSecret)}">`;
}

/** The hidden CSRF field for forms shown before sign-in. */
export function preSessionCsrfField(dash: Dashboard, request: FastifyRequest, reply: FastifyReply): Html {
  return html`<input type="hidden" name="${CSRF_FIELD}" value="${preSessionCsrfToken(request, reply, dash.cookies)}">`;
}

export type NoticeKind = 'success' | 'error' | 'warning' | 'info';
export interface Notice {
  kind: NoticeKind;
  text: string;
  /**
   * Parts of `text` shown as code, each at its first place after the one before: a key's
   * hint, read character by character, is set in monospace as the keys table sets it.
   */
  code?: readonly string[];
}

const FLASH_COOKIE = DASHBOARD_COOKIES.notice;
const FLASH_MAX_AGE_S = 60;
const NOTICE_KINDS: readonly NoticeKind[] = ['success', 'error', 'warning', 'info'];

/**
 * The notice cookie's signature. A page on another port of the host (or a sibling subdomain)
 * can set the cookie, so an unsigned notice would be words of its choosing shown as the
 * dashboard's. Signed for the session cookie the next page comes with (none: ''), so a
 * notice one browser was given, naming a key its member called anything at all, does not
 * show in another's.
 */
function noticeSignature(dash: Dashboard, session: string, json: string): string {
  return createHmac('sha256', dash.noticeKey).update(`${session}\n${json}`).digest('base64url');
}

/**
 * A notice shown once on the next page (after a redirect). Never put secrets in one.
 * `session`: the session cookie that page comes with, where this answer sets another or
 * clears it (by default the signed-in viewer's, or none).
 */
export function setNotice(dash: Dashboard, reply: FastifyReply, notice: Notice, session?: string): void {
  const request = reply.request;
  const next = session ?? (request.viewer ? (request.cookies[dash.cookies.sessionName] ?? '') : '');
  const json = JSON.stringify(notice);
  reply.setCookie(FLASH_COOKIE, `${noticeSignature(dash, next, json)}.${json}`, { ...dash.cookies.attributes(request), maxAge: FLASH_MAX_AGE_S });
}

/** The notice `setNotice` left for this page, if it is this dashboard's for this session; a GET takes it (shown once). */
export function takeNotice(dash: Dashboard, request: FastifyRequest, reply: FastifyReply): Notice | undefined {
  const value = request.cookies[FLASH_COOKIE];
  if (value === undefined) return undefined;
  // A HEAD (a link prefetcher, a monitor) is answered as a GET, but leaves the notice to the GET that shows it.
  if (request.method !== 'HEAD') reply.clearCookie(FLASH_COOKIE, dash.cookies.attributes(request));
  const dot = value.indexOf('.');
  const json = value.slice(dot + 1);
  const expected = Buffer.from(noticeSignature(dash, request.cookies[dash.cookies.sessionName] ?? '', json));
  const sent = Buffer.from(dot === -1 ? '' : value.slice(0, dot));
  // One this dashboard did not sign (or signed for another session) is not shown.
  if (sent.length !== expected.length || !timingSafeEqual(sent, expected)) return undefined;
  try {
    const parsed = JSON.parse(json) as Partial<Notice>;
    const code = parsed.code === undefined || (Array.isArray(parsed.code) && parsed.code.every((part) => typeof part === 'string'));
    if (typeof parsed.text === 'string' && NOTICE_KINDS.includes(parsed.kind as NoticeKind) && code) return parsed as Notice;
  } catch {
    // A tampered or stale cookie is simply ignored.
  }
  return undefined;
}

/** 303 See Other: the browser follows with a GET, so a reload never re-posts a form. */
export function redirect(reply: FastifyReply, to: string): FastifyReply {
  return reply.code(303).header('location', to).send();
}

/** What the dashboard says when a session has ended (or a form arrives without one). */
export const SESSION_ENDED: Notice = { kind: 'info', text: 'Your session has ended. Sign in again to continue.' };

/**
 * A page of this dashboard that signing in may lead back to: a path on this host (not
 * `//host`, `/\host` or anything a browser would read as another site), without control
 * characters, and not the sign-in pages themselves; undefined for anything else.
 */
export function returnPath(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > 2_000 || !/^\/(?![/\\])[\x21-\x7e]*$/.test(value)) return undefined;
  if (value.includes('\\') || /^\/sign-(?:in|out)(?:[/?#]|$)/.test(value)) return undefined;
  return value;
}

/** The sign-in page, leading back to `path` once signed in (when it is a page to go back to). */
export function signInLeadingTo(path: string): string {
  const back = returnPath(path);
  return back === undefined || back === '/' ? '/sign-in' : `/sign-in?next=${encodeURIComponent(back)}`;
}

/**
 * The page of this dashboard a form was sent from, to lead back to once signed in again:
 * the path of its Referer (Referrer-Policy: same-origin sends the whole address to this
 * origin only) when that names `origin`, the dashboard's as the visitor reached it
 * (`publicUrl`'s, or the one a trusted proxy names: not the Host a proxy rewrote);
 * undefined otherwise.
 */
export function formPage(request: FastifyRequest, origin: string | undefined): string | undefined {
  const referer = request.headers.referer;
  if (referer === undefined || origin === undefined) return undefined;
  try {
    const from = new URL(referer);
    return from.origin === origin ? returnPath(from.pathname + from.search) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One form field's value: absent is undefined. Fields arrive as a string or, when a
 * name is repeated, an array; a field its form sends once but that came more than once
 * (a hand-edited form) is refused, since which value was meant cannot be known.
 */
function single(body: unknown, name: string, from = 'the form sent'): string | undefined {
  const value = (body as Record<string, unknown> | undefined)?.[name];
  if (Array.isArray(value)) throw new OperationError('invalid', `${from} “${name}” more than once; it takes one value`);
  return typeof value === 'string' ? value : undefined;
}

/** One parameter of a page's address (`?after=…`): absent is undefined; given twice, refused as a form field is. */
export function queryValue(query: unknown, name: string): string | undefined {
  return single(query, name, 'the address gives');
}

/** A field sent once (a text box, a password); '' when absent. */
export function field(body: unknown, name: string): string {
  return single(body, name) ?? '';
}

/** A field that may repeat (checkboxes sharing a name, such as scopes). */
export function fields(body: unknown, name: string): string[] {
  const value = (body as Record<string, unknown> | undefined)?.[name];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return typeof value === 'string' ? [value] : [];
}

/**
 * A field whose form offers fixed choices (a select, radio buttons, a hidden switch):
 * the value sent if it is one of `offered`; `absent` if the field was not sent at all
 * (a form that does not show it); undefined for anything else, which only a
 * hand-edited form sends (say so with `notOffered`).
 *
 * @example
 * const expiry = oneOf(request.body, 'expiry', ['never', '30d'], 'never');
 */
export function oneOf<C extends string>(body: unknown, name: string, offered: readonly C[], absent?: C): C | undefined {
  const value = single(body, name);
  if (value === undefined) return absent;
  return (offered as readonly string[]).includes(value) ? (value as C) : undefined;
}

/** Why a choice was refused, naming the field as the form labels it and what it offers. */
export function notOffered(label: string, offered: readonly string[]): string {
  return `“${label}” must be one of the choices the form offers: ${orList(offered)}.`;
}
