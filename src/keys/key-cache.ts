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

/** A known key's entry, with its digest: the index by number (`byNumber`) holds these. */
interface KnownEntry extends Entry<CachedKey> {
  digest: KeyDigest;
}

/** How long a digest the store did not know is answered from memory. */
const UNKNOWN_TTL_MS = 5_000;
/** Known keys a cache holds at most, unless its maker says otherwise (the runtime does not). */
export const KEY_CACHE_BOUND = 100_000;
const DEFAULT_MAX_UNKNOWN = 10_000;

/**
 * Why entries were dropped, as /metrics counts it: a change heard as a message (one key or
 * account), the Redis subscription back after a gap, a PostgreSQL change mark not heard
 * as a message, another process's write to the SQLite file (the last three: everything).
 */
export const KEY_CACHE_DROP_CAUSES = ['message', 'resubscribed', 'store_mark', 'store_file'] as const;
export type KeyCacheDropCause = (typeof KEY_CACHE_DROP_CAUSES)[number];

export class KeyCache {
  private readonly known = new Map<KeyDigest, KnownEntry>();
  private readonly unknown = new Map<KeyDigest, Entry<null>>();
  /**
   * The entries of `known` again, by a number read from their digest's first bytes. A
   * digest arrives as a new string with every request, and a Map hashes all 32 of its
   * characters before it can look it up (about a quarter of a cached key's lookup, in
   * `node bench/instructions.js c`); a small integer it hashes at once. Two known digests
   * with the same number (about one pair among 50,000 cached keys) share the slot:
   * the last one set holds it, and the other is found in `known`. A hit compares the
   * digest whole. Every entry here is in `known`, under the same digest.
   */
  private readonly byNumber = new Map<number, KnownEntry>();
  private dropped = 0;
  /** Drops by cause, for /metrics (a drop made without one, this process's own change ahead of its message, is not counted). */
  readonly drops: Record<KeyCacheDropCause, number> = { message: 0, resubscribed: 0, store_mark: 0, store_file: 0 };

  constructor(
    private readonly ttlMs: number,
    private readonly maxKnown = KEY_CACHE_BOUND,
    private readonly maxUnknown = DEFAULT_MAX_UNKNOWN,
  ) {}

  /**
   * How many times entries were dropped (a key, an account, everything). A lookup in the
   * store that began before a drop may have read what the drop was about (a key before
   * its revocation): what it found is not cached (see the pipeline's `remember`).
   */
  get generation(): number {
    return this.dropped;
  }

  /** Known keys held (expired entries kept for a store outage included): what /metrics shows against the bound. */
  get knownKeys(): number {
    return this.known.size;
  }

  /** The cached record, `null` if known to be unknown, `undefined` if not cached. */
  get(digest: KeyDigest, now: number): CachedKey | null | undefined {
    const indexed = this.byNumber.get(numberOf(digest));
    const entry = indexed !== undefined && indexed.digest === digest ? indexed : (this.known.get(digest) ?? this.unknown.get(digest));
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
    this.deleteKnown(digest);
    evictOldest(this.known, this.maxKnown, (oldest) => this.deleteKnown(oldest));
    const entry: KnownEntry = { value, expiresAt: now + this.ttlMs, digest };
    this.known.set(digest, entry);
    this.byNumber.set(numberOf(digest), entry);
  }

  delete(digest: KeyDigest, cause?: KeyCacheDropCause): void {
    this.dropped++;
    if (cause !== undefined) this.drops[cause]++;
    this.deleteKnown(digest);
    this.unknown.delete(digest);
  }

  deleteAccount(accountId: string, cause?: KeyCacheDropCause): void {
    this.dropped++;
    if (cause !== undefined) this.drops[cause]++;
    for (const [digest, entry] of this.known) {
      if (entry.value.account?.id === accountId || entry.value.key.accountId === accountId) this.deleteKnown(digest);
    }
  }

  clear(cause?: KeyCacheDropCause): void {
    this.dropped++;
    if (cause !== undefined) this.drops[cause]++;
    this.known.clear();
    this.byNumber.clear();
    this.unknown.clear();
  }

  private deleteKnown(digest: KeyDigest): void {
    if (!this.known.delete(digest)) return;
    const n = numberOf(digest);
    if (this.byNumber.get(n)?.digest === digest) this.byNumber.delete(n);
  }
}

/** The digest's first 30 bits as a number (a small integer to V8, which a Map hashes at once). */
function numberOf(digest: KeyDigest): number {
  return (digest.charCodeAt(0) << 22) | (digest.charCodeAt(1) << 14) | (digest.charCodeAt(2) << 6) | (digest.charCodeAt(3) >> 2);
}

/** Removes the oldest keys until `map` has room for one more (`remove`: how a key is removed). */
function evictOldest<K>(map: Map<K, unknown>, max: number, remove: (key: K) => void = (key) => map.delete(key)): void {
  while (map.size >= max) {
    const oldest = map.keys().next();
    if (oldest.done) return;
    remove(oldest.value);
  }
}
