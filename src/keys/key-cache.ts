/**
 * The in-process key cache: key hash → key record and its account, so a warm request
 * never touches the store. Entries live for `ttl` (the fallback when an invalidation
 * message is missed); unknown hashes are remembered briefly so a flood of made-up keys
 * does not become a flood of queries. Bounded: the oldest entries go first.
 */
import type { AccountRecord, KeyRecord } from '../store/store.js';

export interface CachedKey {
  key: KeyRecord;
  account: AccountRecord | null;
}

interface Entry {
  value: CachedKey | null;
  expiresAt: number;
}

const NEGATIVE_TTL_MS = 5_000;

export class KeyCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 100_000,
  ) {}

  /** The cached record, `null` if known to be unknown, `undefined` if not cached. */
  get(hash: string, now: number): CachedKey | null | undefined {
    const entry = this.entries.get(hash);
    if (!entry || entry.expiresAt <= now) return undefined;
    return entry.value;
  }

  /**
   * A key that was known, even if its entry has expired: the answer when the store
   * cannot be asked, so keys already in use keep working through a store outage.
   * Invalidated keys are no longer here, so a revocation that was heard still holds.
   * (Expired entries stay until replaced or evicted for this reason.)
   */
  stale(hash: string): CachedKey | undefined {
    return this.entries.get(hash)?.value ?? undefined;
  }

  set(hash: string, value: CachedKey | null, now: number): void {
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(hash, { value, expiresAt: now + (value ? this.ttlMs : Math.min(NEGATIVE_TTL_MS, this.ttlMs)) });
  }

  deleteHash(hash: string): void {
    this.entries.delete(hash);
  }

  deleteAccount(accountId: string): void {
    for (const [hash, entry] of this.entries) if (entry.value?.account?.id === accountId || entry.value?.key.accountId === accountId) this.entries.delete(hash);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
