/**
 * The operator's pages: every account with its plan and API access, an account's keys,
 * members and usage, and the actions on it (change plan, API access off or on, invite a
 * member, remove one or withdraw an invitation (member-removal.ts), set or clear its own
 * limits (account-limits.ts), rename a key or change its scopes (key-edit.ts), set or
 * clear a key's own rate limits (key-limits.ts), create a key (as a member's form creates
 * one, keys.ts) or revoke one, create an account). Each
 * change goes through the same operations as the CLI and admin API, so it is audited
 * under the operator's email and cached keys are invalidated.
 * None of these pages exist for members.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createHmac } from 'node:crypto';
import type { AccountRecord, KeyRecord } from '../../store/store.js';
import { apiEnabledOf, changeAccount, createAccount, defaultPlanId, getAccount, keysTurnedOff, planEnded } from '../../operations/accounts.js';
import { blockedUntilOf, getKey, revokeKey, unblockKey } from '../../operations/keys.js';
import { inviteMember, inviteMemberOnce, type InvitedByForm } from '../../operations/members.js';
import { inDateRange, OperationError, OPERATION_STATUS, outsideDateRange } from '../../operations/errors.js';
import { cursorOf, placeOf } from '../../operations/cursor.js';
import { meterAllowance, planOut, windowText } from '../../operations/plans.js';
import { accountUsage, mainMeterOf, type AccountUsage } from '../../operations/usage.js';
import { actorOf, csrfField, field, fields, notOffered, oneOf, operatorOf, queryValue, redirect, setNotice, viewerOf, type Dashboard, type Notice } from '../context.js';
import { confirmationForm, confirmationHeading, sendPage, type ConfirmationTarget } from '../layout.js';
import { html, type Html } from '../html.js';
import { number, plural, profileNames, sentence, sharedNames, until, when } from '../format.js';
import { blockedBadge, editLabel, isUsable, keyTable, keyTraits, newestFirst, revokeConfirmation, revokeTitle } from './key-views.js';
import { usageSection } from './usage.js';
import { accessBack, defaultKeyForm, FORM_NONCE, formRecordId, keyCreateForm, newFormNonce, noRoomForKey, operatorKeyPlace, sendKeySentAlready, sendNewKey, takeKeyForm, type RefusedKeyForm } from './keys.js';
import { auditTable, planNamesOf } from './audit.js';
import { memberRemovalLink, registerMemberRemovalPages } from './member-removal.js';
import { limitsChangeOf, limitsInEffect, limitsRefusal, limitsSection, typedLimits, type RefusedLimits } from './account-limits.js';

type AccountRequest = FastifyRequest<{ Params: { id: string } }>;
/** An invitation the form asked for and was refused: the address as typed, and why. */
interface RefusedInvitation {
  email: string;
  refusal: string;
}
/** A plan form refused: the plan chosen and the end typed (shown again as sent), the field at fault, and why. */
interface RefusedPlan {
  planId: string;
  planEnds: string;
  field: 'plan' | 'planEnds';
  refusal: string;
}
/** Forms of the account's page refused, each shown again in its own form, with why beside the field. */
interface RefusedForms {
  invitation?: RefusedInvitation;
  key?: RefusedKeyForm;
  limits?: RefusedLimits;
  plan?: RefusedPlan;
}
/** A plan's end that is no day: said beside the Plan ends field, not the plan's. */
class PlanEndsError extends OperationError {}
const RECENT_EVENTS = 10;
/** Accounts on one page of the list (a gateway may have thousands). */
export const ACCOUNTS_PER_PAGE = 100;
/** What the API access form's hidden field sends: the switch's new position. */
const API_ACCESS_SWITCH = ['on', 'off'] as const;

export function registerAccountPages(app: FastifyInstance, dash: Dashboard): void {
  const { rt } = dash;
  registerMemberRemovalPages(app, dash);

  app.get('/accounts', async (request, reply) => {
    operatorOf(request);
    return sendAccounts(request, reply);
  });

  app.post('/accounts', async (request, reply) => {
    operatorOf(request);
    const { nonce, id: accountId } = formRecordId(request, 'acc');
    if (accountId === undefined) return sendAccounts(request, reply, { kind: 'error', text: 'This form was out of date. Check it and send it again.' }, 400, nonce);
    try {
      // The form always sends a plan: an empty one is refused like any plan that does not exist.
      const account = await createAccount(rt, { name: field(request.body, 'name'), planId: field(request.body, 'plan') }, actorOf(dash, request), { id: accountId });
      setNotice(dash, reply, { kind: 'success', text: `Account “${account.name}” created. Invite its first member below.` });
      return redirect(reply, `/accounts/${account.id}`);
    } catch (error) {
      if (!(error instanceof OperationError)) throw error;
      // Sent again, or twice at once (a double click): the first one created the account.
      if (error.kind === 'conflict') return sendAccountSentAlready(request, reply, accountId);
      // Said beside the form, with what was typed still there and the keyboard on the name: not at the page's top.
      // (Read as sent: a field sent twice is what was refused.) A plan the profile does not have, or sent twice, only a hand-edited form sends.
      const sent = (name: string) => {
        const value = (request.body as Record<string, unknown> | undefined)?.[name];
        return typeof value === 'string' ? value : '';
      };
      const planId = sent('plan');
      const refused = { name: sent('name'), planId, field: rt.config.plans[planId] === undefined || error.message.includes('“plan”') ? ('plan' as const) : ('name' as const), text: sentence(error.message, profileNames(rt.config)) };
      return sendAccounts(request, reply, undefined, OPERATION_STATUS[error.kind], nonce, refused);
    }
  });

  /** A create form that made its account already, sent again: no second account; what the first send made (deleted since, perhaps). */
  async function sendAccountSentAlready(request: FastifyRequest, reply: FastifyReply, accountId: string): Promise<FastifyReply> {
    const account = await rt.store.getAccount(accountId);
    const [last] = account ? [] : await rt.store.listAudit({ accountId, limit: 1 });
    const name = account?.name ?? (typeof last?.detail.name === 'string' ? last.detail.name : accountId);
    const made = account
      ? html`It created the account “${account.name}” on ${when(account.createdAt)}. No other account was created.`
      : html`It created the account “${name}”, deleted since${last ? html` (${when(last.at)})` : ''}. No other account was created.`;
    const body = html`<h1>This form was sent already</h1>
<div class="notice" role="status"><p>${made}</p></div>
<div class="actions">${account ? html`<a class="button" href="/accounts/${account.id}">Go to ${account.name}</a>` : ''}<a class="button secondary" href="/accounts">Back to the accounts</a></div>`;
    return sendPage(dash, request, reply, { title: 'This form was sent already', body, status: 409 });
  }

  app.get<{ Params: { id: string } }>('/accounts/:id', async (request, reply) => {
    operatorOf(request);
    return sendAccount(request, reply, await getAccount(rt, request.params.id));
  });

  app.post<{ Params: { id: string } }>('/accounts/:id/plan', async (request, reply) => {
    operatorOf(request);
    try {
      const planId = field(request.body, 'plan');
      const planEndsAt = planEndsOf(request.body);
      const before = await getAccount(rt, request.params.id);
      const { account, changed } = await changeAccount(rt, before.id, { planId, ...(planEndsAt === undefined ? {} : { planExpiresAt: planEndsAt }) }, actorOf(dash, request));
      const ends = account.planExpiresAt === null ? '' : `, until ${dayOf(account.planExpiresAt)}`;
      // The plan it is on, sent again as the form shows it: no move, nothing written.
      if (!changed) {
        setNotice(dash, reply, { kind: 'info', text: `Nothing changed: “${account.name}” is already on the ${planName(planId)} plan${ends}.` });
        return redirect(reply, `/accounts/${account.id}`);
      }
      // Keys in use that worked until this change and are refused from their next request: said here, where it was chosen
      // (as the CLI and admin API warn of it), with what undoes it. An account without such keys loses nothing to say.
      const now = rt.clock();
      const stopped = await keysTurnedOff(rt, before, account, now);
      const noAccess = rt.config.plans[planId]?.apiAccess === false;
      const refused = noAccess
        ? stopped > 0
          ? ` It does not include API access: ${keysStoppedText(stopped, 'api_disabled', 'the account is on a plan that includes API access')}.`
          : ''
        : planEnded(account, now)
          ? // A day already past may be a mistyped year: said with or without keys.
            ` That day has passed: ${stopped > 0 ? keysStoppedText(stopped, 'plan_expired', 'the plan is renewed') : 'the account’s keys are refused until the plan is renewed'}.`
          : '';
      // The same plan with another end: the end is what changed.
      const moved =
        planId !== before.planId
          ? `“${account.name}” is now on the ${planName(planId)} plan${ends}.`
          : `“${account.name}” stays on the ${planName(planId)} plan, which now ${account.planExpiresAt === null ? 'has no end' : `ends ${dayOf(account.planExpiresAt)}`}.`;
      setNotice(dash, reply, { kind: stopped > 0 ? 'warning' : 'success', text: `${moved}${refused}`, code: stopped > 0 ? [noAccess ? 'api_disabled' : 'plan_expired'] : [] });
      return redirect(reply, `/accounts/${account.id}`);
    } catch (error) {
      if (!(error instanceof OperationError) || error.kind === 'not_found') throw error;
      const account = await getAccount(rt, request.params.id);
      // Shown again as sent (a plan the profile has, the end as typed), the refusal beside the field at fault.
      const [chosen] = fields(request.body, 'plan');
      const [typedEnds] = fields(request.body, 'planEnds');
      const plan: RefusedPlan = {
        planId: chosen !== undefined && Object.hasOwn(rt.config.plans, chosen) ? chosen : account.planId,
        planEnds: typedEnds ?? (account.planExpiresAt === null ? '' : dayOf(account.planExpiresAt)),
        field: error instanceof PlanEndsError ? 'planEnds' : 'plan',
        // A plan without a meter the account has its own limit of is refused for that limit: said in the Limits form's words.
        refusal: error instanceof PlanEndsError ? error.message : limitsRefusal(error, undefined, account, rt.config.plans),
      };
      return sendAccount(request, reply, account, undefined, OPERATION_STATUS[error.kind], { plan });
    }
  });

  app.post<{ Params: { id: string } }>('/accounts/:id/limits', async (request, reply) => {
    operatorOf(request);
    const before = await getAccount(rt, request.params.id);
    const plan = rt.config.plans[before.planId];
    let change: ReturnType<typeof limitsChangeOf>;
    try {
      // The CLI's parser (limits/limit-specs.ts), then the operation the CLI and admin API use: checked and audited alike.
      change = limitsChangeOf(request.body, before, plan);
      if (change === undefined) {
        setNotice(dash, reply, { kind: 'info', text: `Nothing changed: the limits of “${before.name}” are as they were.` });
        return redirect(reply, `/accounts/${before.id}`);
      }
      const { account, changed } = await changeAccount(rt, before.id, { limits: change }, actorOf(dash, request));
      // “Use the plan’s limits” from a page older than the change that already gave them back (or clicked twice),
      // or windows written otherwise than shown (“25-per-1s,”) that are the same.
      if (!changed) {
        const unchanged = change === null ? `“${account.name}” already uses the ${planName(account.planId)} plan’s limits` : `the limits of “${account.name}” are as they were`;
        setNotice(dash, reply, { kind: 'info', text: `Nothing changed: ${unchanged}.` });
        return redirect(reply, `/accounts/${account.id}`);
      }
      const lead = change === null ? `“${account.name}” is back on the ${planName(account.planId)} plan’s limits` : `The limits of “${account.name}” are saved`;
      setNotice(dash, reply, { kind: 'success', text: `${lead}. In effect from its keys’ next request: ${limitsInEffect(account, rt.config.plans)}.` });
      return redirect(reply, `/accounts/${account.id}`);
    } catch (error) {
      if (!(error instanceof OperationError) || error.kind === 'not_found') throw error;
      const refused: RefusedLimits = { typed: typedLimits(request.body, plan), refusal: limitsRefusal(error, change, before, rt.config.plans) };
      return sendAccount(request, reply, before, undefined, OPERATION_STATUS[error.kind], { limits: refused });
    }
  });

  // Turning API access off stops every key of the account at once: a confirmation page
  // first, as for revoking one key. Turning it on again is one click.
  app.get<{ Params: { id: string } }>('/accounts/:id/api-access', async (request, reply) => {
    operatorOf(request);
    const account = await getAccount(rt, request.params.id);
    const inUse = (await rt.store.listKeys({ accountId: account.id })).filter((k) => isUsable(k, rt.clock())).length;
    const body = apiAccessOffConfirmation(account, inUse, { action: `/accounts/${account.id}/api-access`, cancel: `/accounts/${account.id}`, form: html`${csrfField(request)}<input type="hidden" name="apiAccess" value="off">` });
    return sendPage(dash, request, reply, { title: `Turn API access off for ${account.name}`, body });
  });

  app.post<{ Params: { id: string } }>('/accounts/:id/api-access', async (request, reply) => {
    operatorOf(request);
    // Only the form's own on and off: anything else is refused, never read as off.
    const position = oneOf(request.body, 'apiAccess', API_ACCESS_SWITCH);
    if (position === undefined) {
      return sendAccount(request, reply, await getAccount(rt, request.params.id), { kind: 'error', text: notOffered('API access', API_ACCESS_SWITCH) }, 400);
    }
    const apiAccess = position === 'on';
    const { account, before } = await changeAccount(rt, request.params.id, { apiAccess }, actorOf(dash, request));
    // Keys in use that worked until now: said, with what undoes it; none (or none that worked, its plan without API access): nothing to say of them.
    const stopped = apiAccess ? 0 : await keysTurnedOff(rt, before, account, rt.clock());
    setNotice(dash, reply, {
      kind: stopped > 0 ? 'warning' : 'success',
      text: apiAccess
        ? `API access is on for “${account.name}” (if its plan includes it).`
        : `API access is off for “${account.name}”${stopped > 0 ? `: ${keysStoppedText(stopped, 'api_disabled', 'API access is turned back on')}` : ''}.`,
      code: stopped > 0 ? ['api_disabled'] : [],
    });
    return redirect(reply, `/accounts/${account.id}`);
  });

  app.post<{ Params: { id: string } }>('/accounts/:id/invite', async (request, reply) => {
    operatorOf(request);
    const account = await getAccount(rt, request.params.id);
    const email = field(request.body, 'email');
    // The form sent again (a reload of the page that showed the link, or a double click)
    // would replace the invitation it made, ending the link just shown: its id, kept in the
    // audit entry of that invitation, finds it instead. (The link itself is random and
    // stored hashed: it cannot be shown again.)
    const nonce = field(request.body, 'form_id');
    const form = FORM_NONCE.test(nonce) ? createHmac('sha256', viewerOf(request).formSecret).update(`invite form ${account.id} ${email.trim().toLowerCase()} ${nonce}`).digest('base64url') : undefined;
    try {
      const invited = form === undefined ? await inviteMember(rt, { email, accountId: account.id, role: 'member' }, actorOf(dash, request)) : await inviteMemberOnce(rt, { email, accountId: account.id, role: 'member' }, actorOf(dash, request), form);
      if ('sentAlready' in invited) return sendSentAlready(request, reply, account, invited.sentAlready);
      const body = html`<h1>Invitation for ${invited.member.email}</h1>
<section class="secret" aria-labelledby="invite-warning">
  <p id="invite-warning"><strong>This link is shown only now.</strong> Send it to ${invited.member.email}; it lets them choose a password for “${account.name}”. It works once, for 7 days.</p>
  ${invited.replaced ? html`<p>${invited.member.email} had a pending invitation${replacedWhat(invited.replaced, account.id)}: its link no longer works.</p>` : ''}
  <label for="invite-link">Invitation link</label>
  <input id="invite-link" type="text" readonly value="${invited.url}" autocomplete="off" spellcheck="false" data-select-on-focus aria-describedby="invite-warning" autofocus>
  <div class="actions"><button type="button" data-copy="invite-link" hidden>Copy link</button></div>
  <p id="invite-link-status" class="copy-status" role="status" aria-live="polite"></p>
</section>
<div class="actions"><a class="button secondary" href="/accounts/${account.id}">Back to ${account.name}</a></div>`;
      return sendPage(dash, request, reply, { title: `Invitation for ${invited.member.email}`, body, status: 201 });
    } catch (error) {
      if (!(error instanceof OperationError) || error.kind === 'not_found') throw error;
      // Said beside the form, below both key tables, with the address as typed: not at the page's top.
      return sendAccount(request, reply, account, undefined, OPERATION_STATUS[error.kind], { invitation: { email, refusal: sentence(error.message, profileNames(rt.config)) } });
    }
  });

  /** The answer to an invitation form sent again: what its first send made, and whether that link still works. */
  function sendSentAlready(request: AccountRequest, reply: FastifyReply, account: AccountRecord, made: InvitedByForm): FastifyReply {
    const state = { live: ': the link shown then still works.', used: `, and its link has been used: ${made.email} has chosen a password and can sign in.`, ended: ', but that link no longer works (it was replaced, it expired, or its member was removed).' }[made.link];
    const body = html`<h1>This form was sent already</h1>
<div class="notice" role="status"><p>It created the invitation for ${made.email} on ${when(made.at)}. No other invitation was made${state}</p></div>
${made.link === 'used' ? '' : html`<p>The link was shown once, in the answer to that form. If you do not have it, invite ${made.email} again with a new form: its link replaces this one.</p>`}
<div class="actions"><a class="button" href="/accounts/${account.id}">Back to ${account.name}</a></div>`;
    return sendPage(dash, request, reply, { title: 'This form was sent already', body, status: 409 });
  }

  // A key for the account, made from its page as a member makes one from theirs (the same
  // form and checks, keys.ts): its secret shown once, in the answer; audited as key.created
  // under the operator's email, as the CLI and admin API's are under theirs.
  app.post<{ Params: { id: string } }>('/accounts/:id/keys', async (request, reply) => {
    operatorOf(request);
    const account = await getAccount(rt, request.params.id);
    const taken = await takeKeyForm(dash, request, account);
    // Said in the form on the account's page, with what was sent still there.
    if ('refused' in taken) return sendAccount(request, reply, account, undefined, taken.refused.status, { key: taken.refused });
    if ('sentAlready' in taken) return sendKeySentAlready(dash, request, reply, taken.sentAlready, operatorKeyPlace(account));
    return sendNewKey(dash, request, reply, account, taken.issued, operatorKeyPlace(account));
  });

  app.get<{ Params: { id: string; keyId: string } }>('/accounts/:id/keys/:keyId/revoke', async (request, reply) => {
    operatorOf(request);
    const account = await getAccount(rt, request.params.id);
    const key = await getKey(rt, request.params.keyId, account.id);
    const now = rt.clock();
    const body = revokeConfirmation(key, now, { action: `/accounts/${account.id}/keys/${key.id}/revoke`, cancel: `/accounts/${account.id}`, form: csrfField(request), all: await rt.store.listKeys({ accountId: account.id }) });
    return sendPage(dash, request, reply, { title: revokeTitle(key, now), body });
  });

  app.post<{ Params: { id: string; keyId: string } }>('/accounts/:id/keys/:keyId/revoke', async (request, reply) => {
    operatorOf(request);
    const account = await getAccount(rt, request.params.id);
    const key = await revokeKey(rt, request.params.keyId, actorOf(dash, request), account.id);
    setNotice(dash, reply, { kind: 'success', text: `Key “${key.name}” (${key.hint}) of ${account.name} is revoked.`, code: [key.hint] });
    return redirect(reply, `/accounts/${account.id}`);
  });

  app.post<{ Params: { id: string; keyId: string } }>('/accounts/:id/keys/:keyId/unblock', async (request, reply) => {
    operatorOf(request);
    const account = await getAccount(rt, request.params.id);
    const { key, lifted } = await unblockKey(rt, request.params.keyId, actorOf(dash, request), account.id);
    setNotice(dash, reply, { kind: 'success', text: lifted > 0 ? `The block of key “${key.name}” (${key.hint}) is lifted; its requests are admitted again.` : `Key “${key.name}” (${key.hint}) was not blocked; nothing to lift.`, code: [key.hint] });
    return redirect(reply, `/accounts/${account.id}`);
  });

  function planName(planId: string): string {
    return rt.config.plans[planId]?.name ?? planId;
  }

  /**
   * The profile's plans to choose from, `selected` chosen. An account on a plan the profile
   * no longer defines (its keys are refused as api_disabled) is shown on that plan, as an
   * option that cannot be sent: no other plan looks chosen, and the form asks for one
   * (the select is `required`) rather than moving the account to the first unnoticed.
   */
  function planOptions(selected: string): Html {
    const gone = rt.config.plans[selected] === undefined ? html`<option value="" selected disabled>${selected} (not in this profile: choose a plan)</option>` : '';
    return html`${gone}${Object.keys(rt.config.plans).map((id) => html`<option value="${id}"${id === selected ? html` selected` : ''}>${planName(id)}</option>`)}`;
  }

  /**
   * `nonce`: the create form's, kept when the form is shown again with an error;
   * `refused`: that form as it was sent, and why it was refused, said in it.
   */
  async function sendAccounts(request: FastifyRequest, reply: FastifyReply, notice?: Notice, status = 200, nonce = newFormNonce(), refused?: { name: string; planId: string; field: 'name' | 'plan'; text: string }): Promise<FastifyReply> {
    const now = rt.clock();
    // A page at a time, oldest first; keys and members are read for that page's accounts only.
    const cursor = queryValue(request.query, 'after');
    const q = queryValue(request.query, 'q')?.trim();
    const search = q !== undefined && q !== '' ? q.slice(0, 200) : undefined;
    const listed = await rt.store.listAccounts({
      limit: ACCOUNTS_PER_PAGE + 1,
      ...(cursor !== undefined ? { after: placeOf(cursor) } : {}),
      ...(search !== undefined ? { search } : {}),
    });
    const accounts = listed.slice(0, ACCOUNTS_PER_PAGE);
    const next = listed.length > ACCOUNTS_PER_PAGE ? cursorOf(accounts[accounts.length - 1] as AccountRecord) : undefined;
    const accountIds = accounts.map((account) => account.id);
    const usable = (await rt.store.listKeys({ accountIds })).filter((k) => isUsable(k, now));
    const members = groupBy(await rt.store.listMembers({ accountIds }), (m) => m.accountId);
    // The page's blocks in one ask (every usable key's and its account's: one Redis round trip),
    // and each account's main meter only (in memory a lookup; with Redis one HMGET each, sent together).
    const blocked = await blockedUntilOf(rt, usable);
    const usages = await Promise.all(
      accounts.map((account) => {
        const meter = mainMeterOf(rt.config.plans[account.planId]);
        return accountUsage(rt, account, { meters: meter === undefined ? [] : [meter] });
      }),
    );
    const usableOf = groupBy(usable, (k) => k.accountId);
    const rows = accounts.map((account, i) => {
      const keys = usableOf.get(account.id) ?? [];
      return { account, usage: usages[i] as AccountUsage, keys: keys.length, members: members.get(account.id)?.length ?? 0, blocked: blocked && keys.flatMap((k) => blocked.get(k.id) ?? []) };
    });
    const shared = sharedNames(accounts);
    const listUrl = (place?: string) => {
      const params = new URLSearchParams({ ...(search !== undefined ? { q: search } : {}), ...(place !== undefined ? { after: place } : {}) }).toString();
      return params === '' ? '/accounts' : `/accounts?${params}`;
    };
    const pager =
      cursor !== undefined || next !== undefined
        ? html`<nav class="pager" aria-label="Pages of accounts">${cursor !== undefined ? html`<a href="${listUrl()}">First page</a>` : ''}${next !== undefined ? html`<a href="${listUrl(next)}" rel="next">Next ${ACCOUNTS_PER_PAGE} accounts</a>` : ''}</nav>`
        : '';
    const empty =
      search !== undefined
        ? html`<div class="empty"><p><strong>No account${cursor !== undefined ? ' further on' : ''} has “${search}” in its name or as its id.</strong></p><p><a href="/accounts">Show every account</a></p></div>`
        : cursor !== undefined
          ? html`<div class="empty"><p><strong>No more accounts.</strong></p><p><a href="/accounts">Back to the first page</a></p></div>`
          : html`<div class="empty"><p><strong>No accounts yet.</strong></p><p>Create one below, or with <code>keygate accounts create</code>.</p></div>`;
    const atFault = (name: 'name' | 'plan') => (refused?.field === name ? html` aria-invalid="true" aria-describedby="account-error" autofocus` : '');
    const body = html`<h1 id="accounts">Accounts</h1>
<p>${search !== undefined ? html`Accounts whose name contains “${search}”, or whose id it is` : html`Every account of this ${rt.config.title} gateway`}, oldest first, ${ACCOUNTS_PER_PAGE} to a page. Open one to see its keys, members and usage.</p>
<form method="get" action="/accounts" class="inline-form" role="search" aria-label="Accounts">
  <div class="field"><label for="account-search">Search accounts</label><input id="account-search" name="q" type="search" maxlength="200" value="${search ?? ''}"></div>
  <button type="submit">Search</button>${search !== undefined ? html`<p><a href="/accounts">Show every account</a></p>` : ''}
</form>
${rows.length === 0
  ? empty
  : html`<div class="table-wrap"><table class="data cards" aria-labelledby="accounts">
  <thead><tr><th scope="col">Account</th><th scope="col">Plan</th><th scope="col">API access</th><th scope="col">Usage</th><th scope="col">Blocked</th><th scope="col" class="num">Keys in use</th><th scope="col" class="num">Members</th><th scope="col">Created</th></tr></thead>
  <tbody>${rows.map(
    (r) => html`<tr>
    <td data-label="Account"><a class="account-name" href="/accounts/${r.account.id}">${r.account.name}</a>${shared.has(r.account.name) ? html` <code>${r.account.id}</code>` : ''}</td>
    <td data-label="Plan">${planName(r.account.planId)}</td>
    <td data-label="API access">${r.usage.apiEnabled ? html`<span class="badge on">On</span>` : html`<span class="badge off">Off</span>`}</td>
    <td data-label="Usage">${mainMeterCell(r.usage)}</td>
    <td data-label="Blocked">${blockedCell(r.blocked, r.keys, now)}</td>
    <td data-label="Keys in use" class="num">${number(r.keys)}</td>
    <td data-label="Members" class="num">${number(r.members)}</td>
    <td data-label="Created">${when(r.account.createdAt)}</td>
  </tr>`,
  )}</tbody></table></div>`}
${pager}
<h2 id="new-account">Create an account</h2>
<form method="post" action="/accounts" class="inline-form" aria-labelledby="new-account">
  ${csrfField(request)}
  <input type="hidden" name="form_id" value="${nonce}">
  ${refused ? html`<div class="notice error" role="alert" id="account-error"><p>${refused.text}</p></div>` : ''}
  <div class="field"><label for="account-name">Name</label><input id="account-name" name="name" type="text" required maxlength="200" autocomplete="off"${refused ? html` value="${refused.name}"` : ''}${atFault('name')}></div>
  <div class="field"><label for="account-plan">Plan</label><select id="account-plan" name="plan"${atFault('plan')}>${planOptions(refused && rt.config.plans[refused.planId] ? refused.planId : defaultPlanId(rt))}</select></div>
  <button type="submit">Create account</button>
</form>
<h2 id="plans">Plans</h2>
<div class="table-wrap"><table class="data cards" aria-labelledby="plans">
  <thead><tr><th scope="col">Plan</th><th scope="col">API access</th><th scope="col">Keys per account</th><th scope="col">Rate limits</th><th scope="col">Meters</th></tr></thead>
  <tbody>${Object.entries(rt.config.plans).map(
    ([id, plan]) => html`<tr>
    <td data-label="Plan"><span><strong>${plan.name ?? id}</strong> <code>${id}</code></span></td>
    <td data-label="API access">${plan.apiAccess ? 'Included' : 'Not included'}</td>
    <td data-label="Keys per account">${plan.maxKeys === undefined ? 'Unlimited' : number(plan.maxKeys)}</td>
    <td data-label="Rate limits">${plan.rateLimits.length === 0 ? html`<span class="muted">none</span>` : planOut(id, plan).rateLimits.map(windowText).join(', ')}</td>
    <td data-label="Meters">${Object.keys(plan.meters).length === 0 ? html`<span class="muted">none</span>` : Object.entries(plan.meters).map(([m, meter]) => `${meterAllowance(m, meter)}${meter.overage ? ' (overage allowed)' : ''}`).join('; ')}</td>
  </tr>`,
  )}</tbody></table></div>`;
    return sendPage(dash, request, reply, { title: 'Accounts', body, status, ...(notice ? { notice } : {}) });
  }

  /**
   * The account's create-key form: the member's form (keys.ts), opening as theirs does, with
   * no scope ticked. Refused, it comes back as sent, with why inside it and the keyboard on
   * the field at fault; at the plan's key limit (or on a plan without keys) it is not offered,
   * and what makes room is said instead (operators revoke keys here; they do not rotate them).
   */
  function newKeySection(request: FastifyRequest, account: AccountRecord, usable: readonly KeyRecord[], refused: RefusedKeyForm | undefined): Html {
    const noRoom = refused === undefined ? noRoomForKey(dash, account, usable, false) : undefined;
    if (noRoom !== undefined) return html`<div class="notice warning" id="no-room-for-key"><p>${noRoom}</p></div>`;
    const now = rt.clock();
    const offNote = apiEnabledOf(account, rt.config.plans, now)
      ? ''
      : html` API access is off for ${account.name}: a key created now is refused until ${accessBack(dash, account, planEnded(account, now))}.`;
    const form = refused?.form ?? defaultKeyForm(dash);
    return html`<p class="muted">Its secret is shown to you once, in the answer to the form: hand it to the account’s people as you would a password.${offNote}</p>
${keyCreateForm(dash, request, account, {
  action: `/accounts/${account.id}/keys`,
  form,
  nonce: refused?.nonce ?? newFormNonce(),
  ...(refused ? { error: refused.error, focus: refused.field ?? 'name', invalidName: form.name.trim() === '' } : {}),
})}`;
  }

  /** `refused`: a refused form (an invitation, a key, the limits, the plan), shown again as sent, with why beside its field. */
  async function sendAccount(request: AccountRequest, reply: FastifyReply, account: AccountRecord, notice?: Notice, status = 200, refused: RefusedForms = {}): Promise<FastifyReply> {
    const { invitation, limits, plan, key: refusedKey } = refused;
    // The field a refused plan form is about: marked, described by the refusal, and focused.
    const planInvalid = (name: RefusedPlan['field']) => (plan?.field === name ? html` aria-invalid="true" aria-describedby="plan-error" autofocus` : '');
    const now = rt.clock();
    const keys = newestFirst(await rt.store.listKeys({ accountId: account.id }));
    const usable = keys.filter((k) => isUsable(k, now));
    const gone = keys.filter((k) => !isUsable(k, now));
    const blocked = await blockedUntilOf(rt, usable);
    const traits = keyTraits(rt, account.planId);
    const members = await rt.store.listMembers({ accountId: account.id });
    const events = await rt.store.listAudit({ accountId: account.id, limit: RECENT_EVENTS });
    const accountNames = new Map([[account.id, account.name]]);
    // The plan's end is a text field written as the dashboard writes days (2027-01-31): a
    // browser's date field shows the day in an order of its own (06/12/2027: June or
    // December?), and takes no day typed as the dashboard shows them (the form is not sent).
    const body = html`<p><a href="/accounts">← All accounts</a></p>
<h1>${account.name}</h1>
<p class="muted">Account <code>${account.id}</code>, created ${when(account.createdAt)}.</p>
<h2>Plan and API access</h2>
<form method="post" action="/accounts/${account.id}/plan" class="inline-form">
  ${csrfField(request)}
  ${plan ? html`<div class="notice error" role="alert" id="plan-error"><p>${plan.refusal}</p></div>` : ''}
  <div class="field"><label for="plan">Plan</label><select id="plan" name="plan" required${planInvalid('plan')}>${planOptions(plan?.planId ?? account.planId)}</select></div>
  <div class="field"><label for="plan-ends">Plan ends <span class="hint">YYYY-MM-DD: that day, 00:00 UTC; empty: never</span></label><input type="text" id="plan-ends" name="planEnds" value="${plan?.planEnds ?? (account.planExpiresAt === null ? '' : dayOf(account.planExpiresAt))}"${planInvalid('planEnds')} placeholder="YYYY-MM-DD" pattern="[0-9]{4}-[0-9]{2}-[0-9]{2}" title="A day as YYYY-MM-DD, e.g. 2027-01-31" maxlength="10" size="12" autocomplete="off" spellcheck="false"></div>
  <button type="submit">Change plan</button>
</form>
${account.apiAccess
  ? html`<div class="inline-form">
  <p>The operator’s switch for API access is <strong>on</strong>.</p>
  <a class="button secondary" href="/accounts/${account.id}/api-access">Turn API access off</a>
</div>`
  : html`<form method="post" action="/accounts/${account.id}/api-access" class="inline-form">
  ${csrfField(request)}
  <input type="hidden" name="apiAccess" value="on">
  <p>The operator’s switch for API access is <strong>off</strong>.</p>
  <button type="submit">Turn API access on</button>
</form>`}
<h2 id="limits">Limits</h2>
${limitsSection(account, rt.config.plans, csrfField(request), limits)}
<h2>Keys</h2>
${usable.length > 0
  ? keyTable(usable, now, { caption: `Keys in use of ${account.name}` }, traits, {
      actions: (key) =>
        html`${blocked?.has(key.id)
          ? html`<form method="post" action="/accounts/${account.id}/keys/${key.id}/unblock" class="inline-form">${csrfField(request)}<button type="submit" class="secondary small" aria-label="Unblock ${key.name} (${key.hint})">Unblock</button></form>`
          : ''}<a class="button secondary small" href="/accounts/${account.id}/keys/${key.id}/edit" aria-label="${editLabel(rt, account.planId, key)} ${key.name} (${key.hint})">${editLabel(rt, account.planId, key)}</a><a class="button secondary small" href="/accounts/${account.id}/keys/${key.id}/limits" aria-label="Rate limits of ${key.name} (${key.hint})">Rate limits</a><a class="button secondary small" href="/accounts/${account.id}/keys/${key.id}/revoke" aria-label="Revoke ${key.name} (${key.hint})">Revoke</a>`,
      all: keys,
      blocked,
    })
  : html`<div class="empty"><p>No keys in use. Create one below, or a member of the account creates one on their own API keys page.</p></div>`}
${gone.length > 0 ? html`<h3 id="gone-keys">Revoked and expired keys</h3>${keyTable(gone, now, { heading: 'gone-keys' }, traits, { all: keys })}` : ''}
<h3 id="new-key">Create a key for ${account.name}</h3>
${newKeySection(request, account, usable, refusedKey)}
<h2 id="members">Members</h2>
${members.length === 0
  ? html`<div class="empty"><p>No members yet. Invite someone to manage this account’s keys.</p></div>`
  : html`<div class="table-wrap"><table class="data cards" aria-labelledby="members">
  <thead><tr><th scope="col">Email</th><th scope="col">Role</th><th scope="col">Status</th><th scope="col">Since</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
  <tbody>${members.map(
    (m) => html`<tr>
    <td data-label="Email"><span class="email">${m.email}</span></td>
    <td data-label="Role">${m.role}</td>
    <td data-label="Status">${m.passwordHash ? html`<span class="badge on">Active</span>` : html`<span class="badge invited">Invited</span>`}${m.lockedUntil !== null && m.lockedUntil > now ? html` <span class="badge off">Locked until ${until(m.lockedUntil)}</span>` : ''}</td>
    <td data-label="Since">${when(m.createdAt)}</td>
    <td data-label=""><div class="actions tight">${memberRemovalLink(account.id, m)}</div></td>
  </tr>`,
  )}</tbody></table></div>`}
<form method="post" action="/accounts/${account.id}/invite" class="inline-form">
  ${csrfField(request)}
  <input type="hidden" name="form_id" value="${newFormNonce()}">
  ${invitation ? html`<div class="notice error" role="alert" id="invite-error"><p>${invitation.refusal}</p></div>` : ''}
  <div class="field"><label for="invite-email">Invite a member by email</label><input id="invite-email" name="email" type="email" required value="${invitation?.email ?? ''}" autocomplete="off"${invitation ? html` aria-invalid="true" aria-describedby="invite-error" autofocus` : ''}></div>
  <button type="submit">Create invitation link</button>
</form>
<h2>Usage</h2>
${await usageSection(dash, account, 3, { usable, blocked })}
<h2 id="recent-activity">Recent activity</h2>
${auditTable(events, accountNames, { heading: 'recent-activity' }, planNamesOf(rt.config), { accountColumn: false })}
<p><a href="/audit?account=${account.id}">Full audit log of ${account.name}</a> · ${plural(members.length, 'member')}</p>`;
    return sendPage(dash, request, reply, { title: account.name, body, status, ...(notice ? { notice } : {}) });
  }
}

/**
 * What turning API access off does, said before it is done: every key of the account is
 * refused (api_disabled) from its next request, until it is turned on again; the keys
 * themselves are not revoked. Already off, there is nothing to confirm.
 */
function apiAccessOffConfirmation(account: AccountRecord, keysInUse: number, options: ConfirmationTarget): Html {
  if (!account.apiAccess) {
    return html`<h1>API access is already off for ${account.name}</h1>
<p>Its keys are refused until API access is turned on again, from the account’s page.</p>
<div class="actions"><a class="button secondary" href="${options.cancel}">Back to ${account.name}</a></div>`;
  }
  return html`${confirmationHeading(html`Turn API access off for ${account.name}?`)}
<div class="notice warning"><p>Every key of ${account.name} is refused, with <code>api_disabled</code>, from its next request, in every process, until API access is turned on again. The keys are not revoked: turned on again, they work again (as far as the plan includes API access).</p></div>
<dl class="facts">
  <div><dt>Account</dt><dd>${account.name}</dd></div>
  <div><dt>Keys in use</dt><dd>${number(keysInUse)}</dd></div>
</dl>
${confirmationForm(options, 'Turn API access off')}`;
}

/**
 * What a notice says of `count` keys in use that a change turned off (they worked until
 * it): refused, with `code`, from their next request until `back`.
 */
function keysStoppedText(count: number, code: string, back: string): string {
  const keys = count === 1 ? 'the account’s key in use, which worked until now, is refused from its next request' : `the account’s ${number(count)} keys in use, which worked until now, are refused from their next request`;
  return `${keys} (${code}) until ${back}`;
}

/** What a replaced invitation was, said only where it differs from the new one. */
function replacedWhat(replaced: { accountId: string | null; role: string }, accountId: string): string {
  if (replaced.role === 'operator') return ' as an operator';
  return replaced.accountId === accountId ? '' : ' to another account';
}

/** An account's main meter in the list: used / limit, in its unit (a gauge: its current level). */
function mainMeterCell(usage: AccountUsage): Html {
  const [name, meter] = Object.entries(usage.meters)[0] ?? [];
  if (name === undefined || meter === undefined) return html`<span class="muted">no meters</span>`;
  return html`${number(meter.usage)} / ${number(meter.limit)} ${meter.unit ?? name}`;
}

/**
 * Whether the rate limiter's block stops the account's keys now (a key's own block, or
 * the account's): `until`, when each blocked key's block ends; undefined when the
 * counters cannot say (Redis away).
 */
function blockedCell(until: readonly number[] | undefined, keys: number, now: number): Html {
  if (until === undefined) return html`<span class="muted" title="The counters did not answer">unknown</span>`;
  if (until.length === 0) return html`<span class="muted">No</span>`;
  return html`<span>${blockedBadge(Math.min(...until), now)}${until.length < keys ? html`<span class="related">${until.length} of ${keys} keys</span>` : ''}</span>`;
}

/** `rows` by their key (an account id). */
function groupBy<T>(rows: readonly T[], keyOf: (row: T) => string | null): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const row of rows) {
    const key = keyOf(row);
    if (key === null) continue;
    const group = groups.get(key);
    if (group) group.push(row);
    else groups.set(key, [row]);
  }
  return groups;
}

/** A time's day, as a date field shows it: `2027-01-31` (UTC). */
function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * The plan's end from the plan form: the start of the day given (UTC), null for none,
 * undefined when the form has no such field (one sent from an older page).
 */
function planEndsOf(body: unknown): number | null | undefined {
  const sent = fields(body, 'planEnds');
  if (sent.length === 0) return undefined;
  const day = (sent[0] as string).trim();
  if (day === '') return null;
  const at = /^\d{4}-\d{2}-\d{2}$/.test(day) ? Date.parse(`${day}T00:00:00Z`) : Number.NaN;
  if (!Number.isFinite(at) || dayOf(at) !== day) throw new PlanEndsError('invalid', `Plan ends: “${day.slice(0, 40)}” is not a day. Write it as YYYY-MM-DD, such as 2027-01-31, or leave the field empty for a plan that never ends.`);
  if (!inDateRange(at)) throw new PlanEndsError('invalid', `${outsideDateRange('Plan ends')}. Leave the field empty for a plan that never ends.`);
  return at;
}
