import { describe, expect, it } from 'vitest';
import type { CredentialLocation } from '../config/schema.js';
import { extractCredential, withoutCredentialParams } from './credential.js';

const bare: CredentialLocation[] = [{ in: 'header', name: 'Authorization', scheme: 'none' }];
const token: CredentialLocation[] = [
  { in: 'header', name: 'Authorization', scheme: 'Token' },
  { in: 'query', name: 'apikey' },
];
const req = (headers: Record<string, string | string[]>, url = '/v1/x') => ({ headers, url });

describe('extractCredential', () => {
  it('reads a bare key and ignores surrounding whitespace', () => {
    expect(extractCredential(req({ authorization: '  tkn_usr_abc \t' }), bare)).toMatchObject({ kind: 'found', secret: 'tkn_usr_abc' });
  });

  it('treats a scheme in front of a bare key as malformed (Ranktracker: no Bearer prefix)', () => {
    expect(extractCredential(req({ authorization: 'Bearer tkn_usr_abc' }), bare).kind).toBe('malformed');
  });

  it('matches the scheme case-insensitively with any run of spaces or tabs', () => {
    expect(extractCredential(req({ authorization: 'token   abc123' }), token)).toMatchObject({ kind: 'found', secret: 'abc123' });
    expect(extractCredential(req({ authorization: 'Token\tabc123' }), token)).toMatchObject({ kind: 'found', secret: 'abc123' });
  });

  it('refuses a wrong scheme or a bare key where a scheme is required', () => {
    // Another authentication method (RFC 6750 §3.1): told apart, for a challenge without an error code.
    expect(extractCredential(req({ authorization: 'Bearer abc' }), token)).toMatchObject({ kind: 'malformed', otherScheme: true });
    expect(extractCredential(req({ authorization: 'abc' }), token)).toMatchObject({ kind: 'malformed', otherScheme: true });
  });

  it('refuses a key with a space or tab inside it', () => {
    expect(extractCredential(req({ authorization: 'Token abc 123' }), token)).toEqual({ kind: 'malformed', location: token[0] });
    expect(extractCredential(req({ authorization: 'abc\t123' }), bare).kind).toBe('malformed');
  });

  it('counts an empty header or a scheme with nothing after it as missing', () => {
    expect(extractCredential(req({ authorization: '' }), token).kind).toBe('missing');
    expect(extractCredential(req({ authorization: 'Token' }), token).kind).toBe('missing');
    expect(extractCredential(req({}), token).kind).toBe('missing');
  });

  it('falls back to the query parameter, decoded', () => {
    expect(extractCredential(req({}, '/v1/x?a=1&apikey=ab%2Bc'), token)).toMatchObject({ kind: 'found', secret: 'ab+c' });
  });

  it('ignores spaces, tabs and line breaks around a query parameter\'s value, as around a header\'s', () => {
    expect(extractCredential(req({}, '/v1/x?apikey=abc123%0A'), token)).toMatchObject({ kind: 'found', secret: 'abc123' });
    expect(extractCredential(req({}, '/v1/x?apikey=%20abc123%0D%0A'), token)).toMatchObject({ kind: 'found', secret: 'abc123' });
    expect(extractCredential(req({}, '/v1/x?apikey=%20%0A'), token).kind).toBe('missing');
    expect(extractCredential(req({}, '/v1/x?apikey=abc%20123'), token)).toMatchObject({ kind: 'found', secret: 'abc 123' });
  });

  it('trims a query value with a long run of spaces inside in one pass', { timeout: 5_000 }, () => {
    // Work that grows with the square of the run held the process before any key was
    // looked at: 0.2 s at 15,000 spaces, about 50 s at these 200,000 (a hang to this test,
    // which a single pass finishes in milliseconds).
    const inner = ' '.repeat(200_000);
    const found = extractCredential(req({}, `/v1/x?apikey=%20a${'%20'.repeat(200_000)}b%0A`), token);
    expect(found).toMatchObject({ kind: 'found', secret: `a${inner}b` });
  });

  it('prefers the first location listed when both are present', () => {
    expect(extractCredential(req({ authorization: 'Token fromheader' }, '/x?apikey=fromquery'), token)).toMatchObject({ secret: 'fromheader' });
  });

  it('refuses a query parameter given twice', () => {
    expect(extractCredential(req({}, '/x?apikey=a&apikey=b'), token).kind).toBe('malformed');
    // Also when a copy cannot be decoded: it is there all the same.
    expect(extractCredential(req({}, '/x?apikey=a&apikey=%zz'), token).kind).toBe('malformed');
    expect(extractCredential(req({}, '/x?apikey=%zz&apikey=a'), token).kind).toBe('malformed');
    expect(extractCredential(req({}, '/x?apikey=%zz'), token)).toMatchObject({ kind: 'found', secret: '%zz' });
  });

  it('refuses an Authorization header given twice, which Node reports as the first alone', () => {
    const twice = { ...req({ authorization: 'Token one' }, '/x'), rawHeaders: ['Host', 'x', 'Authorization', 'Token one', 'authorization', 'Token two'] };
    expect(extractCredential(twice, token).kind).toBe('malformed');
    const once = { ...req({ authorization: 'Token one' }, '/x'), rawHeaders: ['Host', 'x', 'Authorization', 'Token one'] };
    expect(extractCredential(once, token)).toMatchObject({ kind: 'found', secret: 'one' });
  });
});

describe('withoutCredentialParams', () => {
  it('removes credential parameters and keeps the others byte for byte', () => {
    expect(withoutCredentialParams('/v1/x?q=a%20b&apikey=SECRET&limit=10', token)).toBe('/v1/x?q=a%20b&limit=10');
    expect(withoutCredentialParams('/v1/x?apikey=SECRET', token)).toBe('/v1/x');
  });

  it('removes a credential parameter in any case of its letters, which an upstream may read as the same name', () => {
    expect(withoutCredentialParams('/v1/x?APIKEY=SECRET&ApiKey=SECRET&q=1&%41pikey=SECRET', token)).toBe('/v1/x?q=1');
    expect(withoutCredentialParams('/v1/x?ApiKey=SECRET&b=2', token, '[REDACTED]')).toBe('/v1/x?ApiKey=[REDACTED]&b=2');
  });

  it('can replace the value for logs instead', () => {
    expect(withoutCredentialParams('/v1/x?apikey=SECRET&b=2', token, '[REDACTED]')).toBe('/v1/x?apikey=[REDACTED]&b=2');
    expect(withoutCredentialParams('/v1/x?a=1;apikey=SECRET', token, '[REDACTED]')).toBe('/v1/x?a=1;apikey=[REDACTED]');
  });

  it('removes a credential parameter after a `;` too, which some upstreams split on', () => {
    expect(withoutCredentialParams('/v1/x?a=1;apikey=SECRET&b=2', token)).toBe('/v1/x?a=1&b=2');
    expect(withoutCredentialParams('/v1/x?a=1&;api%6Bey=SECRET', token)).toBe('/v1/x?a=1');
    // Other `;`s and empty pairs stay as they were.
    expect(withoutCredentialParams('/v1/x?q=a;b&&c=;', token)).toBe('/v1/x?q=a;b&&c=;');
    // A credential parameter whose value holds a `;` goes whole: keygate read all of it as the key.
    expect(withoutCredentialParams('/v1/x?apikey=SECRET;b&c=1', token)).toBe('/v1/x?c=1');
    expect(withoutCredentialParams('/v1/x?apikey=SECRET;a=1', token)).toBe('/v1/x');
    expect(withoutCredentialParams('/v1/x?apikey=SECRET;b', token, '[REDACTED]')).toBe('/v1/x?apikey=[REDACTED]');
  });
});
