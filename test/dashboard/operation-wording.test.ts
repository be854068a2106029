/**
 * Refusals that come from the shared operations (the same words the CLI prints and the
 * admin API answers), as the dashboard shows them, over plain HTTP: in the dashboard's own
 * style (curly apostrophes, a key's moments to the minute, as its pages show them), while
 * what they repeat as it was given (a key's name, an email address) stays as it was typed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, revokeKey, rotateKey } from '../../src/operations/keys.js';
import type { Runtime } from '../../src/runtime.js';
import { tempDir } from '../support/temp.js';
import { MEMBER, newAccount, startDashboard, type DashboardFixture } from './support.js';
import { addMember, signedInVisitors, Visitor } from './visitor.js';

describe('dashboard: refusals worded by the shared operations', () => {
  const dir = tempDir('keygate-dashboard-operation-wording');
  let fixture: DashboardFixture;
  let rt: Runtime;
  let acmeId: string;
  let member: Visitor;
  let operator: Visitor;

  beforeAll(async () => {
    // A profile whose keys never expire: a create form from before it said so still sends an expiry.
    fixture = await startDashboard(dir, (profile) => ({ ...profile, keys: { ...(profile.keys as object), expiry: false } }));
    rt = fixture.keygate.runtime;
    acmeId = await newAccount(fixture, 'Acme Analytics');
    ({ member, operator } = await signedInVisitors(fixture, acmeId));
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('says an operation’s refusal with curly apostrophes, as the page’s own text', async () => {
    const answer = await member.post('/keys', [['name', 'nightly'], ['scope', '*'], ['mode', 'live'], ['expiry', '30d']]);
    expect([answer.status, answer.heading, answer.alert]).toEqual([400, 'Create a key', 'This API’s keys do not expire: a key works until it is revoked.']);
    expect(await rt.store.listKeys({ accountId: acmeId })).toEqual([]);
  });

  it('says when a key was revoked to the minute, as the keys page does, and names the key as it was typed', async () => {
    const { key } = await createKey(rt, { accountId: acmeId, name: "Bob's export" }, 'test');
    const { revokedAt } = await revokeKey(rt, key.id, 'test');
    // Revoked at 13:22:05.414, say: the CLI and admin API say 13:22:05, the dashboard 13:22, as its keys page.
    const minute = new Date(revokedAt as number).toISOString().replace('T', ' ').slice(0, 16);
    const page = await member.get(`/keys/${key.id}/rotate`);
    expect([page.status, page.alert]).toEqual([409, `“Bob's export” ${key.hint} was revoked at ${minute} UTC; only an active key can be rotated: create a new key instead.`]);
  });

  it('says until when a key still in its overlap works to the minute, rounded up: at the minute named the refusal does not come back', async () => {
    const { key } = await createKey(rt, { accountId: acmeId, name: 'old' }, 'test');
    const { key: replacement, previous } = await rotateKey(rt, key.id, 3_600_000, 'test');
    const endsAt = previous.expiresAt as number;
    const minute = new Date(Math.ceil(endsAt / 60_000) * 60_000).toISOString().replace('T', ' ').slice(0, 16);
    const page = await member.get(`/keys/${replacement.id}/rotate`);
    expect([page.status, page.alert]).toEqual([409, `This key replaced “old” ${key.hint}, which works until ${minute} UTC: revoke that key first, or rotate this one once it has expired.`]);
  });

  it('repeats an email address as it was typed, apostrophe and all', async () => {
    const email = "o'brien@acme.example";
    await addMember(rt, email, acmeId, 'member');
    const page = await operator.get(`/accounts/${acmeId}`);
    const formId = /name="form_id" value="([0-9A-Za-z]{22})"/.exec(page.html)?.[1] as string;
    const answer = await operator.post(`/accounts/${acmeId}/invite`, [['email', email], ['form_id', formId]]);
    expect(answer.status).toBe(409);
    expect(answer.alert).toMatch(/^o'brien@acme\.example is already a member/);
  });

  it('repeats a plan’s name and scope names as the profile writes them, apostrophe and all', async () => {
    // A profile of its own: a plan named o'brien-pro, one key per account, whose keys may carry a scope with an apostrophe.
    const dir = mkdtempSync(path.join(tmpdir(), 'keygate-dashboard-operation-wording-names-'));
    const named = await startDashboard(dir, (profile) => ({
      ...profile,
      scopes: [...(profile.scopes as string[]), "customer's:read"],
      plans: { ...(profile.plans as object), obrien: { name: "o'brien-pro", maxKeys: 1, scopes: ["customer's:read", 'projects:read'] } },
    }));
    try {
      const obrienId = await newAccount(named, 'Acme O', 'obrien');
      await addMember(named.keygate.runtime, MEMBER, obrienId, 'member');
      const visitor = await Visitor.signedIn(named.dashboardUrl, MEMBER, '/keys');
      const create = (scope: string) => visitor.post('/keys', [['name', 'nightly'], ['scope', scope], ['mode', 'live'], ['expiry', '30d']]);

      // A scope the plan does not allow (a form from before a profile change): the allowed ones named as written.
      const scopes = await create('rankings:read');
      expect([scopes.status, scopes.alert]).toEqual([400, "Scope rankings:read not allowed; allowed: customer's:read, projects:read."]);

      // The plan's limit, by the plan's name.
      await createKey(named.keygate.runtime, { accountId: obrienId, name: 'first' }, 'test');
      const limit = await create('projects:read');
      expect([limit.status, limit.alert]).toEqual([409, "The o'brien-pro plan allows 1 key per account; revoke one first."]);
      expect((await named.keygate.runtime.store.listKeys({ accountId: obrienId })).map((key) => key.name)).toEqual(['first']);
    } finally {
      await named.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
