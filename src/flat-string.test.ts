import { describe, expect, it } from 'vitest';
import { flatString } from './flat-string.js';

describe('flatString', () => {
  it('gives back the same string, whatever it holds', () => {
    const route = 'GET /v1/ünïcode/😀';
    const built = `k:key_${'x'.repeat(16)}:3600000:1000:${route}`;
    for (const s of ['', 'a', built, '\ud800 lone high', 'lone low \udfff', '\u0000nul']) expect(flatString(s)).toBe(s);
  });
});
