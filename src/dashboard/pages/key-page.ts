/**
 * A page of one key in use (its Rate limits, its Edit page), at the two places it is
 * reached: a member's, `/keys/{id}/{page}` (their own account's keys: another account's
 * is a 404), and an operator's, `/accounts/{id}/keys/{keyId}/{page}`, from the account's
 * page (members get a 404 there). GET shows the page's form and POST sends it; both are
 * handed the key as that viewer sees it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AccountRecord, KeyRecord } from '../../store/store.js';
import { getKey } from '../../operations/keys.js';
import { getAccount } from '../../operations/accounts.js';
import { operatorOf, ownAccount, type Dashboard } from '../context.js';
import { html, type Html } from '../html.js';

/** A key's page as one viewer sees it: a member's own key, or an operator's view of an account's key. */
export interface KeyPage {
  account: AccountRecord;
  key: KeyRecord;
  /** Where the form is sent. */
  path: string;
  /** The page listing the key, where a change leads back to. */
  back: string;
  /** The key in a notice: `“Front end” (rk_live_…a1b2)`, and its account's name for an operator. */
  named: string;
  /** Above the heading: the way back to the account, for an operator. */
  lead: Html;
  /** Whether an operator views it (any account's key), not a member (their own). */
  byOperator: boolean;
}

/** What a key's page does with its form: shows it (GET) and takes it (POST). */
export interface KeyPageForm {
  show(request: FastifyRequest, reply: FastifyReply, page: KeyPage): FastifyReply | Promise<FastifyReply>;
  send(request: FastifyRequest, reply: FastifyReply, page: KeyPage): Promise<FastifyReply>;
}

/** Registers the page named `name` (`limits`, `edit`) for members and for operators. */
export function registerKeyPage(app: FastifyInstance, dash: Dashboard, name: string, form: KeyPageForm): void {
  const { rt } = dash;

  async function memberPage(request: FastifyRequest<{ Params: { id: string } }>): Promise<KeyPage> {
    const { account } = ownAccount(request);
    const key = await getKey(rt, request.params.id, account.id);
    return { account, key, path: `/keys/${key.id}/${name}`, back: '/keys', named: `“${key.name}” (${key.hint})`, lead: html``, byOperator: false };
  }

  async function operatorPage(request: FastifyRequest<{ Params: { id: string; keyId: string } }>): Promise<KeyPage> {
    operatorOf(request);
    const account = await getAccount(rt, request.params.id);
    const key = await getKey(rt, request.params.keyId, account.id);
    const back = `/accounts/${account.id}`;
    return { account, key, path: `${back}/keys/${key.id}/${name}`, back, named: `“${key.name}” (${key.hint}) of ${account.name}`, lead: html`<p><a href="${back}">← ${account.name}</a></p>\n`, byOperator: true };
  }

  app.get<{ Params: { id: string } }>(`/keys/:id/${name}`, async (request, reply) => form.show(request, reply, await memberPage(request)));
  app.post<{ Params: { id: string } }>(`/keys/:id/${name}`, async (request, reply) => form.send(request, reply, await memberPage(request)));
  app.get<{ Params: { id: string; keyId: string } }>(`/accounts/:id/keys/:keyId/${name}`, async (request, reply) => form.show(request, reply, await operatorPage(request)));
  app.post<{ Params: { id: string; keyId: string } }>(`/accounts/:id/keys/:keyId/${name}`, async (request, reply) => form.send(request, reply, await operatorPage(request)));
}
