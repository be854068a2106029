/**
 * The library's reading of a request it is given: a headers object as the rawHeaders
 * misplacedKey looks through, to find where a refused request's key went.
 */
import { describe, expect, it } from 'vitest';
import { createKeyFormat } from './keys/format.js';
import { misplacedKey, MOST_PLACES } from './auth/misplaced-key.js';
import { rawHeadersOf } from './library.js';

const prefixed = createKeyFormat({ format: 'prefixed', prefix: { live: 'sk_live_', test: 'sk_test_' }, hexLength: 40 });
const key = prefixed.generate('test');

describe('a key sent where the profile does not read it, given a headers object', () => {
  it(`is looked for in a headers object as in rawHeaders: each value of a header sent twice, the first ${MOST_PLACES} only`, () => {
    expect(rawHeadersOf({ host: 'x', 'x-token': ['a', key], none: undefined })).toEqual(['host', 'x', 'x-token', 'a', 'x-token', key]);
    const many = Object.fromEntries(Array.from({ length: MOST_PLACES + 5 }, (_, i) => [`x-${i}`, `${i}`]));
    expect(rawHeadersOf({ ...many, 'x-late': key })).toHaveLength(MOST_PLACES * 2);
    expect(misplacedKey({ url: '/', rawHeaders: rawHeadersOf({ 'x-token': ['a', key] }) }, prefixed)).toEqual({ in: 'header', name: 'x-token' });
  });
});
