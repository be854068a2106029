/**
 * Parallel wrong passwords for one email still lock it: attempts on an email are taken
 * one at a time, so none of them reads a failure count another is about to raise.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigObject } from '../../src/config/load.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { createSignInChecker, MAX_FAILED_SIGN_INS } from '../../src/dashboard/sign-in.js';
import { createAccount } from '../../src/operations/accounts.js';
import { acceptInvitation, inviteMember } from '../../src/operations/members.js';
import { createLog } from '../../src/log.js';
import { tempDir } from '../support/temp.js';

describe('sign-in lockout under parallel guesses', () => {
  const dir = tempDir('sign-in-race');
  let rt: Runtime;

  beforeAll(async () => {
    const config = parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'k.db')}` });
    rt = await createRuntime({ config, file: 'inline', dir }, { log: createLog({ level: 'silent' }) });
    const account = await createAccount(rt, { name: 'Acme' }, 'test');
    const { token } = await inviteMember(rt, { email: 'ada@acme.example', accountId: account.id }, 'test');
    await acceptInvitation(rt, token, 'correct horse battery staple');
  });

  afterAll(async () => {
    await rt?.close();
  });

  it('locks the email after 40 wrong passwords sent at once, and then refuses the right one too', async () => {
    const checker = createSignInChecker(rt);
    const results = await Promise.all(Array.from({ length: 40 }, () => checker.check('ada@acme.example', 'wrong password!')));
    expect(results.filter((r) => !r.ok && r.reason === 'invalid')).toHaveLength(MAX_FAILED_SIGN_INS - 1);
    expect(results.filter((r) => !r.ok && r.reason === 'locked').length).toBe(40 - (MAX_FAILED_SIGN_INS - 1));
    const member = await rt.store.findMemberByEmail('ada@acme.example');
    expect(member?.lockedUntil).toBeGreaterThan(rt.clock());
    expect(await checker.check('ada@acme.example', 'correct horse battery staple')).toMatchObject({ ok: false, reason: 'locked' });
  });
});
