/**
 * Key rows as a store keeps them, for tests that write them straight into a store
 * (the store suite, a PostgreSQL table of keys made to measure): no key format, no
 * secret, only a random hash.
 */
import { randomBytes } from 'node:crypto';
import type { KeyRecord } from '../../src/store/store.js';

/** 2026-01-01T00:00:00Z: the rows' creation time, unless a test gives one (times must survive as exact milliseconds). */
export const T0 = Date.UTC(2026, 0, 1);

/** A live key row of no account, unused, never expiring, not revoked, made at T0 with a random hash and id; `overrides` say the rest. */
export function keyRecord(overrides: Partial<KeyRecord> = {}): KeyRecord {
  return {
    id: `key_${randomBytes(6).toString('hex')}`,
    hash: randomBytes(32).toString('hex'),
    hint: 'kg_live_…abcd',
    name: 'ci',
    accountId: null,
    mode: 'live',
    scopes: ['read', 'write'],
    createdAt: T0,
    lastUsedAt: null,
    expiresAt: null,
    revokedAt: null,
    createdBy: 'test',
    rotatedFrom: null,
    ...overrides,
  };
}
