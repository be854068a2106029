import { describe, expect, it } from 'vitest';
import type { CredentialLocation } from '../config/schema.js';
import { extractCredential, forwardedTargetOf, headerKeyTest, withoutCredentialParams } from './credential.js';
import { createKeyFormat } from '../keys/format.js';

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

  it('refuses any header Node keeps the first copy of alone (Proxy-Authorization, From, ...) given twice, and reads an empty copy beside the key as absent', () => {
    for (const name of ['Proxy-Authorization', 'From', 'User-Agent']) {
      const location: CredentialLocation[] = [{ in: 'header', name, scheme: 'Token' }];
      const key = name.toLowerCase();
      expect(extractCredential({ ...req({ [key]: 'Token one' }, '/x'), rawHeaders: [name, 'Token one', key, 'Token two'] }, location).kind, name).toBe('malformed');
      expect(extractCredential({ ...req({ [key]: '' }, '/x'), rawHeaders: [name, '', name, 'Token one'] }, location), name).toMatchObject({ kind: 'found', secret: 'one' });
      expect(extractCredential({ ...req({ [key]: 'Token one' }, '/x'), rawHeaders: [name, 'Token one'] }, location), name).toMatchObject({ kind: 'found', secret: 'one' });
    }
  });

  it('reads an empty copy of the header or the parameter as absent, as a lone empty one is: the key beside it is given once', () => {
    const sent = (headers: Record<string, string | string[]>, rawHeaders: string[]) => extractCredential({ ...req(headers, '/x'), rawHeaders }, token);
    // Node keeps the first Authorization (empty or not), and joins two X-API-Key lines with ", ".
    expect(sent({ authorization: 'Token one' }, ['Authorization', 'Token one', 'Authorization', ''])).toMatchObject({ kind: 'found', secret: 'one', sent: 'Token one' });
    expect(sent({ authorization: '' }, ['Authorization', '', 'Authorization', ' \t', 'authorization', 'Token one'])).toMatchObject({ kind: 'found', secret: 'one' });
    expect(sent({ authorization: '' }, ['Authorization', '', 'Authorization', ' '])).toEqual({ kind: 'missing' });
    expect(sent({ authorization: '' }, ['Authorization', '', 'Authorization', 'Token two', 'authorization', 'Token one']).kind).toBe('malformed');
    const xApiKey: CredentialLocation[] = [{ in: 'header', name: 'X-API-Key', scheme: 'none' }];
    expect(extractCredential({ ...req({ 'x-api-key': ', one' }), rawHeaders: ['X-API-Key', '', 'x-api-key', 'one'] }, xApiKey)).toMatchObject({ kind: 'found', secret: 'one' });
    expect(extractCredential({ ...req({ 'x-api-key': 'one, two' }), rawHeaders: ['X-API-Key', 'one', 'x-api-key', 'two'] }, xApiKey).kind).toBe('malformed');
    // A list (the library's headers): one that holds one value besides empty ones is that value; a list of one is no header sent once.
    expect(extractCredential(req({ authorization: ['Token one', ''] }), token)).toMatchObject({ kind: 'found', secret: 'one' });
    expect(extractCredential(req({ authorization: ['Token one'] }), token).kind).toBe('malformed');
    expect(extractCredential(req({}, '/x?apikey=one&apikey='), token)).toMatchObject({ kind: 'found', secret: 'one' });
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

describe('forwardedTargetOf', () => {
  const bearer: CredentialLocation[] = [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }];
  const prefixed = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk_live_', test: 'sk_test_' }, hexLength: 40 });
  const hex = createKeyFormat({ format: 'hex', prefix: { live: 'kg_live_' }, hexLength: 40 });

  it('leaves out a parameter that holds a key inside a longer value, as sent or percent-decoded (`+` a space), and one whose name holds one', () => {
    const forwarded = forwardedTargetOf(bearer, prefixed);
    const own = prefixed.generate('live');
    const other = prefixed.generate('test');
    const headers = { authorization: `Bearer ${own}` };
    const escaped = (key: string) => key.replaceAll('_', '%5F');
    for (const held of [`q=Bearer%20${own}`, `q=Bearer+${own}`, `filter=key:${other}`, `x=${own},abc`, `x=0${other}1`, `q=Bearer%20${escaped(own)}`, `f=key%253A${own.replaceAll('_', '%255F')}`, `k${other}=1`, `s=%22${other}%22`]) {
      expect(forwarded(`/v1/x?a=1&${held}&b=%E9`, headers)).toBe('/v1/x?a=1&b=%E9');
    }
    // After a `;`, the part that holds it goes; the part before it stays.
    expect(forwarded(`/v1/x?a=1;q=Bearer%20${own}&b=2`, headers)).toBe('/v1/x?a=1&b=2');
    // What merely begins like a key, or holds a prefix in words, goes as sent.
    const kept = `/v1/x?q=about+sk_live_keys&r=sk_test_${'a'.repeat(30)}!&s=a%20b+c&&t=%E9`;
    expect(forwarded(kept, headers)).toBe(kept);
  });

  it("leaves out a parameter that holds the caller's own bare hex key inside a longer value; other hex runs go as sent", () => {
    const forwarded = forwardedTargetOf(bearer, hex);
    const own = hex.generate('live');
    const sha1 = 'da39a3ee5e6b4b0d3255bfef95601890afd80709';
    const headers = { authorization: `Bearer ${own}` };
    expect(forwarded(`/v1/x?q=Bearer%20${own}&commit=sha:${sha1}&f=key:${own}&x=${own},abc&y=0${own}%0A&page=2`, headers)).toBe(`/v1/x?commit=sha:${sha1}&page=2`);
    expect(forwarded(`/v1/x?q=key%3A${[...own].map((c) => `%${c.charCodeAt(0).toString(16)}`).join('')}&page=2`, headers)).toBe('/v1/x?page=2');
    // Another key of the same shape cannot be told from a hash: it goes as sent.
    const another = hex.generate('live');
    expect(forwarded(`/v1/x?q=Bearer%20${another}`, headers)).toBe(`/v1/x?q=Bearer%20${another}`);
  });
});

describe('headerKeyTest', () => {
  it('finds a key of any of the prefixes (keygate\'s own, imported ones with another start), as sent or escaped, each fully escaped too; not a prefix in words', () => {
    const migrated = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk_live_', test: 'sk_test_' }, hexLength: 40, imported: { prefix: { live: 'rk_live_' }, alphabet: 'base62', length: 24 } });
    const holdsKey = headerKeyTest(migrated);
    const own = migrated.generate('test');
    const imported = `rk_live_${'A1b2'.repeat(6)}`;
    const escapedWhole = (text: string) => [...text].map((c) => `%${c.charCodeAt(0).toString(16)}`).join('');
    for (const value of [`s=${own}; t=1`, `http://x/?k=${imported}`, `key%3A${own.replaceAll('_', '%5F')}`, escapedWhole(imported)]) expect(holdsKey(value, undefined), value).toBe(true);
    for (const value of ['about sk_live_ keys and rk_live_docs', 'a%20b', `rk_live_${'A1b2'.repeat(5)}`, 'SK_LIVE_x']) expect(holdsKey(value, undefined), value).toBe(false);
  });

  it("finds the caller's own bare key, and no other hex run", () => {
    const hex = createKeyFormat({ format: 'hex', prefix: { live: 'kg_live_' }, hexLength: 40 });
    const own = hex.generate('live');
    const holdsKey = headerKeyTest(hex);
    expect([holdsKey(`s=${own}`, own), holdsKey(`k=%20${own}`, own), holdsKey(`"${hex.generate('live')}"`, own)]).toEqual([true, true, false]);
  });
});
