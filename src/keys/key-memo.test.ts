import { describe, expect, it } from 'vitest';
import { KeyMemo } from './key-memo.js';
import type { KeyDigest } from './hash.js';

const digest = (text: string) => text as KeyDigest;

describe('KeyMemo', () => {
  const owner = {};
  const key = 'kg_live_0123456789abcdefghijABCDEFGHIJ';

  it('holds nothing until a key is remembered', () => {
    expect(new KeyMemo().holds(owner, key)).toBe(false);
    expect(new KeyMemo().holds(owner, '')).toBe(false);
  });

  it('holds the key remembered, for the owner that remembered it only', () => {
    const memo = new KeyMemo();
    memo.remember(owner, key, 'live', digest('d1'));
    expect(memo.holds(owner, `${key}`)).toBe(true);
    expect(memo.mode).toBe('live');
    expect(memo.digest).toBe('d1');
    // Another pipeline (after a reload) works the key out itself.
    expect(memo.holds({}, key)).toBe(false);
  });

  it('tells apart keys that differ anywhere, or in length', () => {
    const memo = new KeyMemo();
    memo.remember(owner, key, 'live', digest('d1'));
    for (let i = 0; i < key.length; i++) {
      const other = `${key.slice(0, i)}${key[i] === 'x' ? 'y' : 'x'}${key.slice(i + 1)}`;
      expect(memo.holds(owner, other)).toBe(false);
    }
    expect(memo.holds(owner, key.slice(0, -1))).toBe(false);
    expect(memo.holds(owner, `${key}x`)).toBe(false);
  });

  it('compares every character exactly, beyond latin1 too (a key read from the query may hold any)', () => {
    const memo = new KeyMemo();
    memo.remember(owner, 'kg_live_abc', undefined, digest('d1'));
    // U+0163 is `c` (0x63) in its low byte: a latin1 comparison would take one for the other.
    expect(memo.holds(owner, 'kg_live_ab\u0163')).toBe(false);
    expect(memo.holds(owner, 'kg_live_ab\u6163')).toBe(false);
    memo.remember(owner, 'kg_live_ab\u0163', undefined, digest('d2'));
    expect(memo.holds(owner, 'kg_live_abc')).toBe(false);
    expect(memo.holds(owner, 'kg_live_ab\u0163')).toBe(true);
  });

  it('remembers the last key only', () => {
    const memo = new KeyMemo();
    memo.remember(owner, key, 'live', digest('d1'));
    const second = key.replace('0123', '3210');
    memo.remember(owner, second, 'test', digest('d2'));
    expect(memo.holds(owner, key)).toBe(false);
    expect(memo.holds(owner, second)).toBe(true);
    expect(memo.mode).toBe('test');
    expect(memo.digest).toBe('d2');
    memo.remember(owner, 'kg_live_short', 'live', digest('d3'));
    expect(memo.holds(owner, second)).toBe(false);
    expect(memo.holds(owner, 'kg_live_short')).toBe(true);
  });
});
