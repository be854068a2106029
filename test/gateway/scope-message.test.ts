/**
 * `{{scopes}}` in insufficient_scope's message: the scopes the route requires that the
 * key lacks, or that its plan no longer allows, in the route's order. And a mistyped
 * placeholder is refused at start-up rather than sent to clients as written.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { startTestUpstream, type TestUpstream } from '../support/upstream.js';
import { tempDir } from '../support/temp.js';
import { parseConfigObject } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createAccount, updateAccount } from '../../src/operations/accounts.js';
import { createKey } from '../../src/operations/keys.js';

function profile(upstream: string, message: string): ConfigInput {
  return {
    upstream: { url: upstream },
    auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }] },
    errors: { envelope: 'message', reasons: { insufficient_scope: { message } } },
    scopes: ['read', 'write', 'export'],
    plans: { open: {}, narrow: { scopes: ['read'] } },
    defaultPlan: 'open',
    routes: [
      { method: 'GET', path: '/v1/read', scopes: ['read'] },
      { method: 'GET', path: '/v1/all', scopes: ['read', 'write', 'export'] },
    ],
  };
}

describe('insufficient_scope names the scopes a key lacks', () => {
  let upstream: TestUpstream;
  let kg: TestKeygate;
  const keyOn = async (plan: string, scopes: string[]) => {
    const account = await createAccount(kg.runtime, { name: plan, planId: plan }, 'test');
    return `Bearer ${(await createKey(kg.runtime, { accountId: account.id, name: 'k', scopes }, 'test')).secret}`;
  };
  const refusal = async (path: string, authorization: string) => {
    const response = await kg.call(path, { headers: { authorization } });
    return { status: response.status, body: (await response.json()) as unknown };
  };

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(profile(upstream.url, 'This key lacks the {{ scopes }} scope.'), { dir: tempDir('scope-message') });
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('fills in the ones the key lacks, in the route’s order', async () => {
    expect(await refusal('/v1/all', await keyOn('open', ['write']))).toEqual({ status: 403, body: { message: 'This key lacks the read, export scope.' } });
    expect(await refusal('/v1/read', await keyOn('open', ['write']))).toEqual({ status: 403, body: { message: 'This key lacks the read scope.' } });
  });

  it('and those the plan no longer allows, even to a key with *', async () => {
    // A key made with * on one plan, whose account then moves to a plan allowing read alone.
    const account = await createAccount(kg.runtime, { name: 'moving', planId: 'open' }, 'test');
    const everything = `Bearer ${(await createKey(kg.runtime, { accountId: account.id, name: 'k', scopes: ['*'] }, 'test')).secret}`;
    expect((await kg.call('/v1/all', { headers: { authorization: everything } })).status).toBe(200);
    await updateAccount(kg.runtime, account.id, { planId: 'narrow' }, 'test');
    expect(await refusal('/v1/all', everything)).toEqual({ status: 403, body: { message: 'This key lacks the write, export scope.' } });
    expect((await kg.call('/v1/read', { headers: { authorization: everything } })).status).toBe(200);
  });

  it('refuses a mistyped placeholder at start-up, naming the field and what it may hold', () => {
    expect(() => parseConfigObject(profile('http://127.0.0.1:4000', 'This key lacks {{scope}}.'))).toThrow(
      'errors.reasons.insufficient_scope.message: {{scope}} would be sent as written: this message may hold {{scopes}}',
    );
  });
});

describe('insufficient_scope in the default wording', () => {
  let upstream: TestUpstream;
  let kg: TestKeygate;

  beforeAll(async () => {
    upstream = await startTestUpstream();
    const { errors: _worded, ...unworded } = profile(upstream.url, '');
    kg = await startKeygate({ ...unworded, errors: { envelope: 'message' } }, { dir: tempDir('scope-message-default') });
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('names the scope the route requires that the key lacks, or the scopes (a route requires all of its own)', async () => {
    const account = await createAccount(kg.runtime, { name: 'default', planId: 'open' }, 'test');
    const authorization = `Bearer ${(await createKey(kg.runtime, { accountId: account.id, name: 'k', scopes: ['write'] }, 'test')).secret}`;
    const refusal = async (path: string) => {
      const response = await kg.call(path, { headers: { authorization } });
      return { status: response.status, body: (await response.json()) as unknown };
    };
    expect(await refusal('/v1/read')).toEqual({ status: 403, body: { message: 'This API key lacks the scope this endpoint requires: read.' } });
    expect(await refusal('/v1/all')).toEqual({ status: 403, body: { message: 'This API key lacks the scopes this endpoint requires: read, export.' } });
  });
});
