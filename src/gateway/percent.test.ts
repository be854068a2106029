import { describe, expect, it } from 'vitest';
import { decodeQueryComponent } from './percent.js';

/** What keygate used to do: decodeURIComponent, its exception caught. */
function reference(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    return undefined;
  }
}

describe('decodeQueryComponent', () => {
  it('decodes as decodeURIComponent does, and is undefined where it throws', () => {
    const cases = [
      'apikey', 'a+b', '%61pikey', '%7A', '%zz', '%', '%4', 'a%', '%%41', '%C3%A9', '%c3%a9t%C3%A9', '%C3a', '%C3', '%C3%28',
      '%E2%82%AC', '%E2%82', '%E2%82%41', '%F0%9F%98%80', '%F0%9F%98', '%C0%AF', '%E0%80%AF', '%ED%A0%80', '%ED%9F%BF',
      '%F4%8F%BF%BF', '%F4%90%80%80', '%FF', '%80', '%41%80%41', 'é%C3%A9', 'caf\u00e9', '%EF%BB%BF', '%00', '+%2B+',
    ];
    for (const text of cases) expect(decodeQueryComponent(text), text).toBe(reference(text));
  });

  it('agrees with decodeURIComponent on random runs of escapes and characters', () => {
    const pieces = ['%', 'a', '+', '%2', '%41', '%7f', '%80', '%bf', '%c2', '%C3', '%df', '%e0', '%E2', '%ed', '%ef', '%f0', '%F4', '%f5', '%ff', '%zz', 'é', '€'];
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % pieces.length;
    for (let i = 0; i < 20_000; i++) {
      const text = Array.from({ length: 1 + (i % 6) }, () => pieces[next()]).join('');
      expect(decodeQueryComponent(text), text).toBe(reference(text));
    }
  });
});
