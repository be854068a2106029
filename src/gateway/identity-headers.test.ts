import { describe, expect, it } from 'vitest';
import { accountNameValue, identityHeaderNames } from './identity-headers.js';

describe('identity header names and the account name header value', () => {
  it('names each field <prefix><Field> by default, accountName not at all', () => {
    expect(identityHeaderNames({ prefix: 'X-Keygate-' })).toEqual({ account: 'x-keygate-account', key: 'x-keygate-key', mode: 'x-keygate-mode', scopes: 'x-keygate-scopes', plan: 'x-keygate-plan', accountName: undefined });
  });

  it('sends a printable ASCII name as it is and encodes anything else, so decodeURIComponent gives it back', () => {
    expect(accountNameValue('Acme Corp (EU) #1')).toBe('Acme Corp (EU) #1');
    for (const name of ['Café', '100%', ' lead', 'trail ', 'a\tb\r\nc\u0000', 'Ωmega 𝄞', '%41']) {
      const value = accountNameValue(name);
      expect(value).toMatch(/^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/);
      expect(decodeURIComponent(value)).toBe(name);
    }
    // Half a surrogate pair is no character: it stands as U+FFFD, never a URIError.
    expect(accountNameValue('a\ud800b\udc00')).toBe('a%EF%BF%BDb%EF%BF%BD');
  });
});
