/**
 * A member's API keys: the list, creating a key (its secret shown once, in the answer
 * to the POST, never in a URL), revoking with a confirmation step, and rotating with a
 * chosen overlap. Every lookup is scoped to the member's own account, so another
 * account's key id is a 404 here. The create form and what answers it (takeKeyForm,
 * keyCreateForm, sendNewKey, sendKeySentAlready) serve an operator's account page too
 * (accounts.ts), with the way back to that page (operatorKeyPlace).
 */
import { createHmac } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { randomBase62, type KeyMode } from '../../keys/format.js';
import type { AccountRecord, KeyRecord } from '../../store/store.js';
import type { Config } from '../../config/schema.js';
import { allowedScopes, blockedUntilOf, createKey, type IssuedKey, DEFAULT_ROTATION_OVERLAP, getKey, keyLimitRefusal, newestReplacement, overlapsEndedBy, revokeKey, rotateKey, rotationConflict, ROTATION_OVERLAPS_MS, scopeNeeded, stoppedKeyRefusal } from '../../operations/keys.js';
import { idFromDigest, newId } from '../../ids.js';
import { OperationError, OPERATION_STATUS } from '../../operations/errors.js';
import { accountUsage } from '../../operations/usage.js';
import { apiEnabledOf, planEnded } from '../../operations/accounts.js';
import { actorOf, csrfField, field, fields, notOffered, oneOf, ownAccount, redirect, setNotice, viewerOf, type Dashboard } from '../context.js';
import { confirmationHeading, sendPage } from '../layout.js';
import { html, type Html } from '../html.js';
import { keyEnd, number, plural, profileNames, relative, sentence, when } from '../format.js';
import { editLabel, ifSecretLost, isUsable, keyAsShown, keyMomentsShown, keyNameField, keyTable, keyTraits, newestFirst, NO_NAME, refusalText, revokeConfirmation, revokeTitle, SCOPE_NEEDED, scopeChoices, secretPanel, WILDCARD_ALONE, type KeyTraits } from './key-views.js';
import { apiOffReason, writePendingUsage } from './usage.js';
import { CREATE_HINT, KEY_WINDOWS_FIELD, keyWindowsField, keyWindowsOf, keyWindowsRefusal } from './key-limits.js';
import type { WindowWritten } from '../../limits/limit-specs.js';
import { andList } from '../../list-words.js';

const DAY = 86_400_000;
/** Expiry choices offered when creating a key. */
const EXPIRY_CHOICES = { never: null, '30d': 30 * DAY, '90d': 90 * DAY, '1y': 365 * DAY } as const;
type ExpiryChoice = keyof typeof EXPIRY_CHOICES;
const EXPIRY_ORDER = Object.keys(EXPIRY_CHOICES) as ExpiryChoice[];
const EXPIRY_LABELS: Record<ExpiryChoice, string> = { never: 'Never', '30d': 'In 30 days', '90d': 'In 90 days', '1y': 'In one year' };

type OverlapChoice = keyof typeof ROTATION_OVERLAPS_MS;
const OVERLAP_LABELS: Record<OverlapChoice, string> = {
  now: 'No overlap: the current key stops working now',
  '1h': '1 hour',
  '24h': '24 hours',
  '7d': '7 days',
};
const OUT_OF_DATE = 'This form was out of date. Check it and send it again.';

/** What the nonce of a form that issues a key or an invitation is: random base62. */
export const FORM_NONCE = /^[0-9A-Za-z]{22}$/;

export function newFormNonce(): string {
  return randomBase62(22);
}

/**
 * The id of the record (a key, an account) a create form makes, and the nonce to show the
 * form with again. The id is derived from the form's nonce (see `formNonceField`) and the
 * session's own secret: the same form sent again names the same record, and no one can
 * choose an id. A form without a nonce (a page from before forms had one) gets a fresh
 * id; one whose nonce is not one gets none (a new nonce to show the form with).
 */
export function formRecordId(request: FastifyRequest, kind: 'acc' | 'key'): { nonce: string; id: string | undefined } {
  const sent = field(request.body, 'form_id');
  if (sent === '') return { nonce: newFormNonce(), id: newId(kind) };
  if (!FORM_NONCE.test(sent)) return { nonce: newFormNonce(), id: undefined };
  const purpose = kind === 'key' ? 'key form' : 'account form';
  const digest = createHmac('sha256', viewerOf(request).formSecret).update(`${purpose} ${sent}`).digest();
  return { nonce: sent, id: idFromDigest(kind, digest) };
}

/**
 * The nonce of a form that issues a key, from which (with the session's secret) the key's
 * id is derived: sent again (a reload of the page that answered it), the form issues no
 * second key.
 */
function formNonceField(nonce: string): Html {
  return html`<input type="hidden" name="form_id" value="${nonce}">`;
}

/** A create form's fields, as sent (or as it opens). */
export interface KeyForm {
  name: string;
  mode: KeyMode;
  scopes: string[];
  expiry: ExpiryChoice;
  /** The key's own rate-limit windows as typed (key-limits.ts): `10-per-1m, 2-per-1s`; empty for none. */
  rateLimits: string;
}

/** The field a create form was refused for, where the refusal is about one field the form marks (the name's is marked by itself). */
export type RefusedField = 'rateLimits';

/** A create form refused: shown again as sent, with its nonce (the same form, the same key), why, and the field at fault. */
export interface RefusedKeyForm {
  form: KeyForm;
  nonce: string;
  error: string;
  status: number;
  field?: RefusedField;
}

/** What a create form sent did: issued a key, found the key it issued already (sent again), or was refused. */
export type KeyFormTaken = { issued: IssuedKey } | { sentAlready: KeyRecord } | { refused: RefusedKeyForm };

/**
 * Where a key is created, as one viewer sees it: a member on their keys page, an operator
 * on the account's page. What the pages after the form lead back to and link.
 */
export interface KeyPlace {
  /** The page listing the account's keys. */
  back: string;
  /** Its button on a page that issued no key: `Back to the keys`, `Back to Acme`. */
  backText: string;
  /** Its button below a new key's secret: `I have copied it — back to the keys`. */
  copiedText: string;
  /** The account in a sentence: `this account` (a member's own), or its name. */
  account: string;
  /** A key's Edit page, from here. */
  edit(key: KeyRecord): string;
}

const MEMBER_KEYS: KeyPlace = { back: '/keys', backText: 'Back to the keys', copiedText: 'I have copied it — back to the keys', account: 'this account', edit: (key) => `/keys/${key.id}/edit` };

/** An operator's view of `account`'s keys: its page, and the operator's pages of its keys. */
export function operatorKeyPlace(account: AccountRecord): KeyPlace {
  const back = `/accounts/${account.id}`;
  return { back, backText: `Back to ${account.name}`, copiedText: `I have copied it — back to ${account.name}`, account: account.name, edit: (key) => `${back}/keys/${key.id}/edit` };
}

export function registerKeyPages(app: FastifyInstance, dash: Dashboard): void {
  const { rt } = dash;

  app.get('/keys', async (request, reply) => {
    const { account } = ownAccount(request);
    await writePendingUsage(dash);
    const now = rt.clock();
    const keys = newestFirst(await rt.store.listKeys({ accountId: account.id }));
    const usable = keys.filter((k) => isUsable(k, now));
    const gone = keys.filter((k) => !isUsable(k, now));
    const plan = rt.config.plans[account.planId];
    const usage = await accountUsage(rt, account);
    const blocked = await blockedUntilOf(rt, usable);
    const traits = keyTraits(rt, account.planId);
    const maxKeys = plan?.maxKeys;
    // A plan without keys (0) offers neither Create nor Rotate; one at its limit says how to make room.
    const noKeys = maxKeys === 0;
    const atLimit = maxKeys !== undefined && maxKeys > 0 && usable.length >= maxKeys;
    const rotatable = rotatableNow(rt.config.keys.rotation, keys, usable.length, maxKeys, now);
    const rowActions = (key: KeyRecord) => html`${rotatable(key)
      ? html`
      <a class="button secondary small" href="/keys/${key.id}/rotate" aria-label="Rotate ${key.name} (${key.hint})">Rotate</a>`
      : ''}
      <a class="button secondary small" href="/keys/${key.id}/edit" aria-label="${editLabel(rt, account.planId, key)} ${key.name} (${key.hint})">${editLabel(rt, account.planId, key)}</a>
      <a class="button secondary small" href="/keys/${key.id}/limits" aria-label="Rate limits of ${key.name} (${key.hint})">Rate limits</a>
      <a class="button secondary small" href="/keys/${key.id}/revoke" aria-label="Revoke ${key.name} (${key.hint})">Revoke</a>`;
    const body = html`<h1>API keys</h1>
<p>Keys let your programs call the ${rt.config.title} API as <strong>${account.name}</strong>. Treat each key like a password: anyone who has it can use your plan.</p>
${usage.apiEnabled
  ? ''
  : html`<div class="notice warning"><p>API access is off for this account (${apiOffReason(dash, account, usage.planExpired)}). ${plan && !plan.apiAccess ? 'Requests are refused until the account is on a plan that includes it.' : plan === undefined ? `You can manage keys, but requests are refused until ${accessBack(dash, account, false)}.` : usage.planExpired ? 'You can manage keys, but requests are refused until the plan is renewed.' : 'You can manage keys, but requests are refused until it is turned back on.'}</p></div>`}
${noKeys
  ? html`<div class="notice"><p>The ${usage.planName} plan does not include API keys: keys can be created once the account is on a plan that does.</p></div>`
  : html`<div class="actions">
  ${atLimit ? '' : html`<a class="button" href="/keys/new">Create a key</a>`}
  <span class="muted">${keysInUse(usable, maxKeys, usage.planName)}${atLimit && maxKeys !== undefined ? `: ${makeRoom(usable.length, maxKeys, usable.some(rotatable))}.` : ''}${noKeys || rt.config.keys.rotation === false || maxKeys === undefined ? '' : rotateComesBack(usable, maxKeys, now)}</span>
</div>`}
<h2 id="active-keys">Keys in use</h2>
${usable.length > 0
  ? keyTable(usable, now, { heading: 'active-keys' }, traits, { actions: rowActions, all: keys, blocked })
  : html`<div class="empty"><p><strong>No keys yet.</strong></p>${noKeys
      ? ''
      : html`<p>${usage.apiEnabled ? 'Create a key to start calling the API.' : `A key created now is refused until ${accessBack(dash, account, usage.planExpired)}.`} Its secret is shown once, right after you create it.</p>`}</div>`}
${gone.length > 0 ? html`<h2 id="gone-keys">Revoked and expired keys</h2><p class="muted">These keys no longer work. They stay listed so you can recognise them in logs.</p>${keyTable(gone, now, { heading: 'gone-keys' }, traits, { all: keys })}` : ''}`;
    return sendPage(dash, request, reply, { title: 'API keys', body });
  });

  app.get('/keys/new', async (request, reply) => {
    const { account } = ownAccount(request);
    // Opened at the plan's limit (by its address, or Back after creating the last key):
    // what would be refused is said now, not after the form is filled in.
    const maxKeys = rt.config.plans[account.planId]?.maxKeys;
    if (maxKeys !== undefined) {
      const now = rt.clock();
      const keys = await rt.store.listKeys({ accountId: account.id });
      const usable = keys.filter((k) => isUsable(k, now));
      const why = noRoomForKey(dash, account, usable, usable.some(rotatableNow(rt.config.keys.rotation, keys, usable.length, maxKeys, now)));
      if (why !== undefined) {
        const body = html`<h1>No room for another key</h1>
<div class="notice warning" role="alert"><p>${why}</p></div>
<div class="actions"><a class="button secondary" href="/keys">Back to the keys</a></div>`;
        return sendPage(dash, request, reply, { title: 'No room for another key', body });
      }
    }
    return sendCreateForm(request, reply, account, defaultKeyForm(dash), newFormNonce());
  });

  app.post('/keys', async (request, reply) => {
    const { account } = ownAccount(request);
    const taken = await takeKeyForm(dash, request, account);
    if ('refused' in taken) {
      const { form, nonce, error, status, field: refusedField } = taken.refused;
      return sendCreateForm(request, reply, account, form, nonce, error, status, refusedField);
    }
    if ('sentAlready' in taken) return sendKeySentAlready(dash, request, reply, taken.sentAlready, MEMBER_KEYS);
    return sendNewKey(dash, request, reply, account, taken.issued, MEMBER_KEYS);
  });

  app.get<{ Params: { id: string } }>('/keys/:id/revoke', async (request, reply) => {
    const { account } = ownAccount(request);
    const key = await getKey(rt, request.params.id, account.id);
    const now = rt.clock();
    const body = revokeConfirmation(key, now, { action: `/keys/${key.id}/revoke`, cancel: '/keys', form: csrfField(request), all: await rt.store.listKeys({ accountId: account.id }) });
    return sendPage(dash, request, reply, { title: revokeTitle(key, now), body });
  });

  app.post<{ Params: { id: string } }>('/keys/:id/revoke', async (request, reply) => {
    const { account } = ownAccount(request);
    const key = await revokeKey(rt, request.params.id, actorOf(dash, request), account.id);
    setNotice(dash, reply, { kind: 'success', text: `Key “${key.name}” (${key.hint}) is revoked. Requests with it are refused from now on.`, code: [key.hint] });
    return redirect(reply, '/keys');
  });

  // Profiles without in-place rotation (keys.rotation: false) have no rotate pages: a 404.
  // With `replace`, the old key is revoked as the replacement is made: no overlap to choose.
  const replacesAtOnce = rt.config.keys.rotation === 'replace';
  if (rt.config.keys.rotation) {
    app.get<{ Params: { id: string } }>('/keys/:id/rotate', async (request, reply) => {
      const { account } = ownAccount(request);
      const key = await getKey(rt, request.params.id, account.id);
      // Opened from an old tab or by its address: a rotation the key cannot have (or the
      // plan's limit would refuse) is said at once, not after the form.
      const now = rt.clock();
      const refused = isUsable(key, now) ? rotationRefusal(account, key, await rt.store.listKeys({ accountId: account.id }), now) : undefined;
      if (refused !== undefined) return sendCannotRotate(request, reply, key, sentence(refused, profileNames(rt.config)));
      return sendRotateForm(request, reply, key, newFormNonce());
    });

    app.post<{ Params: { id: string } }>('/keys/:id/rotate', async (request, reply) => {
      const { account } = ownAccount(request);
      const key = await getKey(rt, request.params.id, account.id);
      // With `replace` the page offers no overlap: none sent is none.
      const choice = field(request.body, 'overlap') || (replacesAtOnce ? 'now' : '');
      const { nonce, id: keyId } = formRecordId(request, 'key');
      if (keyId === undefined) return sendRotateForm(request, reply, key, nonce, OUT_OF_DATE, 400);
      if (replacesAtOnce && choice !== 'now') return sendRotateForm(request, reply, key, nonce, 'This API replaces a key at once: the current key cannot be kept working beside its replacement.', 400);
      if (!isOverlapChoice(choice)) return sendRotateForm(request, reply, key, nonce, 'Choose how long the current key keeps working.', 400);
      const before = await sentBefore(dash, keyId, account.id);
      if (before) return sendKeySentAlready(dash, request, reply, before, MEMBER_KEYS);
      try {
        const rotated = await rotateKey(rt, key.id, ROTATION_OVERLAPS_MS[choice], actorOf(dash, request), account.id, { id: keyId });
        const now = rt.clock();
        const previous = rotated.previous;
        const extra =
          choice === 'now'
            ? html`<div class="notice"><p>The previous key <code>${previous.hint}</code> was revoked and stopped working.</p></div>${rotated.ended.length > 0 ? overlapsEndedNotice(rotated.ended) : ''}`
            : // The same minute as every other page names for this end (keyEnd, rounded up): truncated here, it read "until 17:16" beside "stops working at 17:17" on the revoke page.
              html`<div class="notice"><p>The previous key <code>${previous.hint}</code> keeps working until ${keyEnd(previous.expiresAt, now)} (${relative(previous.expiresAt ?? now, now)}), then expires by itself. Deploy the new key before then.</p></div>`;
        const body = secretPanel(rt, rotated.key, rotated.secret, { heading: 'Copy your replacement key', back: '/keys', extra: html`${refusedWhileOff(dash, account, MEMBER_KEYS)}${extra}`, planId: account.planId, replaced: previous });
        return sendPage(dash, request, reply, { title: 'Copy your replacement key', body, status: 201 });
      } catch (error) {
        if (!(error instanceof OperationError)) throw error;
        const raced = error.kind === 'conflict' ? await sentBefore(dash, keyId, account.id) : undefined;
        if (raced) return sendKeySentAlready(dash, request, reply, raced, MEMBER_KEYS);
        // Refused by the plan's limit or by another rotation: the same form would be refused again.
        // A key that no longer works (the form was sent from an old page) is pointed on as its rotate page points it.
        if (error.kind === 'limit' || error.kind === 'conflict') return sendCannotRotate(request, reply, key, refusalText(error, profileNames(rt.config)));
        return sendRotateForm(request, reply, key, nonce, refusalText(error, profileNames(rt.config)), OPERATION_STATUS[error.kind]);
      }
    });
  }

  function sendCreateForm(request: FastifyRequest, reply: FastifyReply, account: AccountRecord, form: KeyForm, nonce: string, error?: string, status = 200, refused?: RefusedField): FastifyReply {
    const body = html`<h1>Create a key</h1>
${error ? html`<div class="notice error" role="alert" id="form-error"><p>${error}</p></div>` : ''}
${keyCreateForm(dash, request, account, { action: '/keys', form, nonce, focus: refused ?? 'name', invalidName: error !== undefined && form.name.trim() === '', cancel: '/keys' })}`;
    return sendPage(dash, request, reply, { title: 'Create a key', body, status });
  }

  /**
   * Why this account's `key` cannot be rotated now (another rotation, or the plan's key
   * limit), the keys it names as the member sees them; undefined if it can.
   */
  function rotationRefusal(account: AccountRecord, key: KeyRecord, accountKeys: readonly KeyRecord[], now: number): string | undefined {
    const plan = rt.config.plans[account.planId];
    const endsOverlaps = rt.config.keys.rotation === 'replace';
    // Under `replace` the keys before it still in an overlap end with the rotation: they take no room.
    const ending = endsOverlaps ? overlapsEndedBy(key, accountKeys, now) : [];
    return (
      rotationConflict(key, accountKeys, now, keyAsShown, { endsOverlaps, moments: keyMomentsShown }) ??
      (plan?.maxKeys === undefined ? undefined : keyLimitRefusal(plan.maxKeys, plan.name ?? account.planId, accountKeys.filter((k) => !ending.includes(k)), now, key.id, keyAsShown, keyMomentsShown))
    );
  }

  /**
   * The page for a key that cannot be rotated, saying why (409), with the way on that
   * `why` names. A key that was rotated (`why` says to rotate its working replacement)
   * offers that replacement's rotate page, where that rotation would be accepted, and
   * otherwise says why not yet and what to do (replacementNotYet); a key that no longer
   * works and has none, Create. A key refused by another rotation or by the plan's limit
   * is not helped by another key (which the limit would refuse too).
   */
  async function sendCannotRotate(request: FastifyRequest, reply: FastifyReply, key: KeyRecord, why: string): Promise<FastifyReply> {
    const { account } = ownAccount(request);
    const now = rt.clock();
    const accountKeys = await rt.store.listKeys({ accountId: account.id });
    const replacement = newestReplacement(key, accountKeys, now);
    const refused = replacement && rotationRefusal(account, replacement, accountKeys, now);
    const notYet = replacement && refused !== undefined ? replacementNotYet(account, key, replacement, refused, accountKeys, now) : undefined;
    const wayOn = replacement
      ? (notYet?.wayOn ?? html`<a class="button" href="/keys/${replacement.id}/rotate">Rotate “${replacement.name}” ${replacement.hint}</a>`)
      : isUsable(key, now)
        ? ''
        : html`<a class="button" href="/keys/new">Create a key</a>`;
    const body = html`<h1>Key “${key.name}” cannot be rotated</h1>
<div class="notice error" role="alert"><p>${why}</p></div>
${notYet ? html`<div class="notice" id="replacement-not-yet"><p>${notYet.why}</p></div>` : ''}
<div class="actions">${wayOn}<a class="button secondary" href="/keys">Back to the keys</a></div>`;
    return sendPage(dash, request, reply, { title: `${key.name} cannot be rotated`, body, status: 409 });
  }

  /**
   * Why the replacement a refusal names (`rotate its replacement … instead`) cannot be
   * rotated yet either (`refused`: rotationRefusal's words), and what the member can do,
   * for a page that would otherwise only lead back. While the key it replaced still works: when that key stops (the rotation
   * is accepted from then), or revoke that key now (its revoke page). At the plan's key
   * limit: which keys to revoke (each one's revoke page), or, on a plan without keys, none.
   */
  function replacementNotYet(account: AccountRecord, key: KeyRecord, replacement: KeyRecord, refused: string, accountKeys: readonly KeyRecord[], now: number): { why: Html; wayOn: Html } {
    const named = `“${replacement.name}” ${replacement.hint}`;
    const revokeLink = (k: KeyRecord) => html`<a class="button" href="/keys/${k.id}/revoke">Revoke “${k.name}” ${k.hint}</a>`;
    const endsOverlaps = rt.config.keys.rotation === 'replace';
    const replaced = endsOverlaps || replacement.rotatedFrom === null ? undefined : accountKeys.find((k) => k.id === replacement.rotatedFrom && isUsable(k, now));
    if (replaced && rotationConflict(replacement, accountKeys, now, keyAsShown) !== undefined) {
      const self = replaced.id === key.id;
      const which = self ? 'this key' : keyAsShown(replaced);
      const that = self ? 'this key' : 'that key';
      const why =
        replaced.expiresAt === null
          ? html`${named} cannot be rotated yet either: it replaced ${which}, which keeps working until it is revoked. Revoke ${that} to rotate ${named}.`
          : html`${named} cannot be rotated yet either: it replaced ${which}, which keeps working until ${keyEnd(replaced.expiresAt, now)} (${relative(replaced.expiresAt, now)}). ${named} can be rotated once ${that} has stopped working, or now if you revoke ${that} first.`;
      return { why, wayOn: revokeLink(replaced) };
    }
    const plan = rt.config.plans[account.planId];
    // The plan's limit: the keys it names are the others in use (under `replace`, not those the rotation ends); revoking enough of them makes room.
    const ending = endsOverlaps ? overlapsEndedBy(replacement, accountKeys, now) : [];
    const others = plan?.maxKeys ? accountKeys.filter((k) => isUsable(k, now) && k.id !== replacement.id && !ending.includes(k)) : [];
    return { why: html`${named} cannot be rotated either: ${refused}.`, wayOn: html`${others.map(revokeLink)}` };
  }

  async function sendRotateForm(request: FastifyRequest, reply: FastifyReply, key: KeyRecord, nonce: string, error?: string, status = 200): Promise<FastifyReply> {
    const now = rt.clock();
    const { account } = ownAccount(request);
    if (!isUsable(key, now)) {
      // When it stopped, and the key to rotate instead where its replacement works, as the CLI and admin API say it.
      const stopped = stoppedKeyRefusal(key, await rt.store.listKeys({ accountId: account.id }), now, keyAsShown, keyMomentsShown) ?? 'only a key that still works can be rotated';
      return sendCannotRotate(request, reply, key, sentence(stopped));
    }
    const kept = keptOnRotation(keyTraits(rt, account.planId), rt.config.keys.expiry);
    // Under `replace`, keys before this one still in an earlier rotation's overlap are revoked with it: named before, not only after.
    const ending = replacesAtOnce ? overlapsEndedBy(key, await rt.store.listKeys({ accountId: account.id }), now) : [];
    const body = html`${confirmationHeading(html`Rotate key “${key.name}”`)}
${error ? html`<div class="notice error" role="alert"><p>${error}</p></div>` : ''}
${replacesAtOnce
  ? html`<p>Rotating creates a replacement with the same ${kept}, shown to you once. This API allows one working key per account: the current key <code>${key.hint}</code> stops working as soon as the replacement is created: deploy the replacement right away.</p>${ending.length > 0 ? overlapsEndingNotice(ending, now) : ''}`
  : html`<p>Rotating creates a replacement with the same ${kept}, shown to you once. The current key <code>${key.hint}</code> keeps working for the overlap you choose, so you can deploy the replacement without downtime; after that it expires by itself.</p>`}
<form method="post" action="/keys/${key.id}/rotate" class="stack">
  ${csrfField(request)}
  ${formNonceField(nonce)}
  ${replacesAtOnce
    ? html`<input type="hidden" name="overlap" value="now">`
    : html`<fieldset>
    <legend>Keep the current key working for</legend>
    <div class="choices">${(Object.keys(ROTATION_OVERLAPS_MS) as OverlapChoice[]).map(
      (choice) => html`<label class="choice"><input type="radio" name="overlap" value="${choice}"${choice === DEFAULT_ROTATION_OVERLAP ? html` checked` : ''}> ${OVERLAP_LABELS[choice]}</label>`,
    )}</div>
  </fieldset>`}
  <div class="actions">
    <button type="submit">Rotate key</button>
    <a class="button secondary" href="/keys">Cancel</a>
  </div>
</form>`;
    return sendPage(dash, request, reply, { title: `Rotate ${key.name}`, body, status });
  }
}

/**
 * Takes a create form for `account` (a member's own, or any account's, for an operator),
 * checked as the member's form always was: the key is issued as `keygate keys create` and
 * the admin API issue it (the plan's key limit, scopes, audited under the viewer's email).
 * The form's nonce names the key: sent again, it issues no second key.
 */
export async function takeKeyForm(dash: Dashboard, request: FastifyRequest, account: AccountRecord): Promise<KeyFormTaken> {
  const { rt } = dash;
  const { form, refused } = readForm(rt, request.body);
  const { nonce, id: keyId } = formRecordId(request, 'key');
  const refuse = (error: string, status = 400, field?: RefusedField): KeyFormTaken => ({ refused: { form, nonce, error, status, ...(field ? { field } : {}) } });
  if (keyId === undefined) return refuse(OUT_OF_DATE);
  if (refused !== undefined) return refuse(refused);
  if (form.name.trim() === '') return refuse(NO_NAME);
  // As everywhere keys are made: a key may carry no scope (it reaches the routes that need
  // none) unless the profile says every key carries one, or no route needs none.
  const needed = form.scopes.length === 0 ? scopeNeeded(rt, account.planId) : undefined;
  if (needed !== undefined) return refuse(`Choose at least one scope: ${SCOPE_NEEDED[needed]}.`);
  if (form.scopes.includes('*') && form.scopes.length > 1) return refuse(WILDCARD_ALONE);
  const before = await sentBefore(dash, keyId, account.id);
  if (before) return { sentAlready: before };
  const expiresIn = EXPIRY_CHOICES[form.expiry];
  let rateLimits: WindowWritten[] = [];
  try {
    rateLimits = keyWindowsOf(form.rateLimits);
    const issued = await createKey(
      rt,
      { accountId: account.id, name: form.name, mode: form.mode, scopes: form.scopes, expiresAt: expiresIn === null ? null : rt.clock() + expiresIn, rateLimits },
      actorOf(dash, request),
      { id: keyId },
    );
    return { issued };
  } catch (error) {
    if (!(error instanceof OperationError)) throw error;
    // Sent twice at once (a double click): the other one issued the key.
    const raced = error.kind === 'conflict' ? await sentBefore(dash, keyId, account.id) : undefined;
    if (raced) return { sentAlready: raced };
    const windowsRefused = keyWindowsRefusal(error, rateLimits);
    if (windowsRefused !== undefined) return refuse(windowsRefused, OPERATION_STATUS[error.kind], 'rateLimits');
    // The scopes sent as well as the profile's: a refused one is repeated as it was sent.
    return refuse(refusalText(error, [...profileNames(rt.config), ...form.scopes]), OPERATION_STATUS[error.kind]);
  }
}

/** The page that shows a new key's secret, once (201, the answer to the form: never in an address). */
export function sendNewKey(dash: Dashboard, request: FastifyRequest, reply: FastifyReply, account: AccountRecord, issued: IssuedKey, place: KeyPlace): FastifyReply {
  const body = secretPanel(dash.rt, issued.key, issued.secret, {
    heading: 'Copy your new key',
    back: place.back,
    backText: place.copiedText,
    edit: place.edit(issued.key),
    planId: account.planId,
    extra: refusedWhileOff(dash, account, place),
  });
  return sendPage(dash, request, reply, { title: 'Copy your new key', body, status: 201 });
}

/**
 * A create form (`action`: where it is sent), its fields showing `form`. `focus`: the field
 * that takes the keyboard as the page opens (none on a page where the form is not the
 * point: an account's page before it is sent); `cancel`: a Cancel link, where the form is
 * a page of its own; `error`: why it was refused, said inside the form, where the form is
 * one of a page's several.
 */
export function keyCreateForm(
  dash: Dashboard,
  request: FastifyRequest,
  account: AccountRecord,
  options: { action: string; form: KeyForm; nonce: string; focus?: 'name' | RefusedField; invalidName?: boolean; cancel?: string; error?: string },
): Html {
  const { rt } = dash;
  const { form, focus } = options;
  const allowed = allowedScopes(rt, account.planId);
  const needed = scopeNeeded(rt, account.planId);
  const modes = rt.keyFormat.modes;
  return html`<form method="post" action="${options.action}" class="stack">
  ${csrfField(request)}
  ${formNonceField(options.nonce)}
  ${options.error ? html`<div class="notice error" role="alert" id="form-error"><p>${options.error}</p></div>` : ''}
  ${keyNameField(form.name, { invalid: options.invalidName ?? false, autofocus: focus === 'name' })}
  ${modes.length > 1
    ? html`<fieldset>
    <legend>Mode</legend>
    <span class="hint">The API is told each request’s mode; test keys spend the account’s rate limits and quotas as live keys do.</span>
    <div class="choices">${modes.map(
      (mode) => html`<label class="choice"><input type="radio" name="mode" value="${mode}"${mode === form.mode ? html` checked` : ''}> ${modeLabel(mode)}</label>`,
    )}</div>
  </fieldset>`
    : html`<input type="hidden" name="mode" value="${form.mode}">`}
  ${scopeChoices(allowed, form.scopes, needed)}
  ${keyWindowsField(form.rateLimits, CREATE_HINT, focus === 'rateLimits' ? 'form-error' : undefined)}
  ${rt.config.keys.expiry
    ? html`<div class="field">
    <label for="expiry">Expires</label>
    <select id="expiry" name="expiry">${EXPIRY_ORDER.map(
      (choice) => html`<option value="${choice}"${choice === form.expiry ? html` selected` : ''}>${EXPIRY_LABELS[choice]}</option>`,
    )}</select>
  </div>`
    : ''}
  <div class="actions">
    <button type="submit">Create key</button>
    ${options.cancel ? html`<a class="button secondary" href="${options.cancel}">Cancel</a>` : ''}
  </div>
</form>`;
}

/**
 * Why `account` has no room for another key (the plan's limit reached, or a plan without
 * keys), said where a create form would be; undefined where it has room. `canRotate`:
 * whether rotating a key is a way to make room here.
 */
export function noRoomForKey(dash: Dashboard, account: AccountRecord, usable: readonly KeyRecord[], canRotate: boolean): string | undefined {
  const plan = dash.rt.config.plans[account.planId];
  const maxKeys = plan?.maxKeys;
  if (maxKeys === undefined || usable.length < maxKeys) return undefined;
  const planName = plan?.name ?? account.planId;
  return maxKeys === 0 ? `The ${planName} plan does not include API keys.` : `${keysInUse(usable, maxKeys, planName)}: ${makeRoom(usable.length, maxKeys, canRotate)}.`;
}

/** A form that issued its key already, sent again (a reload of its answer): no second key, and the secret is not shown again. */
export async function sendKeySentAlready(dash: Dashboard, request: FastifyRequest, reply: FastifyReply, key: KeyRecord, place: KeyPlace): Promise<FastifyReply> {
  const { rt } = dash;
  // A rotate form's key is a replacement: the advice is the replacement page's, for the key it replaced as it is now.
  const replaced = key.rotatedFrom === null ? undefined : await rt.store.getKey(key.rotatedFrom);
  const body = html`<h1>This form was sent already</h1>
<div class="notice" role="status"><p>It created the key “${key.name}” (<code>${key.hint}</code>) on ${when(key.createdAt)}. No other key was created.</p></div>
<p>The key’s secret was shown once, in the answer to that form, and cannot be shown again. If you did not copy it, ${ifSecretLost(rt, replaced, rt.clock())}.</p>
<div class="actions"><a class="button" href="${place.back}">${place.backText}</a></div>`;
  return sendPage(dash, request, reply, { title: 'This form was sent already', body, status: 409 });
}

/**
 * Until what a key of this account is refused while its API access is off: a new key is
 * no exception, so its page says so.
 */
export function accessBack(dash: Dashboard, account: AccountRecord, planExpired: boolean): string {
  const plan = dash.rt.config.plans[account.planId];
  // A plan the profile no longer has: no switch brings its keys back, a move does (as the CLI's warning says).
  if (plan === undefined) return 'the account is moved to another plan';
  if (plan.apiAccess === false) return 'the account is on a plan that includes API access';
  return planExpired ? 'the plan is renewed' : 'API access is turned back on';
}

/**
 * On the page that shows a new key: the warning that it is refused for now, if API access
 * is off. The key is made all the same, as `keygate keys create` makes it (with its warning).
 */
function refusedWhileOff(dash: Dashboard, account: AccountRecord, place: KeyPlace): Html {
  const now = dash.rt.clock();
  if (apiEnabledOf(account, dash.rt.config.plans, now)) return html``;
  const planExpired = planEnded(account, now);
  return html`<div class="notice warning"><p>API access is off for ${place.account} (${apiOffReason(dash, account, planExpired)}): requests with this key are refused until ${accessBack(dash, account, planExpired)}.</p></div>`;
}

/** A create form as it opens. */
export function defaultKeyForm(dash: Dashboard): KeyForm {
  // No scope ticked: the viewer chooses what the key may do (a name and Enter alone never make an all-scopes key).
  return { name: '', mode: dash.rt.keyFormat.modes[0] ?? 'live', scopes: [], expiry: 'never', rateLimits: '' };
}

/**
 * The form as sent. A mode or expiry it does not offer (a hand-edited form) is
 * `refused`, naming the field, rather than read as the default: `expiry=forever` would
 * otherwise make a key that never expires. The form is shown again with the defaults.
 */
function readForm(rt: Dashboard['rt'], body: unknown): { form: KeyForm; refused?: string } {
  const modes = rt.keyFormat.modes;
  const defaultMode = modes[0] ?? 'live';
  // Not sent: a script's post, or (expiry) a profile whose keys never expire.
  const mode = oneOf(body, 'mode', modes, defaultMode);
  const expiry = oneOf(body, 'expiry', EXPIRY_ORDER, 'never');
  const form: KeyForm = { name: field(body, 'name'), mode: mode ?? defaultMode, scopes: fields(body, 'scope'), expiry: expiry ?? 'never', rateLimits: field(body, KEY_WINDOWS_FIELD) };
  if (mode === undefined) return { form, refused: notOffered('Mode', modes.map(modeLabel)) };
  if (expiry === undefined) return { form, refused: notOffered('Expires', EXPIRY_ORDER.map((c) => EXPIRY_LABELS[c])) };
  return { form };
}

/** The key a form issued already (sent before for this account), if any. */
async function sentBefore(dash: Dashboard, keyId: string, accountId: string): Promise<KeyRecord | undefined> {
  const key = await dash.rt.store.getKey(keyId);
  return key?.accountId === accountId ? key : undefined;
}

/** Keys named as the keys page shows them, by name and hint (never more): “production” rk_live_…a1B2 and … */
function keysNamed(keys: readonly KeyRecord[]): Html {
  const named = keys.map((k) => html`“${k.name}” <code>${k.hint}</code>`);
  return html`${named.map((name, i) => html`${i === 0 ? '' : i === named.length - 1 ? ' and ' : ', '}${name}`)}`;
}

/** On the rotate page under `keys.rotation: replace`: the earlier keys, still in an overlap, that the rotation will end. */
function overlapsEndingNotice(ending: readonly KeyRecord[], now: number): Html {
  const one = ending.length === 1;
  const ends = ending.map((k) => k.expiresAt).filter((at): at is number => at !== null);
  const still = ends.length === ending.length ? html` (until ${keyEnd(Math.max(...ends), now)})` : '';
  return html`<div class="notice warning" id="overlaps-ending"><p>Rotating also ends the overlap of an earlier rotation: ${one ? 'the earlier key' : 'the earlier keys'} ${keysNamed(ending)}, still working beside this one${still}, ${one ? 'is' : 'are'} revoked with it and ${one ? 'stops' : 'stop'} working at once.</p></div>`;
}

/** After a rotation under `keys.rotation: replace`: the earlier keys it ended, as revoked. */
function overlapsEndedNotice(ended: readonly KeyRecord[]): Html {
  const one = ended.length === 1;
  return html`<div class="notice" id="overlaps-ended"><p>The rotation also ended the overlap of an earlier rotation: ${one ? 'the earlier key' : 'the earlier keys'} ${keysNamed(ended)} ${one ? 'was' : 'were'} revoked and stopped working.</p></div>`;
}

function modeLabel(mode: KeyMode): string {
  return mode === 'live' ? 'Live' : 'Test';
}

function isOverlapChoice(value: string): value is OverlapChoice {
  return Object.hasOwn(ROTATION_OVERLAPS_MS, value);
}

/**
 * Which of an account's `keys` (`inUse` of them working) can be rotated now: a Rotate
 * button, and "or rotate one" at the plan's limit. None where the profile has no rotation
 * or the plan no keys, nor over the plan's limit (the plan was changed to a smaller one):
 * a replacement would still leave the other keys at or over it. Otherwise each key no
 * other rotation stands in the way of (`rotationConflict`).
 */
function rotatableNow(rotation: Config['keys']['rotation'], keys: readonly KeyRecord[], inUse: number, maxKeys: number | undefined, now: number): (key: KeyRecord) => boolean {
  if (rotation === false || maxKeys === 0 || (maxKeys !== undefined && inUse > maxKeys)) return () => false;
  const endsOverlaps = rotation === 'replace';
  return (key) => rotationConflict(key, keys, now, undefined, { endsOverlaps }) === undefined;
}

/**
 * How an account at (or over) its plan's key limit makes room for another key: over it
 * (the plan was changed to a smaller one), revoking one key is not enough, and rotating
 * is refused; and where no key can be rotated now (each is being replaced, or replaced one
 * still in its overlap) rotating is no way either (`canRotate` false in both cases).
 */
function makeRoom(inUse: number, maxKeys: number, canRotate: boolean): string {
  const toRevoke = inUse - maxKeys + 1;
  return `revoke ${toRevoke === 1 ? 'a key' : `${number(toRevoke)} keys`} to create another${canRotate ? ', or rotate one to replace it' : ''}`;
}

/**
 * Over the limit only by keys being replaced (a rotation's overlap at the limit), Rotate
 * comes back once enough of them stop working, or are revoked: said, since nothing else
 * says why no key offers Rotate. Empty where revoking them would not be enough (the plan
 * was changed to a smaller one).
 */
function rotateComesBack(usable: readonly KeyRecord[], maxKeys: number, now: number): Html {
  const outgoing = usable.filter((k) => usable.some((r) => r.rotatedFrom === k.id));
  const needed = usable.length - maxKeys;
  if (needed < 1 || outgoing.length < needed) return html``;
  // When enough of them have stopped: the needed-th end, soonest first.
  const end = outgoing.map((k) => k.expiresAt ?? Infinity).sort((a, b) => a - b)[needed - 1] ?? Infinity;
  const at = Number.isFinite(end) ? html` (${keyEnd(end, now)})` : '';
  if (needed === outgoing.length) {
    const one = needed === 1;
    return html` Rotate comes back once ${one ? 'the key being replaced stops' : 'the keys being replaced stop'} working${at}, or once you revoke ${one ? 'it' : 'them'}.`;
  }
  return html` Rotate comes back once ${number(needed)} of the keys being replaced stop working${at}, or once you revoke ${number(needed)} of them.`;
}

/**
 * `2 of 3 keys in use on the Pro plan`, counted as the plan's limit counts them when a
 * key is created: a key being replaced (kept for its rotation's overlap) counts until it
 * stops, and is said to be one. A rotation at the limit may pass it by that key for the
 * overlap: `4 of 3 keys in use on the Pro plan (1 of them being replaced)`.
 */
function keysInUse(usable: readonly KeyRecord[], maxKeys: number | undefined, planName: string): string {
  const replaced = new Set(usable.map((k) => k.rotatedFrom).filter((id): id is string => id !== null));
  const outgoing = usable.filter((k) => replaced.has(k.id)).length;
  const base = maxKeys !== undefined ? `${usable.length} of ${plural(maxKeys, 'key')} in use on the ${planName} plan` : `${plural(usable.length, 'key')} in use`;
  return outgoing > 0 ? `${base} (${outgoing} of them being replaced)` : base;
}

/** What a replacement keeps, among what the profile lets keys differ by (`expiry`: keys can have an end date). */
function keptOnRotation(traits: KeyTraits, expiry: boolean): string {
  const kept = ['name', ...(traits.modes.length > 1 ? ['mode'] : []), ...(traits.scopes ? ['scopes'] : []), ...(expiry ? ['end date'] : [])];
  return andList(kept);
}
