/**
 * An invitation (or reset) link sets one password, once: the link is used up by the same
 * write that sets the password, and only while it still works. Hashing the password takes
 * a while, and in that time the same link may be sent from another tab, or the invitation
 * withdrawn: the first to write wins, and the other is told the link does not work.
 * Against a real SQLite file, through the operation the dashboard and the admin API call.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigObject } from '../src/config/load.js';
import { createRuntime, type Runtime } from '../src/runtime.js';
import { createSignInChecker } from '../src/dashboard/sign-in.js';
import { createAccount } from '../src/operations/accounts.js';
import { acceptInvitation, inviteMember } from '../src/operations/members.js';
import { OperationError } from '../src/operations/errors.js';
import { createLog } from '../src/log.js';
import { tempDir } from './support/temp.js';

const LINK_NOT_WORKING = 'this invitation link is invalid or has expired; ask for a new one';

describe('an invitation link used twice at once, or withdrawn while its password is hashed', () => {
  const dir = tempDir('invite-race');
  let rt: Runtime;
  let accountId: string;

  beforeAll(async () => {
    const config = parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'k.db')}` });
    rt = await createRuntime({ config, file: 'inline', dir }, { log: createLog({ level: 'silent' }) });
    accountId = (await createAccount(rt, { name: 'Acme' }, 'test')).id;
  });

  afterAll(async () => {
    await rt?.close();
  });

  const joinedAudits = async (email: string) => (await rt.store.listAudit({ limit: 100 })).filter((e) => e.action === 'member.joined' && e.detail?.email === email);

  it('sets the password of the first of two sends of one link, tells the second the link does not work, and audits one join', async () => {
    const email = 'twice@acme.example';
    const { token } = await inviteMember(rt, { email, accountId }, 'test');
    const passwords = ['first tab passphrase', 'second tab passphrase'];
    const results = await Promise.allSettled(passwords.map((password) => acceptInvitation(rt, token, password)));

    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toBeInstanceOf(OperationError);
    expect([refused.reason.kind, refused.reason.message]).toEqual(['not_found', LINK_NOT_WORKING]);
    // The password that was set is the one whose send was answered with the member.
    const winner = passwords[results.findIndex((r) => r.status === 'fulfilled')] as string;
    const loser = passwords.find((p) => p !== winner) as string;
    const checker = createSignInChecker(rt);
    expect(await checker.check(email, loser, '198.51.100.1')).toMatchObject({ ok: false });
    expect(await checker.check(email, winner, '198.51.100.2')).toMatchObject({ ok: true });
    expect(await joinedAudits(email)).toHaveLength(1);
  });

  it('refuses a link whose invitation was withdrawn after it was looked up, before the password was set: nobody joins', async () => {
    const email = 'withdrawn@acme.example';
    const { token } = await inviteMember(rt, { email, accountId }, 'test');
    const store = rt.store;
    const lookUp = store.findMemberByInvite.bind(store);
    store.findMemberByInvite = async (hash) => {
      const found = await lookUp(hash);
      // An operator removes the invited member while the password is being hashed.
      if (found) await store.deleteMember(found.id);
      return found;
    };
    try {
      await expect(acceptInvitation(rt, token, 'a passphrase of mine')).rejects.toMatchObject({ kind: 'not_found', message: LINK_NOT_WORKING });
    } finally {
      delete (store as Partial<typeof store>).findMemberByInvite;
    }
    expect(await store.findMemberByEmail(email)).toBeUndefined();
    expect(await joinedAudits(email)).toEqual([]);
  });
});
