import { describe, expect, it } from 'vitest';
import { joinFields } from './scripts.js';

describe('joinFields: values as one ARGV string', () => {
  it('joins numbers, flags and batch ids with a space, and nothing as the empty string', () => {
    expect(joinFields([0, 2, 1.5, 1e21, 'k3f9:1.a'])).toBe('0 2 1.5 1e+21 k3f9:1.a');
    expect(joinFields([])).toBe('');
  });

  it('refuses a value holding the separator, which the script would split in two', () => {
    expect(() => joinFields([1, 'a b'])).toThrow(`a batched script's value holds its field separator: "a b"`);
  });

  it('carries an empty value among others (a settle without a batch id), as the scripts split it back', () => {
    expect(joinFields(['', 0, -100, -1])).toBe(' 0 -100 -1');
  });

  it('refuses a lone empty value: it joins to the string of no values, which the batch sends as none', () => {
    expect(() => joinFields([''])).toThrow(`a batched script's one value is empty: it would be sent as no value at all`);
  });
});
