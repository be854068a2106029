import { describe, expect, it } from 'vitest';
import { KeyCache, type CachedKey } from './key-cache.js';

const entry = (id: string): CachedKey => ({ key: { id, accountId: 'acc_1' } as CachedKey['key'], account: { id: 'acc_1' } as CachedKey['account'] });

describe('KeyCache', () => {
  it('answers known keys until their TTL, then only as a stale fallback', () => {
    const cache = new KeyCache(1000);
    cache.set('h1', entry('k1'), 0);
    expect(cache.get('h1', 999)?.key.id).toBe('k1');
    expect(cache.get('h1', 1000)).toBeUndefined();
    expect(cache.stale('h1')?.key.id).toBe('k1');
  });

  it('a flood of unknown hashes never pushes out a known key', () => {
    const cache = new KeyCache(60_000, 10, 5);
    cache.set('real', entry('k'), 0);
    for (let i = 0; i < 1000; i++) cache.set(`made-up-${i}`, null, 0);
    expect(cache.get('real', 1)?.key.id).toBe('k');
    expect(cache.get('made-up-999', 1)).toBeNull();
    expect(cache.get('made-up-0', 1)).toBeUndefined(); // the oldest unknown ones were forgotten
  });

  it('remembers an unknown hash for at most 5 seconds', () => {
    const cache = new KeyCache(60_000);
    cache.set('nope', null, 0);
    expect(cache.get('nope', 4_999)).toBeNull();
    expect(cache.get('nope', 5_000)).toBeUndefined();
    expect(cache.stale('nope')).toBeUndefined();
  });

  it('drops a revoked key and every key of a changed account', () => {
    const cache = new KeyCache(60_000);
    cache.set('a', entry('ka'), 0);
    cache.set('b', entry('kb'), 0);
    cache.delete('a');
    expect(cache.get('a', 1)).toBeUndefined();
    cache.deleteAccount('acc_1');
    expect(cache.get('b', 1)).toBeUndefined();
  });
});
