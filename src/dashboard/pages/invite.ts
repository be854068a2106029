/**
 * The invitation link, `/invite/<token>`: an invited member (or operator) chooses a
 * password, which also uses up the token and signs them in (a password reset link is the
 * same page). The token never leaves this page's URL: pages send no Referer and keygate
 * does not log dashboard requests.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { acceptInvitation, hashToken } from '../../operations/members.js';
import { OperationError, OPERATION_STATUS } from '../../operations/errors.js';
import { MIN_PASSWORD_LENGTH } from '../../members/password.js';
import type { MemberRecord } from '../../store/store.js';
import { field, preSessionCsrfField, redirect, setNotice, type Dashboard } from '../context.js';
import { sendPage } from '../layout.js';
import { html } from '../html.js';
import { sentence } from '../format.js';
import { signInSources } from '../sign-in.js';
import { endSession, startSession } from '../session.js';

/** The refusal's element, which the field at fault names as its description. */
const ERROR_ID = 'password-error';

type InviteRequest = FastifyRequest<{ Params: { token: string } }>;

/** The form's fields, by name; a refusal is shown beside the one it is about. */
type InviteField = 'password' | 'confirm';

interface Refusal {
  text: string;
  field: InviteField;
  status: number;
}

export function registerInvitePage(app: FastifyInstance, dash: Dashboard): void {
  const { rt, cookies } = dash;

  async function invitedMember(token: string): Promise<MemberRecord | undefined> {
    const member = await rt.store.findMemberByInvite(hashToken(token));
    if (!member || member.inviteExpiresAt === null || member.inviteExpiresAt <= rt.clock()) return undefined;
    return member;
  }

  app.get<{ Params: { token: string } }>('/invite/:token', { config: { public: true } }, async (request, reply) => {
    const member = await invitedMember(request.params.token);
    if (!member) return sendInvalid(request, reply);
    return sendForm(request, reply, member);
  });

  app.post<{ Params: { token: string } }>('/invite/:token', { config: { public: true } }, async (request, reply) => {
    const member = await invitedMember(request.params.token);
    if (!member) return sendInvalid(request, reply);
    const password = field(request.body, 'password');
    // Both fields come back empty: the refusal sits above the first, where typing starts again.
    if (password !== field(request.body, 'confirm')) return sendForm(request, reply, member, { text: 'The two passwords are different. Type the same password twice.', field: 'password', status: 400 });
    let joined: MemberRecord;
    try {
      const address = dash.addressOf(request);
      joined = await acceptInvitation(rt, request.params.token, password, { address, sources: signInSources(address) });
    } catch (error) {
      if (!(error instanceof OperationError)) throw error;
      // Used up in another tab, or expired, since it was looked up above: the link is at fault, not the password.
      if (error.kind === 'not_found') return sendInvalid(request, reply);
      return sendForm(request, reply, member, { text: sentence(error.message), field: 'password', status: OPERATION_STATUS[error.kind] });
    }
    // Whoever holds the link has just proved it, as a sign-in proves the password: signed in
    // at once, as the sign-in form signs in (a new session, whoever this browser was signed
    // in as before signed out here), rather than asked for the password just typed twice.
    if (request.viewer) await endSession(rt, request.viewer.session);
    const session = await startSession(rt, joined);
    reply.setCookie(cookies.sessionName, session.id, { ...cookies.attributes(request), maxAge: session.maxAgeSeconds });
    const reset = member.passwordHash !== null;
    setNotice(dash, reply, { kind: 'success', text: `${reset ? 'Your new password is set' : 'Your password is set'}. You are signed in as ${member.email}.` }, session.id);
    return redirect(reply, '/');
  });

  function sendInvalid(request: InviteRequest, reply: FastifyReply): FastifyReply {
    const body = html`<h1>This link does not work</h1>
<p>It may have been used already or expired: an invitation link works once, for 7 days; a password reset link once, for 24 hours. Ask whoever sent it for a new one.</p>
<div class="actions"><a class="button secondary" href="/sign-in">Go to sign-in</a></div>`;
    return sendPage(dash, request, reply, { title: 'Link not valid', body, status: 404 });
  }

  /**
   * The form; a refused one (`refusal`) with why just above the field at fault, which is
   * marked, described by it and focused, as the other forms do. The passwords typed are
   * never sent back: both fields are empty again.
   */
  async function sendForm(request: InviteRequest, reply: FastifyReply, member: MemberRecord, refusal?: Refusal): Promise<FastifyReply> {
    const team = member.accountId === null ? undefined : await rt.store.getAccount(member.accountId);
    const account = member.role === 'operator' ? html`as an operator` : team ? html`to manage the API keys of <strong>${team.name}</strong>` : html`to manage your API keys`;
    // A member who has a password already came by a reset link: theirs works until this one is set.
    const reset = member.passwordHash !== null;
    const title = reset ? 'Choose a new password' : 'Choose your password';
    const refused = (name: InviteField) => (refusal?.field === name ? html`<div class="notice error" role="alert" id="${ERROR_ID}"><p>${refusal.text}</p></div>` : '');
    const body = html`<h1>${title}</h1>
${reset
  ? html`<p>This link replaces the password of <strong>${member.email}</strong>. The current one keeps working until you set the new one.</p>`
  : html`<p>You were invited ${account}. You will sign in as <strong>${member.email}</strong>.</p>`}
<form method="post" action="/invite/${request.params.token}" class="stack">
  ${preSessionCsrfField(dash, request, reply)}
  <input type="text" name="username" value="${member.email}" autocomplete="username" hidden>
  ${refused('password')}
  <div class="field">
    <label for="password">New password</label>
    <span class="hint" id="password-hint">At least ${MIN_PASSWORD_LENGTH} characters. A long passphrase is easiest.</span>
    <input id="password" name="password" type="password" required minlength="${MIN_PASSWORD_LENGTH}" autocomplete="new-password"${refusal?.field === 'password' ? html` aria-invalid="true" aria-describedby="password-hint ${ERROR_ID}" autofocus` : html` aria-describedby="password-hint"${refusal ? '' : html` autofocus`}`}>
  </div>
  ${refused('confirm')}
  <div class="field">
    <label for="confirm">Confirm new password</label>
    <input id="confirm" name="confirm" type="password" required minlength="${MIN_PASSWORD_LENGTH}" autocomplete="new-password"${refusal?.field === 'confirm' ? html` aria-invalid="true" aria-describedby="${ERROR_ID}" autofocus` : ''}>
  </div>
  <div class="actions"><button type="submit">Set password</button></div>
</form>`;
    return sendPage(dash, request, reply, { title, body, status: refusal?.status ?? 200 });
  }
}
