/**
 * Sign-in lockouts, checked directly (no browser): parallel wrong passwords still lock
 * (attempts on an email are taken one at a time, so none of them reads a failure count
 * another is about to raise); a lock keeps the guessing address out, not the member
 * signing in from elsewhere; guesses spread over many addresses lock the email itself.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigObject } from '../../src/config/load.js';
import { createRuntime, type Runtime } from '../../src/runtime.js';
import { createSignInChecker } from '../../src/dashboard/sign-in.js';
import { LOCKOUT_MS, MAX_FAILED_SIGN_INS, MAX_FAILED_SIGN_INS_PER_EMAIL, MAX_FAILED_SIGN_INS_PER_NETWORK, MAX_SIGN_INS_PER_ADDRESS } from '../../src/members/lockout.js';
import { createAccount } from '../../src/operations/accounts.js';
import { acceptInvitation, inviteMember } from '../../src/operations/members.js';
import { createLog } from '../../src/log.js';
import { tempDir } from '../support/temp.js';

const PASSWORD = 'correct horse battery staple';
const GUESSER = '203.0.113.9';
const MEMBER_ADDRESS = '198.51.100.20';

describe('sign-in lockouts', () => {
  const dir = tempDir('sign-in-race');
  let rt: Runtime;
  let now = Date.parse('2026-11-10T12:00:00Z');

  beforeAll(async () => {
    const config = parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, store: `sqlite:${path.join(dir, 'k.db')}` });
    rt = await createRuntime({ config, file: 'inline', dir }, { log: createLog({ level: 'silent' }), clock: () => now });
    const account = await createAccount(rt, { name: 'Acme' }, 'test');
    for (const email of ['ada@acme.example', 'bob@acme.example', 'cy@acme.example']) {
      const { token } = await inviteMember(rt, { email, accountId: account.id }, 'test');
      await acceptInvitation(rt, token, PASSWORD);
    }
  });

  afterAll(async () => {
    await rt?.close();
  });

  it('pauses an address after wrong passwords sent at once from it (a minute\'s worth less one), which then cannot sign in either; the member elsewhere still can', async () => {
    const checker = createSignInChecker(rt);
    const atOnce = MAX_SIGN_INS_PER_ADDRESS - 1;
    const results = await Promise.all(Array.from({ length: atOnce }, () => checker.check('ada@acme.example', 'wrong password!', GUESSER)));
    expect(results.filter((r) => !r.ok && r.reason === 'invalid')).toHaveLength(MAX_FAILED_SIGN_INS - 1);
    expect(results.filter((r) => !r.ok && r.reason === 'locked').length).toBe(atOnce - (MAX_FAILED_SIGN_INS - 1));
    expect(await checker.check('ada@acme.example', PASSWORD, GUESSER)).toMatchObject({ ok: false, reason: 'locked', retryAfterMs: LOCKOUT_MS });
    expect(await checker.check('Ada@Acme.example ', PASSWORD, MEMBER_ADDRESS)).toMatchObject({ ok: true });
    // Signing in cleared the email's count; the guessing address stays paused until its time is up.
    expect((await rt.store.findMemberByEmail('ada@acme.example'))?.failedLogins).toBe(0);
    now += LOCKOUT_MS;
    expect(await checker.check('ada@acme.example', PASSWORD, GUESSER)).toMatchObject({ ok: true });
    const audit = await rt.store.listAudit({ limit: 50 });
    expect(audit.filter((e) => e.action === 'member.locked').map((e) => e.detail)).toEqual([expect.objectContaining({ email: 'ada@acme.example', scope: 'address', address: GUESSER })]);
  });

  it('pauses an IPv6 /64 whose addresses take turns guessing, before they could lock the email; a member elsewhere still signs in', async () => {
    const checker = createSignInChecker(rt);
    const results = [];
    for (let i = 0; i < MAX_FAILED_SIGN_INS_PER_EMAIL; i++) results.push(await checker.check('cy@acme.example', `guess ${i}`, `2001:db8:0:7::${(i + 1).toString(16)}`));
    expect(results.map((r) => (r.ok ? 'ok' : r.reason))).toEqual([
      ...Array(MAX_FAILED_SIGN_INS_PER_NETWORK - 1).fill('invalid'),
      ...Array(MAX_FAILED_SIGN_INS_PER_EMAIL - MAX_FAILED_SIGN_INS_PER_NETWORK + 1).fill('locked'),
    ]);
    // The paused /64 never reached the email's limit: the member signs in from another network.
    expect((await rt.store.findMemberByEmail('cy@acme.example'))?.lockedUntil).toBeNull();
    expect(await checker.check('cy@acme.example', PASSWORD, '2001:db8:0:8::1')).toMatchObject({ ok: true });
    expect(await checker.check('cy@acme.example', PASSWORD, '2001:db8:0:7::ffff')).toMatchObject({ ok: false, reason: 'locked' });
    const audit = (await rt.store.listAudit({ limit: 50 })).filter((e) => e.action === 'member.locked' && (e.detail as { email?: string }).email === 'cy@acme.example');
    expect(audit.map((e) => e.detail)).toEqual([expect.objectContaining({ scope: 'network', address: `2001:db8:0:7::${MAX_FAILED_SIGN_INS_PER_NETWORK.toString(16)}`, network: '2001:db8:0:7::/64' })]);
    // One IPv6 address guessing alone is paused as an IPv4 one is, and IPv4 written as IPv6 is that IPv4 address.
    now += LOCKOUT_MS;
    for (let i = 0; i < MAX_FAILED_SIGN_INS - 1; i++) expect(await checker.check('cy@acme.example', 'wrong', '2001:db8:0:9::1')).toEqual({ ok: false, reason: 'invalid' });
    expect(await checker.check('cy@acme.example', 'wrong', '2001:db8:0:9::1')).toMatchObject({ ok: false, reason: 'locked' });
    for (let i = 0; i < MAX_FAILED_SIGN_INS - 1; i++) expect(await checker.check('cy@acme.example', 'wrong', i % 2 === 0 ? '198.51.100.7' : '::ffff:198.51.100.7')).toEqual({ ok: false, reason: 'invalid' });
    expect(await checker.check('cy@acme.example', 'wrong', '::ffff:198.51.100.7')).toMatchObject({ ok: false, reason: 'locked' });
    expect(await checker.check('cy@acme.example', PASSWORD, '198.51.100.7')).toMatchObject({ ok: false, reason: 'locked' });
  });

  it('locks the email for every address after guesses spread over many addresses, and says so the same way for an unknown email', async () => {
    const checker = createSignInChecker(rt);
    const perAddress = MAX_FAILED_SIGN_INS - 1;
    const spread = async (email: string) => {
      const results = [];
      for (let i = 0; i < MAX_FAILED_SIGN_INS_PER_EMAIL; i++) results.push(await checker.check(email, `guess ${i}`, `192.0.2.${Math.floor(i / perAddress)}`));
      return results.map((r) => (r.ok ? 'ok' : r.reason));
    };
    const expected = [...Array(MAX_FAILED_SIGN_INS_PER_EMAIL - 1).fill('invalid'), 'locked'];
    expect(await spread('bob@acme.example')).toEqual(expected);
    expect(await spread('nobody@acme.example')).toEqual(expected);
    // Now even the right password from an address that never guessed waits.
    expect(await checker.check('bob@acme.example', PASSWORD, MEMBER_ADDRESS)).toMatchObject({ ok: false, reason: 'locked', retryAfterMs: LOCKOUT_MS });
    expect(await checker.check('nobody@acme.example', PASSWORD, MEMBER_ADDRESS)).toMatchObject({ ok: false, reason: 'locked', retryAfterMs: LOCKOUT_MS });
    expect((await rt.store.findMemberByEmail('bob@acme.example'))?.lockedUntil).toBe(now + LOCKOUT_MS);
    const locks = (await rt.store.listAudit({ limit: 50 })).filter((e) => e.action === 'member.locked' && (e.detail as { email?: string }).email === 'bob@acme.example');
    expect(locks.map((e) => e.detail)).toEqual([expect.objectContaining({ scope: 'email', failedSignIns: MAX_FAILED_SIGN_INS_PER_EMAIL })]);
    now += LOCKOUT_MS;
    expect(await checker.check('bob@acme.example', PASSWORD, MEMBER_ADDRESS)).toMatchObject({ ok: true });
    // Once the lock is over, a wrong password is a wrong password again, for a member's email and an unknown one alike.
    expect(await checker.check('bob@acme.example', 'wrong again', MEMBER_ADDRESS)).toEqual({ ok: false, reason: 'invalid' });
    expect(await checker.check('nobody@acme.example', 'wrong again', MEMBER_ADDRESS)).toEqual({ ok: false, reason: 'invalid' });
  });
});
