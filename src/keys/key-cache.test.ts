import { describe, expect, it } from 'vitest';
import { KeyCache, type CachedKey } from './key-cache.js';
import { createKeyHasher } from './hash.js';

/** The cache's key for a made-up secret. */
const d = createKeyHasher(undefined).digest;

const entry = (id: string): CachedKey => ({ key: { id, accountId: 'acc_1' } as CachedKey['key'], account: { id: 'acc_1' } as CachedKey['account'] });

describe('KeyCache', () => {
  it('answers known keys until their TTL, then only as a stale fallback', () => {
    const cache = new KeyCache(1000);
    cache.set(d('h1'), entry('k1'), 0);
    expect(cache.get(d('h1'), 999)?.key.id).toBe('k1');
    expect(cache.get(d('h1'), 1000)).toBeUndefined();
    expect(cache.stale(d('h1'))?.key.id).toBe('k1');
  });

  it('a flood of unknown hashes never pushes out a known key', () => {
    const cache = new KeyCache(60_000, 10, 5);
    cache.set(d('real'), entry('k'), 0);
    for (let i = 0; i < 1000; i++) cache.set(d(`made-up-${i}`), null, 0);
    expect(cache.get(d('real'), 1)?.key.id).toBe('k');
    expect(cache.get(d('made-up-999'), 1)).toBeNull();
    expect(cache.get(d('made-up-0'), 1)).toBeUndefined(); // the oldest unknown ones were forgotten
  });

  it('remembers an unknown hash for at most 5 seconds', () => {
    const cache = new KeyCache(60_000);
    cache.set(d('nope'), null, 0);
    expect(cache.get(d('nope'), 4_999)).toBeNull();
    expect(cache.get(d('nope'), 5_000)).toBeUndefined();
    expect(cache.stale(d('nope'))).toBeUndefined();
  });

  it('drops a revoked key and every key of a changed account', () => {
    const cache = new KeyCache(60_000);
    cache.set(d('a'), entry('ka'), 0);
    cache.set(d('b'), entry('kb'), 0);
    cache.delete(d('a'));
    expect(cache.get(d('a'), 1)).toBeUndefined();
    cache.deleteAccount('acc_1');
    expect(cache.get(d('b'), 1)).toBeUndefined();
  });

  it('tells apart digests that begin alike, through every change', () => {
    // Two digests whose first bytes agree take the same slot of the index by number.
    const same = 'abcd';
    const a = `${same}${'a'.repeat(28)}` as ReturnType<typeof d>;
    const b = `${same}${'b'.repeat(28)}` as ReturnType<typeof d>;
    const cache = new KeyCache(60_000, 3);
    cache.set(a, entry('ka'), 0);
    cache.set(b, entry('kb'), 0);
    expect(cache.get(a, 1)?.key.id).toBe('ka');
    expect(cache.get(b, 1)?.key.id).toBe('kb');
    expect(cache.get(`${same}${'c'.repeat(28)}` as ReturnType<typeof d>, 1)).toBeUndefined();
    cache.delete(b);
    expect(cache.get(b, 1)).toBeUndefined();
    expect(cache.get(a, 1)?.key.id).toBe('ka');
    cache.set(b, entry('kb'), 0);
    cache.delete(a);
    expect(cache.get(a, 1)).toBeUndefined();
    expect(cache.get(b, 1)?.key.id).toBe('kb');
    // Evicted (the oldest goes first) and cleared entries are gone from the index too.
    cache.set(d('x'), entry('kx'), 0);
    cache.set(d('y'), entry('ky'), 0);
    cache.set(d('z'), entry('kz'), 0);
    expect(cache.get(b, 1)).toBeUndefined();
    expect(cache.get(d('z'), 1)?.key.id).toBe('kz');
    cache.clear();
    expect(cache.get(d('z'), 1)).toBeUndefined();
    expect(cache.stale(d('z'))).toBeUndefined();
  });
});
