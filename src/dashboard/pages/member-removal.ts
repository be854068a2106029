/**
 * The operator removes a member of an account, or withdraws a pending invitation, from the
 * account's page: a confirmation page first, then `removeMember`, the operation the CLI
 * (`keygate members remove`) and the admin API (`DELETE /v1/members/{id}`) use, so it is
 * audited under the operator's email. Only members of the account in the address are
 * found there: another account's member, an operator (the viewer included), or an id no
 * member has is a plain 404.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AccountRecord, AuditEntry, KeyRecord, MemberRecord } from '../../store/store.js';
import { getAccount } from '../../operations/accounts.js';
import { removeMember } from '../../operations/members.js';
import { OperationError } from '../../operations/errors.js';
import { actorOf, csrfField, operatorOf, PageNotFound, redirect, setNotice, type Dashboard } from '../context.js';
import { confirmationForm, confirmationHeading, sendPage, type ConfirmationTarget } from '../layout.js';
import { html, type Html } from '../html.js';
import { number, when } from '../format.js';
import { isUsable } from './key-views.js';

type MemberRequest = FastifyRequest<{ Params: { id: string; memberId: string } }>;

/**
 * How many of an account's latest events are searched for a member's removal, when its
 * page is opened again (Back, a second operator, a double click): moments later, as a rule.
 * Removed further back, the address is a 404 like any id no member has.
 */
const REMOVALS_SEARCHED = 200;

/** The address of a member's removal page (an invitation's too). */
export function memberRemovalPath(accountId: string, memberId: string): string {
  return `/accounts/${accountId}/members/${memberId}/remove`;
}

/** The Remove (or, for an invitation, Withdraw) link of a member's row on the account's page. */
export function memberRemovalLink(accountId: string, member: MemberRecord): Html {
  const href = memberRemovalPath(accountId, member.id);
  return member.passwordHash === null
    ? html`<a class="button secondary small" href="${href}" aria-label="Withdraw the invitation of ${member.email}">Withdraw</a>`
    : html`<a class="button secondary small" href="${href}" aria-label="Remove ${member.email}">Remove</a>`;
}

export function registerMemberRemovalPages(app: FastifyInstance, dash: Dashboard): void {
  const { rt } = dash;

  /**
   * The member of the account in the address, or their removal's audit entry once they are
   * gone. Anything else is not there: a member of another account, an operator (who has no
   * account, so an operator cannot remove themselves here), an id no member has.
   */
  async function memberOf(request: MemberRequest): Promise<{ account: AccountRecord; member: MemberRecord } | { account: AccountRecord; removal: AuditEntry }> {
    const viewer = operatorOf(request);
    const account = await getAccount(rt, request.params.id);
    const member = await rt.store.getMember(request.params.memberId);
    if (member) {
      if (member.accountId !== account.id || member.role !== 'member' || member.id === viewer.member.id) throw new PageNotFound();
      return { account, member };
    }
    const removal = await removalOf(account.id, request.params.memberId);
    if (!removal) throw new PageNotFound();
    return { account, removal };
  }

  async function removalOf(accountId: string, memberId: string): Promise<AuditEntry | undefined> {
    const events = await rt.store.listAudit({ accountId, limit: REMOVALS_SEARCHED });
    return events.find((e) => e.action === 'member.removed' && e.detail.memberId === memberId);
  }

  app.get<{ Params: { id: string; memberId: string } }>('/accounts/:id/members/:memberId/remove', async (request, reply) => {
    const found = await memberOf(request);
    if ('removal' in found) return sendRemovedAlready(request, reply, found.account, found.removal);
    const { account, member } = found;
    const keys = await rt.store.listKeys({ accountId: account.id });
    const body = removalConfirmation(account, member, keys, rt.clock(), { action: memberRemovalPath(account.id, member.id), cancel: `/accounts/${account.id}`, form: csrfField(request) });
    const title = member.passwordHash === null ? `Withdraw the invitation of ${member.email}` : `Remove ${member.email}`;
    return sendPage(dash, request, reply, { title, body });
  });

  app.post<{ Params: { id: string; memberId: string } }>('/accounts/:id/members/:memberId/remove', async (request, reply) => {
    const found = await memberOf(request);
    if ('removal' in found) return sendRemovedAlready(request, reply, found.account, found.removal);
    const { account } = found;
    let removed: MemberRecord;
    try {
      removed = await removeMember(rt, { id: found.member.id }, actorOf(dash, request));
    } catch (error) {
      // Removed by someone else since it was read: say by whom.
      if (!(error instanceof OperationError) || error.kind !== 'not_found') throw error;
      const removal = await removalOf(account.id, found.member.id);
      if (!removal) throw error;
      return sendRemovedAlready(request, reply, account, removal);
    }
    const text =
      removed.passwordHash === null
        ? `The invitation of ${removed.email} to ${account.name} is withdrawn: its link no longer works.`
        : `${removed.email} is removed from ${account.name}: signed out, and can no longer sign in.`;
    setNotice(dash, reply, { kind: 'success', text });
    return redirect(reply, `/accounts/${account.id}`);
  });

  /** A member (or invitation) removed already: by whom and when; nothing more to do. 410: the address named someone who was there. */
  function sendRemovedAlready(request: FastifyRequest, reply: FastifyReply, account: AccountRecord, removal: AuditEntry): FastifyReply {
    const email = typeof removal.detail.email === 'string' ? removal.detail.email : 'This member';
    const body = html`<h1>${email} was removed already</h1>
<div class="notice" role="status"><p>${email} was removed from ${account.name} on ${when(removal.at)} by ${removal.actor}. There is nothing left to remove or withdraw.</p></div>
<div class="actions"><a class="button secondary" href="/accounts/${account.id}">Back to ${account.name}</a></div>`;
    return sendPage(dash, request, reply, { title: `${email} was removed already`, body, status: 410 });
  }
}

/**
 * What removing a member does, said before it is done: signed out everywhere and no way
 * back in (password, reset or invitation link); the keys are the account's, not the
 * member's (a key names who created it, by email, and nothing else ties it to them), so
 * they keep working: the page counts those the member created.
 */
function removalConfirmation(account: AccountRecord, member: MemberRecord, keys: readonly KeyRecord[], now: number, options: ConfirmationTarget): Html {
  const linkPending = member.inviteExpiresAt !== null && member.inviteExpiresAt > now;
  if (member.passwordHash === null) {
    const link = member.inviteExpiresAt === null ? html`<span class="muted">none</span>` : linkPending ? html`works until ${when(member.inviteExpiresAt)}` : html`expired ${when(member.inviteExpiresAt)}`;
    return html`${confirmationHeading(html`Withdraw the invitation of ${member.email}?`)}
<div class="notice warning"><p>Its link stops working at once: ${member.email} can no longer use it to choose a password and join ${account.name}. To let them join later, invite them again.</p></div>
<dl class="facts">
  <div><dt>Email</dt><dd>${member.email}</dd></div>
  <div><dt>Status</dt><dd><span class="badge invited">Invited</span></dd></div>
  <div><dt>Invitation link</dt><dd>${link}</dd></div>
  <div><dt>Invited</dt><dd>${when(member.createdAt)}</dd></div>
</dl>
${confirmationForm(options, 'Withdraw invitation')}`;
  }
  const theirs = keys.filter((k) => k.createdBy === member.email && isUsable(k, now)).length;
  const keysNote =
    theirs === 0
      ? html`The account’s keys are the account’s, not theirs: they keep working.`
      : html`The account’s keys are the account’s, not theirs: they keep working, including ${theirs === 1 ? 'the key' : `the ${number(theirs)} keys`} ${member.email} created. Revoke any they should no longer have.`;
  return html`${confirmationHeading(html`Remove ${member.email} from ${account.name}?`)}
<div class="notice warning"><p>${member.email} is signed out at once, everywhere, and can no longer sign in: their password stops working, and so does ${linkPending ? 'the password-reset link they were sent' : 'any password-reset link'}. This cannot be undone; to let them back in, invite them again.</p></div>
<dl class="facts">
  <div><dt>Email</dt><dd>${member.email}</dd></div>
  <div><dt>Status</dt><dd><span class="badge on">Active</span>${linkPending ? html` <span class="related">password-reset link pending</span>` : ''}</dd></div>
  <div><dt>Member since</dt><dd>${when(member.createdAt)}</dd></div>
  <div><dt>Keys they created, in use</dt><dd>${number(theirs)}</dd></div>
</dl>
<p>${keysNote}</p>
${confirmationForm(options, 'Remove member')}`;
}
