/**
 * The dashboard listener: server-rendered pages where members manage their account's
 * keys and read its usage, and operators manage every account. No client framework and
 * nothing fetched from elsewhere: one stylesheet, one small script, forms that work
 * without it.
 *
 * Every request passes, in order: security headers → the name it was addressed to is one
 * the dashboard is known by (host-names.ts) → who is signed in (session
 * cookie) → sign-in required except on public pages (nothing is done without a session)
 * → CSRF check on every POST → the page. Anything the viewer may not see is a plain 404.
 */
import { isUtf8 } from 'node:buffer';
import { STATUS_CODES } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import cookie from '@fastify/cookie';
import { parse as parseForm } from 'fast-querystring';
import type { Runtime } from '../runtime.js';
import { answerExpectAndConnect, badHost, clientErrorHandlerFor, listenerOptions, refuseNoHostOurselves, type NodeRefusal, type RawAnswer } from '../fastify-options.js';
import { isHostValue } from '../host-value.js';
import { OperationError, OPERATION_STATUS } from '../operations/errors.js';
import { OUTAGE_RETRY_AFTER_S, requestFailureLog } from '../operations/health.js';
import { StoreWriteError } from '../store/write-refusal.js';
import { UnstorableTextError } from '../store/unstorable-text.js';
import { SCRIPT, STYLESHEET } from './assets.js';
import { formPage, PageNotFound, redirect, SESSION_ENDED, setNotice, signInLeadingTo, type Dashboard } from './context.js';
import { csrfTokenMatches, newCsrfSecret, preSessionSecret, submittedToken } from './csrf.js';
import { cookieSettings, loadViewer } from './session.js';
import { hostName, knownHostNames } from './host-names.js';
import { oncePer } from '../log.js';
import { createSignInChecker } from './sign-in.js';
import { clientAddress, trustedProxyCheck } from '../gateway/trusted-proxies.js';
import { renderDocument, sendPage } from './layout.js';
import { html } from './html.js';
import { profileNames, sentence } from './format.js';
import { registerSignInPages } from './pages/sign-in.js';
import { registerInvitePage } from './pages/invite.js';
import { registerKeyPages } from './pages/keys.js';
import { registerKeyLimitPages } from './pages/key-limits.js';
import { registerKeyEditPages } from './pages/key-edit.js';
import { refusalText } from './pages/key-views.js';
import { registerUsagePage } from './pages/usage.js';
import { registerAccountPages } from './pages/accounts.js';
import { registerAuditPage } from './pages/audit.js';
import { registerAddressBlockPage } from './pages/address-blocks.js';
import { registerPasswordPage } from './pages/password.js';

/** Forms are small; anything bigger is not ours. */
const BODY_LIMIT = 16 * 1024;
const ASSET_MAX_AGE_S = 7 * 86_400;

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // Not no-referrer: under it a browser sends `Origin: null` with the dashboard's own forms,
  // which the origin checks could not tell from another site's. Under same-origin its own
  // forms carry its origin, and nothing at all goes to another site.
  'referrer-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
};

/** What Node would answer bare, as a page, with the dashboard's headers. */
function nodeRefusal(status: NodeRefusal): RawAnswer {
  const what = {
    400: 'The request could not be read.',
    408: 'The request took too long to arrive.',
    414: 'The address is too long.',
    417: 'Only "Expect: 100-continue" is supported.',
    431: 'The request headers are too large: clearing this site’s cookies may help.',
  }[status];
  const body = `<!doctype html><html lang="en"><meta charset="utf-8"><title>${STATUS_CODES[status]}</title><h1>${STATUS_CODES[status]}</h1><p>${what}</p><p><a href="/">Back to the dashboard</a></p></html>`;
  return { contentType: 'text/html; charset=utf-8', body, headers: { ...SECURITY_HEADERS, 'cache-control': 'no-store' } };
}

/** Whether every `%` of a form begins an escape and the escapes spell UTF-8 (`decodeURIComponent` throws otherwise). */
function escapesUtf8(form: string): boolean {
  if (!form.includes('%')) return true;
  try {
    decodeURIComponent(form);
    return true;
  } catch {
    return false;
  }
}

/** How often a request refused for the name it was addressed to is logged (at most). */
const UNKNOWN_HOST_LOG_INTERVAL_MS = 60_000;

/** The setting that holds the key the dashboard's notices are signed with. */
const NOTICE_KEY_SETTING = 'dashboard_notice_key';

/**
 * Whether the browser says the form was sent by a page of another origin. A page on another
 * port of the dashboard's host (or, without the `__Host-` prefix, of a sibling subdomain) is
 * the same site: the browser sends it the dashboard's SameSite cookies, and lets it set them,
 * so it could plant the sign-in form's cookie and post the token that goes with it (signing
 * a visitor in to an account of its choosing). `Sec-Fetch-Site` is set by the browser alone;
 * one that sends none is left to the token.
 */
function sentFromAnotherOrigin(request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site'];
  return site !== undefined && site !== 'same-origin' && site !== 'none';
}

/** The schemes a trusted proxy may say it was reached by (`X-Forwarded-Proto`). */
const FORWARDED_PROTO = /^https?$/i;

/**
 * The origin a request was sent to, as keygate can tell it: the scheme it was reached by and
 * its Host; from a trusted proxy, the scheme and host that proxy says the visitor used
 * (`X-Forwarded-Proto`, `X-Forwarded-Host`), as the gateway reads them. Undefined when they
 * make no origin.
 */
function addressedOrigin(request: FastifyRequest, trusted: ((peer: string | undefined) => boolean) | undefined): string | undefined {
  const scheme = schemeOf(request, trusted);
  const host = addressedHost(request, trusted);
  if (host === undefined) return undefined;
  try {
    // As a browser writes an origin: lower case, no default port.
    return new URL(`${scheme}://${host}`).origin;
  } catch {
    return undefined;
  }
}

/**
 * The host a request was sent to, with its port if it has one: its Host; from a trusted
 * proxy, the one it says the visitor used (`X-Forwarded-Host`), where it sends one.
 */
function addressedHost(request: FastifyRequest, trusted: ((peer: string | undefined) => boolean) | undefined): string | undefined {
  const viaProxy = trusted?.(request.raw.socket.remoteAddress) === true;
  const forwardedHost = viaProxy ? visitorsOf(request.headers['x-forwarded-host']) : undefined;
  return forwardedHost !== undefined && isHostValue(forwardedHost) ? forwardedHost : request.headers.host;
}

/**
 * The scheme a request reached keygate by: from a trusted proxy, the one it says the visitor
 * used (`X-Forwarded-Proto`), else whether the socket is TLS.
 */
function schemeOf(request: FastifyRequest, trusted: ((peer: string | undefined) => boolean) | undefined): 'http' | 'https' {
  const socket = request.raw.socket as { remoteAddress?: string; encrypted?: boolean };
  const proto = trusted?.(socket.remoteAddress) === true ? visitorsOf(request.headers['x-forwarded-proto']) : undefined;
  if (proto !== undefined && FORWARDED_PROTO.test(proto)) return proto.toLowerCase() as 'http' | 'https';
  return socket.encrypted ? 'https' : 'http';
}

/**
 * The visitor's value of an X-Forwarded-* header: the first of a list (`https, http`: each
 * proxy of a chain adds the one it was reached by, and Node joins headers sent twice the
 * same way), which the proxy the visitor reached wrote. Read only from a trusted proxy, and
 * only to compare an Origin with: a page of another origin cannot set these headers.
 */
function visitorsOf(value: string | string[] | undefined): string | undefined {
  if (typeof value !== 'string') return undefined;
  return value.split(',', 1)[0]?.trim();
}

/**
 * Whether the form's `Origin` names another origin than the dashboard's: for the browsers
 * that send no `Sec-Fetch-Site` (Safari before 16.4), which send `Origin` with every POST.
 * The dashboard's origin is `dashboard.publicUrl`'s; without one, the one the request was
 * sent to (its Host, see `addressedOrigin`), so that a page on another port of the same
 * host is refused too. A browser that does send `Sec-Fetch-Site` is judged by it alone
 * (behind a proxy that rewrites Host, and is not in trustedProxies, the Host is not the
 * visitor's origin, and its good forms would be refused). `Origin: null` (a sandboxed
 * frame, a redirect from elsewhere) is no origin of the dashboard's. A POST without
 * `Origin` (no browser, or one that sends none) is left to the token.
 */
function sentFromOtherThanOwnOrigin(request: FastifyRequest, publicOrigin: string | undefined, trusted: ((peer: string | undefined) => boolean) | undefined): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return false;
  if (origin === 'null' || publicOrigin !== undefined) return origin !== publicOrigin;
  if (request.headers['sec-fetch-site'] !== undefined) return false;
  return origin !== addressedOrigin(request, trusted);
}

export async function buildDashboard(rt: Runtime): Promise<FastifyInstance | undefined> {
  if (!rt.config.dashboard.enabled) return undefined;
  const publicUrl = rt.config.dashboard.publicUrl;
  const publicOrigin = publicUrl === undefined ? undefined : new URL(publicUrl).origin;
  const app = Fastify({
    ...listenerOptions(rt.log, 'dashboard'),
    http: { maxHeaderSize: rt.config.dashboard.listen.maxHeaderSize },
    bodyLimit: BODY_LIMIT,
    // Before routing (an undecodable URL, an id over 2,048 characters): a page, not Fastify's JSON.
    frameworkErrors: (_error, request, reply) => {
      // No hook has run: the name it was addressed to is judged here first, as onRequest does.
      const host = addressedHost(request, trusted);
      if (host !== undefined && !badHost(request.raw) && !isKnownHost(host)) return refuseUnknownHost(request, reply as FastifyReply, host);
      const body = html`<h1>That address could not be read</h1><p>Check the link, or start again from the dashboard.</p><p><a href="/">Back to the dashboard</a></p>`;
      let page: string;
      try {
        // No hook has run and no plugin decorated this reply: the cookies the page's
        // header reads are parsed here, and no notice is taken (that clears a cookie).
        request.cookies = app.parseCookie(request.headers.cookie ?? '');
        page = renderDocument(dash, request, { title: 'Bad request', body }).value;
      } catch {
        page = '<!doctype html><title>Bad request</title><h1>That address could not be read</h1><p><a href="/">Back to the dashboard</a></p>';
      }
      (reply as FastifyReply).code(400).headers(SECURITY_HEADERS).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(page);
    },
    // Requests Node's parser refuses (headers over the listener's `maxHeaderSize`, bytes that are not HTTP, too slow): a page too.
    clientErrorHandler: clientErrorHandlerFor(nodeRefusal),
  });
  // So is what Node would answer bare, or not at all, and a request without Host or with
  // two (refused in the first hook).
  refuseNoHostOurselves(app.server);
  answerExpectAndConnect(app.server, nodeRefusal);
  const trusted = trustedProxyCheck(rt.config.trustedProxies);
  const log = rt.log.child({ component: 'dashboard' });
  const isKnownHost = knownHostNames(rt.config.dashboard);
  const logUnknownHost = oncePer(UNKNOWN_HOST_LOG_INTERVAL_MS);
  /** Whether the operator was told of X-Forwarded-For from a peer not in trustedProxies (once per process). */
  let toldOfUntrustedProxy = false;
  const dash: Dashboard = {
    rt,
    cookies: cookieSettings(rt, (request) => schemeOf(request, trusted) === 'https'),
    // Made by the first process that needs it; the others (and restarts) read it.
    noticeKey: (await rt.store.getSetting(NOTICE_KEY_SETTING)) ?? (await rt.store.settleSetting(NOTICE_KEY_SETTING, newCsrfSecret())),
    signIn: createSignInChecker(rt),
    addressOf: (request) => {
      const peer = request.raw.socket.remoteAddress;
      const forwardedFor = request.headers['x-forwarded-for'];
      if (forwardedFor !== undefined && !toldOfUntrustedProxy && trusted?.(peer) !== true) {
        // A reverse proxy left out of trustedProxies makes all its clients one address: one
        // client's wrong passwords would pause an email for every other, and the audit log
        // would name the proxy as where every change came from. (A client may also
        // have sent the header itself: hence a warning, once, and nothing more.)
        toldOfUntrustedProxy = true;
        log.warn(
          { peer },
          `a dashboard request came from ${peer ?? 'an unknown address'} with X-Forwarded-For, which is not in trustedProxies: if it is your reverse proxy, list it there, or every client behind it counts as one address for sign-in lockouts and in the audit log (told once)`,
        );
      }
      return clientAddress(peer, forwardedFor, trusted);
    },
  };

  await app.register(cookie);
  // Only HTML forms are accepted; any other body is read and dropped, so a POST of any
  // type reaches the CSRF check (and fails it) instead of erroring earlier.
  app.removeAllContentTypeParsers();
  // Forms in UTF-8 only: other bytes would be read as U+FFFD and compared or stored so
  // (two different passwords both "��" would "match"). Browsers send UTF-8.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, (_request, bytes: Buffer, done) => {
    if (!isUtf8(bytes)) return done(Object.assign(new Error('The form was not sent in UTF-8: send it again from the page.'), { statusCode: 400 }), undefined);
    const text = bytes.toString('utf8');
    // Nor escapes of other bytes (`caf%E9`, Latin-1), or `%` that begins none: the parser
    // keeps those as typed, and the name would be stored as the text "caf%E9".
    if (!escapesUtf8(text)) return done(Object.assign(new Error('The form has a %-escape that is not UTF-8: send it again from the page.'), { statusCode: 400 }), undefined);
    done(null, parseForm(text));
  });
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, _body, done) => done(null, undefined));

  app.addHook('onRequest', async (request, reply) => {
    reply.headers(SECURITY_HEADERS);
    if (badHost(request.raw)) {
      const body = html`<h1>Bad request</h1><p>The request needs one Host header, naming a host: open the dashboard in a browser.</p>`;
      return reply.code(400).header('connection', 'close').header('cache-control', 'no-store').type('text/html; charset=utf-8').send(renderDocument(dash, request, { title: 'Bad request', body }).value);
    }
    // Before anything else, assets and every method too: a page addressed to a name the
    // dashboard is not known by may be another site's, rebound to this address.
    const host = addressedHost(request, trusted);
    // (An HTTP/1.0 request may come without Host: no browser sends one so, rebound or not.)
    if (host !== undefined && !isKnownHost(host)) return refuseUnknownHost(request, reply, host);
  });

  app.get('/assets/dashboard.css', (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', `public, max-age=${ASSET_MAX_AGE_S}`).send(STYLESHEET),
  );
  app.get('/assets/dashboard.js', (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', `public, max-age=${ASSET_MAX_AGE_S}`).send(SCRIPT),
  );
  app.get('/favicon.ico', (_request, reply) => reply.code(204).header('cache-control', `public, max-age=${ASSET_MAX_AGE_S}`).send());

  // Pages live in their own context so that the session and CSRF hooks skip the assets.
  await app.register(async (pages) => {
    pages.decorateRequest('viewer', null);
    pages.addHook('preHandler', async (request, reply) => {
      const sessionId = request.cookies[dash.cookies.sessionName];
      request.viewer = (await loadViewer(rt, sessionId)) ?? null;
      if (sessionId !== undefined && !request.viewer) reply.clearCookie(dash.cookies.sessionName, dash.cookies.attributes(request));
      const isPublic = request.routeOptions.config.public === true;

      // Without a session nothing is done, whatever a form sent: a form sent after the
      // session ended is told so (it is no forgery), and a page asked for is where signing
      // in again leads.
      if (!isPublic && !request.viewer) {
        // A form of this dashboard's own (a browser drops the cookie when the session ends);
        // a cross-site POST, which comes without the cookie too, is sent on without a word.
        const ownForm = request.method === 'POST' && request.headers['sec-fetch-site'] === 'same-origin';
        if (sessionId !== undefined || ownForm) setNotice(dash, reply, SESSION_ENDED);
        // A form leads back to the page it was on: what was typed must be typed again, there.
        const asked = request.method === 'GET' || request.method === 'HEAD';
        return redirect(reply, signInLeadingTo(asked ? request.url : (formPage(request, publicOrigin ?? addressedOrigin(request, trusted)) ?? '/')));
      }
      if (request.method === 'POST') {
        if (sentFromAnotherOrigin(request) || sentFromOtherThanOwnOrigin(request, publicOrigin, trusted)) return refuseForgery(request, reply);
        const secret = isPublic ? preSessionSecret(request, dash.cookies) : request.viewer?.formSecret;
        if (!secret || !csrfTokenMatches(secret, submittedToken(request))) return refuseForgery(request, reply);
      }
    });

    registerSignInPages(pages, dash);
    registerInvitePage(pages, dash);
    registerKeyPages(pages, dash);
    registerKeyLimitPages(pages, dash);
    registerKeyEditPages(pages, dash);
    registerUsagePage(pages, dash);
    registerAccountPages(pages, dash);
    registerAuditPage(pages, dash);
    registerAddressBlockPage(pages, dash);
    registerPasswordPage(pages, dash);

    // A page asked with a method it does not take (PUT /keys) is not there either: a 405
    // naming the methods would tell a member which operator pages exist.
    pages.setNotFoundHandler((request, reply) => sendNotFound(request, reply));
    const logFailure = requestFailureLog(rt, 'dashboard');
    pages.setErrorHandler(async (error: Error & { statusCode?: number }, request, reply) => {
      if (error instanceof PageNotFound || (error instanceof OperationError && error.kind === 'not_found')) return sendNotFound(request, reply);
      if (error instanceof OperationError) {
        const body = html`<h1>That did not work</h1><div class="notice error" role="alert"><p>${refusalText(error, profileNames(rt.config))}</p></div><p><a href="/">Back to the dashboard</a></p>`;
        return sendPage(dash, request, reply, { title: 'That did not work', body, status: OPERATION_STATUS[error.kind] });
      }
      // Text no store holds (a NUL, typed or sent by hand) where it would be written: the visitor's to change.
      if (error instanceof UnstorableTextError) {
        const body = html`<h1>That request could not be handled</h1><div class="notice error" role="alert"><p>It holds a NUL character (U+0000), which cannot be saved.</p></div><p><a href="/">Back to the dashboard</a></p>`;
        return sendPage(dash, request, reply, { title: 'Bad request', body, status: 400 });
      }
      if (error.statusCode !== undefined && error.statusCode < 500) {
        const body = html`<h1>That request could not be handled</h1><div class="notice error" role="alert"><p>${sentence(error.message)}</p></div><p><a href="/">Back to the dashboard</a></p>`;
        return sendPage(dash, request, reply, { title: 'Bad request', body, status: error.statusCode });
      }
      // The database refused the write (a full disk): nothing the visitor did wrong, and it
      // may clear. Logged with its cause by the runtime; here which page it stopped.
      if (error instanceof StoreWriteError) {
        request.log.warn({ method: request.method, path: request.routeOptions.url, code: error.code }, `dashboard could not save: ${error.message}`);
        reply.header('retry-after', String(OUTAGE_RETRY_AFTER_S));
        if (request.method === 'GET' || request.method === 'HEAD') {
          const body = html`<h1>The dashboard is unavailable</h1><div class="notice error" role="alert"><p>It cannot save anything right now, and this page needs to. Try again later.</p></div><p><a href="/">Back to the dashboard</a></p>`;
          return sendPage(dash, request, reply, { title: 'Unavailable', body, status: 503 });
        }
        const body = html`<h1>Your change was not saved</h1><div class="notice error" role="alert"><p>The dashboard cannot save anything right now. Try again later.</p></div><p>A change made of several steps may have been saved in part: look before making it again.</p><p><a href="/">Back to the dashboard</a></p>`;
        return sendPage(dash, request, reply, { title: 'Not saved', body, status: 503 });
      }
      // The store is away (PostgreSQL down, say): an outage to wait out, not a fault of the
      // page's. A form may have been saved in part before it went: to be checked, not resent.
      if (await logFailure(request.log, error, { path: request.routeOptions.url })) {
        const sent = request.method === 'POST' ? html`<p>If this was a change, it may or may not have been made: once the dashboard is back, check before making it again.</p>` : html``;
        const body = html`<h1>The dashboard is unavailable</h1><div class="notice error" role="alert"><p>It cannot reach its data right now. Try again in a moment.</p></div>${sent}<p><a href="/">Back to the dashboard</a></p>`;
        if (request.method === 'GET' || request.method === 'HEAD') reply.header('retry-after', String(OUTAGE_RETRY_AFTER_S));
        return sendPage(dash, request, reply, { title: 'Unavailable', body, status: 503 });
      }
      const body = html`<h1>Something went wrong</h1><p>The page could not be shown. Try again in a moment; if it keeps happening, tell whoever gave you access: the details are in the service’s log.</p><p><a href="/">Back to the dashboard</a></p>`;
      return sendPage(dash, request, reply, { title: 'Something went wrong', body, status: 500 });
    });
  });

  function sendNotFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
    const body = html`<h1>Page not found</h1><p>There is nothing at this address, or it belongs to another account.</p><p><a href="/">Back to the dashboard</a></p>`;
    return sendPage(dash, request, reply, { title: 'Page not found', body, status: 404 });
  }

  /**
   * 421 Misdirected Request: this server does not answer for that name, which the operator
   * changes in the profile (not 403: nothing about the visitor is refused, and the same
   * request by a known name is answered). No cookie is set, and nothing of the layout is
   * fetched (its stylesheet would be refused too).
   */
  function refuseUnknownHost(request: FastifyRequest, reply: FastifyReply, host: string): FastifyReply {
    const origin = addressedOrigin(request, trusted) ?? `http://${host}`;
    const name = hostName(host) ?? host;
    logUnknownHost(({ moreSinceLast }) =>
      log.warn(
        { host, ...(moreSinceLast === undefined ? {} : { moreSinceLast }) },
        `the dashboard refused a request addressed to ${host}, a name it is not known by (against DNS rebinding): if members reach it by that name, set dashboard.publicUrl: ${origin} (or list ${name} in dashboard.allowedHosts)${moreSinceLast === undefined ? '' : ` (and ${moreSinceLast} more refused since the last such line)`}`,
      ),
    );
    const body = html`<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Misdirected request</title>
<h1>The dashboard does not answer to this name</h1>
<p>This request was addressed to <code>${host}</code>, which is not a name the dashboard is known by. It answers only to its own names, IP addresses and <code>localhost</code>, so that a web page whose DNS name is made to point at it cannot use it.</p>
<p>If this is how members reach the dashboard, its operator sets <code>dashboard.publicUrl: ${origin}</code> in the profile (or, behind a proxy that passes its own Host, lists <code>${name}</code> in <code>dashboard.allowedHosts</code>) and restarts keygate.</p></html>`;
    return reply.code(421).headers(SECURITY_HEADERS).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(body.value);
  }

  function refuseForgery(request: FastifyRequest, reply: FastifyReply): FastifyReply {
    const body = html`<h1>This form could not be accepted</h1>
<div class="notice error" role="alert"><p>It did not carry this dashboard’s security token, so it may not have come from this dashboard, or the page was open for too long.</p></div>
<p>Go back, reload the page and try again.</p><p><a href="/">Back to the dashboard</a></p>`;
    return sendPage(dash, request, reply, { title: 'Form not accepted', body, status: 403 });
  }

  return app;
}
