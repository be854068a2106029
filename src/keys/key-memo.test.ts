import { describe, expect, it } from 'vitest';
import { KeyMemo } from './key-memo.js';
import type { KeyDigest } from './hash.js';
import type { CredentialLocation } from '../config/schema.js';
import { extractCredential, type FoundCredential } from '../auth/credential.js';

const digest = (text: string) => text as KeyDigest;
const HEADER: CredentialLocation = { in: 'header', name: 'Authorization', scheme: 'Bearer' };
const QUERY: CredentialLocation = { in: 'query', name: 'api_key' };
const fromQuery = (secret: string): FoundCredential => ({ kind: 'found', secret, location: QUERY });
const fromHeader = (secret: string, sent = `Bearer ${secret}`): FoundCredential => ({ kind: 'found', secret, location: HEADER, sent });

describe('KeyMemo', () => {
  const owner = {};
  const key = 'kg_live_0123456789abcdefghijABCDEFGHIJ';

  it('holds nothing until a key is remembered', () => {
    expect(new KeyMemo().of(owner)).toBeUndefined();
    expect(new KeyMemo().holds(key)).toBe(false);
    expect(new KeyMemo().holds('')).toBe(false);
  });

  it('holds the header value a key was read from, for the owner that remembered it only', () => {
    const memo = new KeyMemo();
    const found = fromHeader(key);
    memo.remember(owner, found, 'live', digest('d1'));
    expect(memo.of(owner)).toBe(memo);
    // Another pipeline (after a reload) works the key out itself.
    expect(memo.of({})).toBeUndefined();
    expect(memo.holds(`Bearer ${key}`)).toBe(true);
    expect(memo.holds(key)).toBe(false);
    expect(memo.found).toBe(found);
    expect(memo.mode).toBe('live');
    expect(memo.digest).toBe('d1');
  });

  it('holds a key read from the query as the key itself', () => {
    const memo = new KeyMemo();
    memo.remember(owner, fromQuery(key), 'live', digest('d1'));
    expect(memo.holds(key)).toBe(true);
    expect(memo.holds(`Bearer ${key}`)).toBe(false);
  });

  it('tells apart values that differ anywhere, or in length', () => {
    const memo = new KeyMemo();
    memo.remember(owner, fromQuery(key), 'live', digest('d1'));
    for (let i = 0; i < key.length; i++) {
      const other = `${key.slice(0, i)}${key[i] === 'x' ? 'y' : 'x'}${key.slice(i + 1)}`;
      expect(memo.holds(other)).toBe(false);
    }
    expect(memo.holds(key.slice(0, -1))).toBe(false);
    expect(memo.holds(`${key}x`)).toBe(false);
  });

  it('compares every character exactly, beyond latin1 too (a key read from the query may hold any)', () => {
    const memo = new KeyMemo();
    memo.remember(owner, fromQuery('kg_live_abc'), undefined, digest('d1'));
    // U+0163 is `c` (0x63) in its low byte: a latin1 comparison would take one for the other.
    expect(memo.holds('kg_live_ab\u0163')).toBe(false);
    expect(memo.holds('kg_live_ab\u6163')).toBe(false);
    memo.remember(owner, fromQuery('kg_live_ab\u0163'), undefined, digest('d2'));
    expect(memo.holds('kg_live_abc')).toBe(false);
    expect(memo.holds('kg_live_ab\u0163')).toBe(true);
  });

  it('remembers the last key only', () => {
    const memo = new KeyMemo();
    memo.remember(owner, fromHeader(key), 'live', digest('d1'));
    const second = key.replace('0123', '3210');
    memo.remember(owner, fromHeader(second), 'test', digest('d2'));
    expect(memo.holds(`Bearer ${key}`)).toBe(false);
    expect(memo.holds(`Bearer ${second}`)).toBe(true);
    expect(memo.mode).toBe('test');
    expect(memo.digest).toBe('d2');
    memo.remember(owner, fromHeader('kg_live_short'), 'live', digest('d3'));
    expect(memo.holds(`Bearer ${second}`)).toBe(false);
    expect(memo.holds('Bearer kg_live_short')).toBe(true);
  });

  it('lets extractCredential answer with the credential it found before, for the same header value at the same location only', () => {
    const memo = new KeyMemo();
    const first = extractCredential({ headers: { authorization: ` Bearer  ${key} ` }, url: '/' }, [HEADER], memo);
    expect(first).toEqual({ kind: 'found', secret: key, location: HEADER, sent: ` Bearer  ${key} ` });
    memo.remember(owner, first as FoundCredential, 'live', digest('d1'));
    expect(extractCredential({ headers: { authorization: ` Bearer  ${key} ` }, url: '/' }, [HEADER], memo)).toBe(first);
    // Another value, even one holding the same key, is read afresh.
    const again = extractCredential({ headers: { authorization: `Bearer ${key}` }, url: '/' }, [HEADER], memo);
    expect(again).not.toBe(first);
    expect(again).toEqual({ kind: 'found', secret: key, location: HEADER, sent: `Bearer ${key}` });
    // Another location (an equal one after a reload) too.
    const reloaded: CredentialLocation = { ...HEADER };
    expect(extractCredential({ headers: { authorization: ` Bearer  ${key} ` }, url: '/' }, [reloaded], memo)).not.toBe(first);
    // And a second Authorization line is still malformed.
    expect(extractCredential({ headers: { authorization: ` Bearer  ${key} ` }, rawHeaders: ['Authorization', ` Bearer  ${key} `, 'authorization', 'x'], url: '/' }, [HEADER], memo)).toEqual({ kind: 'malformed', location: HEADER });
  });
});
