import { describe, expect, it } from 'vitest';
import { andList, orList } from './list-words.js';

describe('lists in words', () => {
  it('lists with no comma before the last word, as every message does', () => {
    expect(andList([])).toBe('');
    expect(andList(['units'])).toBe('units');
    expect(andList(['units', 'rows'])).toBe('units and rows');
    expect(andList(['units', 'rows', 'credits'])).toBe('units, rows and credits');
    expect(orList(['on', 'off'])).toBe('on or off');
    expect(orList(['“a”', '“b”', '“c”'])).toBe('“a”, “b” or “c”');
  });
});
