/**
 * Signing in and out, and the home address that sends a viewer to their first page.
 * A wrong email and a wrong password get the same message, and a locked email gets the
 * same lockout message whether or not it belongs to a member.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { field, preSessionCsrfField, redirect, returnPath, setNotice, viewerOf, type Dashboard, type Notice } from '../context.js';
import { endSession, startSession } from '../session.js';
import { sendPage } from '../layout.js';
import { html } from '../html.js';
import { pauseEnd } from '../format.js';

export function registerSignInPages(app: FastifyInstance, dash: Dashboard): void {
  const { rt, cookies } = dash;

  app.get('/', async (request, reply) => {
    const viewer = viewerOf(request);
    return redirect(reply, viewer.account ? '/keys' : '/accounts');
  });

  app.get('/sign-in', { config: { public: true } }, async (request, reply) => {
    // `?next=`: the page that sent here (a session had ended); `?email=`: an address to fill
    // in (a link to this page made for one member; choosing a password signs in by itself).
    const { email, next } = request.query as { email?: unknown; next?: unknown };
    const back = returnPath(next);
    if (request.viewer) return redirect(reply, back ?? '/');
    return sendSignIn(request, reply, typeof email === 'string' && email.length <= 254 ? email : '', back);
  });

  app.post('/sign-in', { config: { public: true } }, async (request, reply) => {
    const email = field(request.body, 'email');
    const back = returnPath(field(request.body, 'next'));
    const result = await dash.signIn.check(email, field(request.body, 'password'), dash.addressOf(request));
    if (!result.ok) {
      if (result.reason === 'locked') {
        reply.header('retry-after', String(Math.ceil(result.retryAfterMs / 1000)));
        return sendSignIn(request, reply, email, back, {
          kind: 'error',
          // When it ends, not only how long: each try meanwhile is told the same end.
          text: `Too many failed sign-ins. Signing in with this email is paused until ${pauseEnd(result.until, result.retryAfterMs)}; try again after that. If you forgot your password, contact whoever invited you.`,
        }, 429);
      }
      if (result.reason === 'throttled') {
        const seconds = Math.max(1, Math.ceil(result.retryAfterMs / 1000));
        reply.header('retry-after', String(seconds));
        return sendSignIn(request, reply, email, back, { kind: 'error', text: `Too many sign-in attempts from your network address. Try again in ${seconds} second${seconds === 1 ? '' : 's'}.` }, 429);
      }
      return sendSignIn(request, reply, email, back, { kind: 'error', text: 'The email or password is incorrect.' }, 401);
    }
    if (request.viewer) await endSession(rt, request.viewer.session);
    const session = await startSession(rt, result.member);
    reply.setCookie(cookies.sessionName, session.id, { ...cookies.attributes(request), maxAge: session.maxAgeSeconds });
    return redirect(reply, back ?? '/');
  });

  app.post('/sign-out', async (request, reply) => {
    await endSession(rt, viewerOf(request).session);
    reply.clearCookie(cookies.sessionName, cookies.attributes(request));
    setNotice(dash, reply, { kind: 'success', text: 'You are signed out.' }, '');
    return redirect(reply, '/sign-in');
  });

  function sendSignIn(request: FastifyRequest, reply: FastifyReply, email: string, back: string | undefined, notice?: Notice, status = 200): FastifyReply {
    // One page for both who sign in here, before it is known which: an account's members
    // and the gateway's operators (invited as members are).
    const body = html`<h1>Sign in</h1>
<p class="muted">Manage your ${rt.config.title} API keys and see your usage, or, as an operator, every account.</p>
<form method="post" action="/sign-in" class="stack">
  ${preSessionCsrfField(dash, request, reply)}
  ${back === undefined ? '' : html`<input type="hidden" name="next" value="${back}">`}
  <div class="field">
    <label for="email">Email</label>
    <input id="email" name="email" type="email" required autocomplete="username" value="${email}"${email === '' ? html` autofocus` : ''}>
  </div>
  <div class="field">
    <label for="password">Password</label>
    <input id="password" name="password" type="password" required autocomplete="current-password"${email !== '' ? html` autofocus` : ''}>
  </div>
  <div class="actions"><button type="submit">Sign in</button></div>
</form>
<p class="muted">New here? Access is by invitation: you choose your password from the link you are sent.</p>
<p class="muted">Forgot your password? Ask whoever invited you for a password reset link.</p>`;
    return sendPage(dash, request, reply, { title: 'Sign in', body, status, ...(notice ? { notice } : {}) });
  }
}
