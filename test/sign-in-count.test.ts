/**
 * Wrong passwords guessed at once through several processes (several checkers on one
 * store, as the dashboards of processes behind a load balancer share a database): each is
 * counted, so the pauses come after as many guesses as with one process.
 */
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRuntime, type Runtime } from '../src/runtime.js';
import { parseConfigObject } from '../src/config/load.js';
import { createAccount } from '../src/operations/accounts.js';
import { acceptInvitation, inviteMember } from '../src/operations/members.js';
import { createSignInChecker } from '../src/dashboard/sign-in.js';
import { tempDir } from './support/temp.js';

describe('wrong passwords guessed at once through several processes', () => {
  const dir = tempDir('sign-in-count');
  let rt: Runtime | undefined;

  afterAll(async () => {
    await rt?.close();
  });

  it('are each counted: the address is paused, and the member count is exact', async () => {
    const loaded = { config: parseConfigObject({ upstream: { url: 'http://127.0.0.1:9' }, store: `sqlite:${path.join(dir, 'k.db')}`, log: { level: 'silent' } }), file: 'inline', dir };
    rt = await createRuntime(loaded);
    const account = await createAccount(rt, { name: 'Acme' }, 'test');
    const email = 'ana@acme.test';
    const password = 'correct horse battery staple';
    const invited = await inviteMember(rt, { email, accountId: account.id }, 'test');
    await acceptInvitation(rt, invited.url.split('/invite/')[1] as string, password);

    const processes = [0, 1, 2, 3].map(() => createSignInChecker(rt as Runtime));
    const through = (i: number) => processes[i % 4] as (typeof processes)[0];
    // Eight at once from eight addresses, two through each process: none is paused, so
    // each is checked and counted against the member, exactly.
    const spread = await Promise.all(Array.from({ length: 8 }, (_, i) => through(i).check(email, `wrong ${i}`, `198.51.100.${10 + i}`)));
    expect(spread.map((g) => (g.ok ? 'ok' : g.reason))).toEqual(Array.from({ length: 8 }, () => 'invalid'));
    expect((await rt.store.findMemberByEmail(email))?.failedLogins).toBe(8);
    // Eight at once from one address: five counted pause it (those arriving after the pause
    // began are refused as paused, uncounted: how many depends on timing).
    const guesses = await Promise.all(Array.from({ length: 8 }, (_, i) => through(i).check(email, `wrong ${i}`, '203.0.113.5')));
    expect(guesses.filter((g) => !g.ok).length).toBe(8);
    // Five or more in a row from one address pause it, for every process, the right password included.
    for (const checker of processes) expect(await checker.check(email, password, '203.0.113.5')).toMatchObject({ ok: false, reason: 'locked' });
    expect(await processes[0]?.check(email, password, '198.51.100.1')).toMatchObject({ ok: true });
  });
});
