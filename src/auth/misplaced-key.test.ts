import { describe, expect, it } from 'vitest';
import { createKeyFormat } from '../keys/format.js';
import { keyUnderOtherScheme, misplacedKey, MOST_NAME_LENGTH, MOST_PLACES } from './misplaced-key.js';

const prefixed = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk_live_', test: 'sk_test_' }, hexLength: 40 });
const hex = createKeyFormat({ format: 'hex', prefix: { live: 'sk_live_' }, hexLength: 40 });
const key = prefixed.generate('test');
const hexKey = hex.generate('live');

describe('a key sent where the profile does not read it', () => {
  it('is found in a header, alone or after a scheme word, named as sent; the first header before any query parameter', () => {
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['Host', 'x', 'X-API-Key', key] }, prefixed)).toEqual({ in: 'header', name: 'X-API-Key' });
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['x-auth', `bearer \t ${key}`] }, prefixed)).toEqual({ in: 'header', name: 'x-auth' });
    expect(misplacedKey({ url: `/v1/x?api_key=${key}`, rawHeaders: ['X-Token', key] }, prefixed)).toEqual({ in: 'header', name: 'X-Token' });
  });

  it('is found in a query parameter, decoded, blanks around it ignored, the name decoded', () => {
    expect(misplacedKey({ url: `/v1/x?page=2&api%5Fkey=${key.replaceAll('_', '%5F')}`, rawHeaders: [] }, prefixed)).toEqual({ in: 'query', name: 'api_key' });
    expect(misplacedKey({ url: `/v1/x?apikey=+${hexKey}%0A`, rawHeaders: [] }, hex)).toEqual({ in: 'query', name: 'apikey' });
    expect(misplacedKey({ url: `/v1/x?auth=Bearer%20${key}`, rawHeaders: [] }, prefixed)).toEqual({ in: 'query', name: 'auth' });
  });

  it('is found in a Cookie pair, named by its cookie, a quoted value too; the first header or cookie before any query parameter', () => {
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['Cookie', `theme=dark; api_key=${key}; lang=en`] }, prefixed)).toEqual({ in: 'cookie', name: 'api_key' });
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['cookie', `a=1`, 'COOKIE', `token="${key}"`] }, prefixed)).toEqual({ in: 'cookie', name: 'token' });
    expect(misplacedKey({ url: `/v1/x?api_key=${key}`, rawHeaders: ['Cookie', `  ${key}  `] }, prefixed)).toEqual({ in: 'cookie', name: '' });
    // Not a key: the cookie header whole, a key inside a longer cookie value.
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['Cookie', `k=${key}x; j=key:${key}`] }, prefixed)).toBeUndefined();
  });

  it('is found as a query parameter without a name (`?<key>`), named as such, never by the key', () => {
    expect(misplacedKey({ url: `/v1/x?page=2&${key}`, rawHeaders: [] }, prefixed)).toEqual({ in: 'query', name: '' });
    expect(misplacedKey({ url: `/v1/x?${key.replaceAll('_', '%5F')}&page=2`, rawHeaders: [] }, prefixed)).toEqual({ in: 'query', name: '' });
    expect(misplacedKey({ url: `/v1/x?Bearer+${hexKey}`, rawHeaders: [] }, hex)).toEqual({ in: 'query', name: '' });
    expect(misplacedKey({ url: `/v1/x?${key}x&flag`, rawHeaders: [] }, prefixed)).toBeUndefined();
  });

  it('is not a value taken by its shape alone (bare hex) in a header that carries ids or hashes, nor in a cookie not named for a key', () => {
    const sha1 = hex.generate('live');
    for (const name of ['X-Request-Id', 'x-correlation-id', 'Request-Id', 'X-Amzn-Trace-Id', 'X-B3-TraceId', 'If-None-Match', 'ETag', 'Idempotency-Key']) {
      expect(misplacedKey({ url: '/v1/x', rawHeaders: [name, sha1] }, hex), name).toBeUndefined();
    }
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['Cookie', `sid=${sha1}; PHPSESSID=${sha1}`] }, hex)).toBeUndefined();
    // A form's anti-forgery token is no API key, though its name says token.
    for (const name of ['X-CSRF-Token', 'X-XSRF-TOKEN', 'X-CSRFToken']) expect(misplacedKey({ url: '/v1/x', rawHeaders: [name, sha1] }, hex), name).toBeUndefined();
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['Cookie', `XSRF-TOKEN=${sha1}; csrftoken=${sha1}; _csrf_token=${sha1}`] }, hex)).toBeUndefined();
    // Elsewhere it counts, and a header of ids after it does not hide one that holds a key.
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['X-Request-Id', sha1, 'X-API-Key', sha1] }, hex)).toEqual({ in: 'header', name: 'X-API-Key' });
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['X-Auth', `Bearer ${sha1}`] }, hex)).toEqual({ in: 'header', name: 'X-Auth' });
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['Cookie', `sid=${sha1}; ApiKey=${sha1}`] }, hex)).toEqual({ in: 'cookie', name: 'ApiKey' });
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['Cookie', `access_token=${sha1}`] }, hex)).toEqual({ in: 'cookie', name: 'access_token' });
    // A key with a checksum, or with a prefix, is one wherever it is.
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['X-Request-Id', key] }, prefixed)).toEqual({ in: 'header', name: 'X-Request-Id' });
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['Cookie', `sid=${key}`] }, prefixed)).toEqual({ in: 'cookie', name: 'sid' });
    const imported = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk_live_' }, hexLength: 40, imported: { prefix: { live: 'old_' }, alphabet: 'hex', length: 40 } });
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['ETag', `old_${sha1}`] }, imported)).toEqual({ in: 'header', name: 'ETag' });
    const bareImported = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk_live_' }, hexLength: 40, imported: { prefix: {}, alphabet: 'hex', length: 40 } });
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['ETag', sha1] }, bareImported)).toBeUndefined();
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['X-Key', sha1] }, bareImported)).toEqual({ in: 'header', name: 'X-Key' });
  });

  it("is only what the format's check takes: a wrong checksum, another prefix, upper-case hex, a key inside a longer value are not", () => {
    const typo = `${key.slice(0, -1)}${key.endsWith('a') ? 'b' : 'a'}`;
    for (const value of [typo, key.replace('sk_test_', 'rk_test_'), `${key}x`, `key:${key}`, `${key} ${key}`, '']) {
      expect(misplacedKey({ url: `/v1/x?k=${encodeURIComponent(value)}`, rawHeaders: ['X-Key', value] }, prefixed), value).toBeUndefined();
    }
    expect(misplacedKey({ url: '/v1/x', rawHeaders: ['X-Request-Id', hexKey.toUpperCase()] }, hex)).toBeUndefined();
  });

  it(`looks at the first ${MOST_PLACES} headers, cookie pairs and query parameters, and at values no longer than a key and a scheme word`, () => {
    const headers = (count: number) => Array.from({ length: count }, (_, i) => [`X-${i}`, `${i}`]).flat();
    const params = (count: number) => Array.from({ length: count }, (_, i) => `p${i}=${i}`).join('&');
    expect(misplacedKey({ url: '/', rawHeaders: [...headers(MOST_PLACES - 1), 'X-Late', key] }, prefixed)).toEqual({ in: 'header', name: 'X-Late' });
    expect(misplacedKey({ url: '/', rawHeaders: [...headers(MOST_PLACES), 'X-Late', key] }, prefixed)).toBeUndefined();
    const cookies = (count: number) => Array.from({ length: count }, (_, i) => `c${i}=${i}`).join('; ');
    expect(misplacedKey({ url: '/', rawHeaders: ['Cookie', cookies(MOST_PLACES / 2), 'Cookie', `${cookies(MOST_PLACES / 2 - 1)}; late=${key}`] }, prefixed)).toEqual({ in: 'cookie', name: 'late' });
    expect(misplacedKey({ url: '/', rawHeaders: ['Cookie', cookies(MOST_PLACES / 2), 'Cookie', `${cookies(MOST_PLACES / 2)}; late=${key}`] }, prefixed)).toBeUndefined();
    expect(misplacedKey({ url: '/', rawHeaders: ['Cookie', `a="${' '.repeat(17)}${key}"`] }, prefixed)).toBeUndefined();
    expect(misplacedKey({ url: `/?${params(MOST_PLACES - 1)}&late=${key}`, rawHeaders: [] }, prefixed)).toEqual({ in: 'query', name: 'late' });
    expect(misplacedKey({ url: `/?${params(MOST_PLACES)}&late=${key}`, rawHeaders: [] }, prefixed)).toBeUndefined();
    expect(misplacedKey({ url: `/?a=${'+'.repeat(17)}${key}`, rawHeaders: ['X-A', `Bearer${' '.repeat(16)}${key}`] }, prefixed)).toBeUndefined();
    expect(misplacedKey({ url: `/?a=${'+'.repeat(16)}${key}`, rawHeaders: [] }, prefixed)).toEqual({ in: 'query', name: 'a' });
  });

  it('gives the name as a log may show it: a key in it hidden, a long one cut short', () => {
    expect(misplacedKey({ url: `/v1/x?${key}=${key}`, rawHeaders: [] }, prefixed)).toEqual({ in: 'query', name: 'sk_test_[REDACTED]' });
    const long = misplacedKey({ url: `/v1/x?${'n'.repeat(500)}=${key}`, rawHeaders: [] }, prefixed);
    expect(long).toEqual({ in: 'query', name: `${'n'.repeat(MOST_NAME_LENGTH - 1)}…` });
  });
});

describe('a key in quotes in the header the profile reads', () => {
  const bearer = [{ in: 'header' as const, name: 'Authorization', scheme: 'Bearer' }];
  const bare = [{ in: 'header' as const, name: 'apikey', scheme: 'none' }];
  it('is found in double or single quotes, under the profile\'s scheme (the word as sent) or bare where keys go bare', () => {
    expect(keyUnderOtherScheme(['Authorization', `Bearer "${key}"`], bearer, prefixed)).toEqual({ in: 'header', name: 'Authorization', scheme: 'Bearer', quoted: true });
    expect(keyUnderOtherScheme(['authorization', `bearer '${key}'`], bearer, prefixed)).toEqual({ in: 'header', name: 'Authorization', scheme: 'bearer', quoted: true });
    expect(keyUnderOtherScheme(['apikey', `"${key}"`], bare, prefixed)).toEqual({ in: 'header', name: 'apikey', scheme: '', quoted: true });
  });
  it('is not found where the quotes do not match or hold no key of this format; another scheme stays said as such', () => {
    expect(keyUnderOtherScheme(['Authorization', `Bearer "${key}'`], bearer, prefixed)).toBeUndefined();
    expect(keyUnderOtherScheme(['Authorization', `Bearer "${key}x"`], bearer, prefixed)).toBeUndefined();
    expect(keyUnderOtherScheme(['Authorization', 'Bearer ""'], bearer, prefixed)).toBeUndefined();
    expect(keyUnderOtherScheme(['Authorization', `Token ${key}`], bearer, prefixed)).toEqual({ in: 'header', name: 'Authorization', scheme: 'Token' });
  });
});
