/**
 * `/password`: a signed-in member or operator changes their own password. The current
 * one is checked as a sign-in checks it, so a wrong one counts as a failed sign-in for
 * the email and the same pauses follow: a stolen session is no unlimited way to guess the
 * password. Once changed, every other session of the member is signed out, and this one
 * goes on under a new id until the time it would have ended. Passwords typed are never
 * sent back in the page.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { changePassword, checkNewPassword } from '../../operations/members.js';
import { OperationError, OPERATION_STATUS } from '../../operations/errors.js';
import { MIN_PASSWORD_LENGTH } from '../../members/password.js';
import { LOCKOUT_MS, MAX_FAILED_SIGN_INS } from '../../members/lockout.js';
import { csrfField, field, redirect, setNotice, viewerOf, type Dashboard } from '../context.js';
import { startSession } from '../session.js';
import { sendPage } from '../layout.js';
import { html } from '../html.js';
import { pauseEnd, plural, sentence } from '../format.js';

const PASSWORD_PATH = '/password';
const TITLE = 'Change your password';

/** The refusal's element, which the field at fault names as its description. */
const ERROR_ID = 'password-error';

/**
 * The fields a refusal is shown beside: the current password, or the new one (Confirm
 * never: every field comes back empty, so typing starts again at New password).
 */
type PasswordField = 'current' | 'password';

interface Refusal {
  text: string;
  field: PasswordField;
  status: number;
}

export function registerPasswordPage(app: FastifyInstance, dash: Dashboard): void {
  const { rt, cookies } = dash;

  app.get(PASSWORD_PATH, async (request, reply) => sendForm(request, reply));

  app.post(PASSWORD_PATH, async (request, reply) => {
    const { member, session: thisSession } = viewerOf(request);
    const current = field(request.body, 'current');
    const password = field(request.body, 'password');
    // Checked before the current password, which is then counted only when it is the one thing left to decide.
    // Every field comes back empty: the refusal sits above New password, where typing starts again.
    if (password !== field(request.body, 'confirm')) {
      return sendForm(request, reply, { text: 'The new password and its confirmation are different. Type the same new password twice.', field: 'password', status: 400 });
    }
    try {
      checkNewPassword(password);
    } catch (error) {
      if (!(error instanceof OperationError)) throw error;
      return sendForm(request, reply, { text: sentence(error.message), field: 'password', status: OPERATION_STATUS[error.kind] });
    }

    const address = dash.addressOf(request);
    const checked = await dash.signIn.check(member.email, current, address);
    if (!checked.ok) {
      if (checked.reason === 'invalid') {
        const minutes = LOCKOUT_MS / 60_000;
        return sendForm(request, reply, {
          text: `The current password is incorrect; nothing was changed. It counts as a failed sign-in: after ${MAX_FAILED_SIGN_INS} in a row, checking your password (here and on the sign-in page) is paused for ${minutes} minutes.`,
          field: 'current',
          status: 401,
        });
      }
      const retryAfterMs = checked.retryAfterMs;
      reply.header('retry-after', String(Math.ceil(retryAfterMs / 1000)));
      const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
      const text =
        checked.reason === 'locked'
          ? `Too many wrong passwords: your password cannot be checked until ${pauseEnd(checked.until, retryAfterMs)}, here or on the sign-in page; nothing was changed. Try again after that (you stay signed in).`
          : `Too many password checks from your network address; nothing was changed. Try again in ${plural(seconds, 'second')}.`;
      return sendForm(request, reply, { text, field: 'current', status: 429 });
    }

    try {
      await changePassword(rt, checked.member, current, password, address);
    } catch (error) {
      if (!(error instanceof OperationError) || error.kind !== 'invalid') throw error;
      return sendForm(request, reply, { text: sentence(error.message), field: 'password', status: OPERATION_STATUS[error.kind] });
    }
    // Every session of the member has ended: this browser goes on under a new id, until
    // its session would have ended (a stolen cookie is not made to last longer by it).
    const session = await startSession(rt, checked.member, thisSession.expiresAt);
    reply.setCookie(cookies.sessionName, session.id, { ...cookies.attributes(request), maxAge: session.maxAgeSeconds });
    setNotice(dash, reply, { kind: 'success', text: 'Your password is changed. You are still signed in here; every other session of yours is signed out.' }, session.id);
    return redirect(reply, PASSWORD_PATH);
  });

  /**
   * The form; a refused one (`refusal`) with why just above the field at fault, which is
   * marked, described by it and focused, as the invitation page does. The passwords typed
   * are never sent back: every field is empty again.
   */
  function sendForm(request: FastifyRequest, reply: FastifyReply, refusal?: Refusal): FastifyReply {
    const { member } = viewerOf(request);
    const refused = (name: PasswordField) => (refusal?.field === name ? html`<div class="notice error" role="alert" id="${ERROR_ID}"><p>${refusal.text}</p></div>` : '');
    const body = html`<h1>${TITLE}</h1>
<p>For <strong>${member.email}</strong>. Once it is changed, you stay signed in here and every other session of yours is signed out.</p>
<form method="post" action="${PASSWORD_PATH}" class="stack">
  ${csrfField(request)}
  <input type="text" name="username" value="${member.email}" autocomplete="username" hidden>
  ${refused('current')}
  <div class="field">
    <label for="current">Current password</label>
    <input id="current" name="current" type="password" required autocomplete="current-password"${refusal?.field === 'current' ? html` aria-invalid="true" aria-describedby="${ERROR_ID}" autofocus` : ''}>
  </div>
  ${refused('password')}
  <div class="field">
    <label for="password">New password</label>
    <span class="hint" id="password-hint">At least ${MIN_PASSWORD_LENGTH} characters. A long passphrase is easiest.</span>
    <input id="password" name="password" type="password" required minlength="${MIN_PASSWORD_LENGTH}" autocomplete="new-password"${refusal?.field === 'password' ? html` aria-invalid="true" aria-describedby="password-hint ${ERROR_ID}" autofocus` : html` aria-describedby="password-hint"`}>
  </div>
  <div class="field">
    <label for="confirm">Confirm new password</label>
    <input id="confirm" name="confirm" type="password" required minlength="${MIN_PASSWORD_LENGTH}" autocomplete="new-password">
  </div>
  <div class="actions"><button type="submit">Change password</button></div>
</form>
<p class="muted">Forgot your current password? Sign out and ask whoever invited you for a password reset link.</p>`;
    return sendPage(dash, request, reply, { title: TITLE, body, status: refusal?.status ?? 200 });
  }
}
