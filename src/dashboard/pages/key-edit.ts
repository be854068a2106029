/**
 * A key in use renamed, or given other scopes, in the dashboard: its Edit page, for a
 * member (/keys/:id/edit, their own account's keys: another account's key is a 404) and
 * for an operator (/accounts/:id/keys/:keyId/edit, from the account's page). A key made
 * with no scope (the create form's default) is given the scopes it needs here, keeping
 * its secret, instead of being revoked and made again. The name field and the scope
 * checkboxes are the create form's (key-views.ts), refused in its words; the change is
 * checked and audited by the operation the CLI and admin API call (updateKey:
 * `key.updated`, the viewer as actor), and holds from the key's next request. A scope
 * the key has that its plan no longer offers is shown marked, to keep or untick; where
 * there is no scope to choose, the page (and its button) says Rename.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AccountRecord, KeyRecord } from '../../store/store.js';
import { keyStatus, scopeNeeded, updateKey, type KeyChanges } from '../../operations/keys.js';
import { checkedName, OperationError, OPERATION_STATUS } from '../../operations/errors.js';
import { actorOf, csrfField, field, fields, redirect, setNotice, type Dashboard } from '../context.js';
import { sendPage } from '../layout.js';
import { html } from '../html.js';
import { profileNames } from '../format.js';
import { andList } from '../../list-words.js';
import { editableScopes, isUsable, keyNameField, NO_NAME, refusalText, SCOPE_NEEDED, scopeChoices, WILDCARD_ALONE } from './key-views.js';
import { registerKeyPage, type KeyPage } from './key-page.js';

/** The longest name a key may have (as createKey and updateKey check it). */
const NAME_MAX = 100;

/** The form as sent, or as shown. */
interface EditForm {
  name: string;
  scopes: string[];
}

/** Why a form was refused, and whether it was about the name (the field is then marked). */
interface Refusal {
  text: string;
  status: number;
  name: boolean;
}

/** Scopes as a notice says them: `projects:read and rankings:read`, `* (all scopes)`. */
function scopesSaid(scopes: readonly string[]): string {
  return andList(scopes.map((s) => (s === '*' ? '* (all scopes)' : s)));
}

function sameScopes(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a);
  return set.size === new Set(b).size && b.every((s) => set.has(s));
}

export function registerKeyEditPages(app: FastifyInstance, dash: Dashboard): void {
  const { rt } = dash;

  const asStored = (key: KeyRecord): EditForm => ({ name: key.name, scopes: key.scopes });
  registerKeyPage(app, dash, 'edit', { show: (request, reply, page) => sendEditForm(request, reply, page, asStored(page.key)), send: changeKey });

  /** The scopes the page shows: what the key's plan allows, and those the key has that it no longer offers. */
  const scopesOf = (page: KeyPage) => editableScopes(rt, page.account.planId, page.key);

  /** The form sent: the key renamed and its scopes replaced (audited as `key.updated`, the viewer as actor), or why not. */
  async function changeKey(request: FastifyRequest, reply: FastifyReply, page: KeyPage): Promise<FastifyReply> {
    const { account, key, named } = page;
    // Where the page offers no scopes, none sent keeps the key's own (none ticked is a choice only where there are boxes).
    const form: EditForm = { name: field(request.body, 'name'), scopes: scopesOf(page).offered.length > 0 ? fields(request.body, 'scope') : key.scopes };
    // Sent from a page shown before the key stopped working: said so, nothing changed.
    if (!isUsable(key, rt.clock())) return sendEditForm(request, reply, page, form);
    const name = form.name.trim();
    const changes: KeyChanges = {
      ...(name === key.name ? {} : { name }),
      ...(sameScopes(form.scopes, key.scopes) ? {} : { scopes: form.scopes }),
    };
    const refused = formRefusal(form, changes, account);
    if (refused) return sendEditForm(request, reply, page, form, refused);
    // Sent as shown: nothing to change, nothing audited.
    if (changes.name === undefined && changes.scopes === undefined) {
      setNotice(dash, reply, { kind: 'info', text: `Nothing changed: key ${named} already has that name and ${key.scopes.length === 0 ? 'no scope' : `the scopes ${scopesSaid(key.scopes)}`}.`, code: [key.hint] });
      return redirect(reply, page.back);
    }
    const nameRefused = changes.name === undefined ? undefined : await nameRefusal(changes.name, account.id);
    if (nameRefused) return sendEditForm(request, reply, page, form, nameRefused);
    try {
      const updated = await updateKey(rt, key.id, changes, actorOf(dash, request), account.id);
      setNotice(dash, reply, { kind: 'success', text: changedText(named, changes, updated), code: [key.hint] });
      return redirect(reply, page.back);
    } catch (error) {
      if (!(error instanceof OperationError) || error.kind === 'not_found') throw error;
      // The scopes sent as well as the profile's: a refused one is repeated as it was sent.
      return sendEditForm(request, reply, page, form, { text: refusalText(error, [...profileNames(rt.config), ...form.scopes]), status: OPERATION_STATUS[error.kind], name: false });
    }
  }

  /** Why a new name is refused, checked here first so that the refusal marks the name field (updateKey checks it again). */
  async function nameRefusal(name: string, accountId: string): Promise<Refusal | undefined> {
    try {
      await checkedName('a key', name, NAME_MAX, rt, { accountId });
      return undefined;
    } catch (error) {
      if (!(error instanceof OperationError)) throw error;
      return { text: refusalText(error, profileNames(rt.config)), status: OPERATION_STATUS[error.kind], name: true };
    }
  }

  /**
   * The create form's own refusals, in its words, before the operation's checks: of the
   * scopes only where they change (a key stored with none before the profile required one
   * can still be renamed, as updateKey allows).
   */
  function formRefusal(form: EditForm, changes: KeyChanges, account: AccountRecord): Refusal | undefined {
    if (form.name.trim() === '') return { text: NO_NAME, status: 400, name: true };
    if (changes.scopes === undefined) return undefined;
    const needed = form.scopes.length === 0 ? scopeNeeded(rt, account.planId) : undefined;
    if (needed !== undefined) return { text: `Choose at least one scope: ${SCOPE_NEEDED[needed]}.`, status: 400, name: false };
    if (form.scopes.includes('*') && form.scopes.length > 1) return { text: WILDCARD_ALONE, status: 400, name: false };
    return undefined;
  }

  function sendEditForm(request: FastifyRequest, reply: FastifyReply, page: KeyPage, form: EditForm, refused?: Refusal): FastifyReply {
    const { account, key } = page;
    const { offered, dropped } = scopesOf(page);
    // The name alone where there is no scope to choose: the page (and its button) says Rename.
    const verb = offered.length > 0 ? 'Edit' : 'Rename';
    const title = `${verb} ${key.name}`;
    if (!isUsable(key, rt.clock())) {
      const body = html`${page.lead}<h1>Key “${key.name}” is ${keyStatus(key, rt.clock())}</h1>
<p>It no longer works, so its name and scopes cannot be changed.</p>
<div class="actions"><a class="button secondary" href="${page.back}">Back to the keys</a></div>`;
      return sendPage(dash, request, reply, { title, body, status: 409 });
    }
    const body = html`${page.lead}<h1>${verb} key “${key.name}”</h1>
${refused ? html`<div class="notice error" role="alert" id="edit-error"><p>${refused.text}</p></div>` : ''}
<p>The key <code>${key.hint}</code> keeps its secret: programs using it need no change. ${offered.length > 0 ? 'Its scopes hold from its next request.' : ''}</p>
<form method="post" action="${page.path}" class="stack">
  ${csrfField(request)}
  ${keyNameField(form.name, { invalid: refused?.name ?? false, autofocus: refused === undefined || refused.name })}
  ${scopeChoices(offered, form.scopes, scopeNeeded(rt, account.planId), dropped)}
  <div class="actions">
    <button type="submit">${offered.length > 0 ? 'Save changes' : 'Rename'}</button>
    <a class="button secondary" href="${page.back}">Cancel</a>
  </div>
</form>`;
    return sendPage(dash, request, reply, { title, body, status: refused?.status ?? 200 });
  }
}

/** What a saved change did, for the notice on the page the form leads back to. */
function changedText(named: string, changes: KeyChanges, updated: KeyRecord): string {
  const scopes = updated.scopes.length === 0 ? 'no scope: it reaches only the routes that need none' : `the scopes ${scopesSaid(updated.scopes)}`;
  if (changes.scopes === undefined) return `Key ${named} is renamed “${updated.name}”.`;
  if (changes.name === undefined) return `Key ${named} has ${scopes}, from its next request.`;
  return `Key ${named} is renamed “${updated.name}” and has ${scopes}, from its next request.`;
}
