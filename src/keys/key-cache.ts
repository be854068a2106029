/**
 * The in-process key cache: a key's digest (`hashKey.digest`) → its record and its
 * account, so a warm request never touches the store. Entries live for `ttl` (the
 * fallback when an invalidation message is missed). Unknown digests are remembered briefly, in a separate and smaller
 * map, so a flood of made-up keys neither becomes a flood of queries nor pushes real
 * keys out. Both maps are bounded; the oldest entries go first.
 */
import type { AccountRecord, KeyRecord } from '../store/store.js';
import type { KeyDigest } from './hash.js';

export interface CachedKey {
  key: KeyRecord;
  account: AccountRecord | null;
}

interface Entry<T> {
  value: T;
  expiresAt: number;
}

/** How long a digest the store did not know is answered from memory. */
const UNKNOWN_TTL_MS = 5_000;
const DEFAULT_MAX_KNOWN = 100_000;
const DEFAULT_MAX_UNKNOWN = 10_000;

export class KeyCache {
  private readonly known = new Map<KeyDigest, Entry<CachedKey>>();
  private readonly unknown = new Map<KeyDigest, Entry<null>>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxKnown = DEFAULT_MAX_KNOWN,
    private readonly maxUnknown = DEFAULT_MAX_UNKNOWN,
  ) {}

  /** The cached record, `null` if known to be unknown, `undefined` if not cached. */
  get(digest: KeyDigest, now: number): CachedKey | null | undefined {
    const entry = this.known.get(digest) ?? this.unknown.get(digest);
    if (!entry || entry.expiresAt <= now) return undefined;
    return entry.value;
  }

  /**
   * A key that was known, even if its entry has expired: the answer when the store
   * cannot be asked, so keys already in use keep working through a store outage.
   * Invalidated keys are no longer here, so a revocation that was heard still holds.
   * (Expired entries stay until replaced or evicted for this reason.)
   */
  stale(digest: KeyDigest): CachedKey | undefined {
    return this.known.get(digest)?.value;
  }

  set(digest: KeyDigest, value: CachedKey | null, now: number): void {
    if (value === null) {
      this.unknown.delete(digest);
      evictOldest(this.unknown, this.maxUnknown);
      this.unknown.set(digest, { value, expiresAt: now + Math.min(UNKNOWN_TTL_MS, this.ttlMs) });
      return;
    }
    this.unknown.delete(digest);
    // Re-inserted at the end, so keys in use are the last to be evicted.
    this.known.delete(digest);
    evictOldest(this.known, this.maxKnown);
    this.known.set(digest, { value, expiresAt: now + this.ttlMs });
  }

  delete(digest: KeyDigest): void {
    this.known.delete(digest);
    this.unknown.delete(digest);
  }

  deleteAccount(accountId: string): void {
    for (const [digest, entry] of this.known) {
      if (entry.value.account?.id === accountId || entry.value.key.accountId === accountId) this.known.delete(digest);
    }
  }

  clear(): void {
    this.known.clear();
    this.unknown.clear();
  }
}

function evictOldest(map: Map<string, unknown>, max: number): void {
  while (map.size >= max) {
    const oldest = map.keys().next();
    if (oldest.done) return;
    map.delete(oldest.value);
  }
}
