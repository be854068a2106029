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

  it('refuses an empty value: alone it joins to the string of no values, which the batch sends as none, moving what follows it (a header\'s `now`) into its place', () => {
    expect(() => joinFields([''])).toThrow(`a batched script's value is empty (alone, it would be sent as no value at all): [""]`);
    expect(() => joinFields([1, '', 2])).toThrow(`a batched script's value is empty (alone, it would be sent as no value at all): [1,"",2]`);
  });
});
