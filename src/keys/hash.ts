/**
 * Keys are stored only as a hash: SHA-256 of the secret, or HMAC-SHA-256 with a pepper
 * kept outside the database (`KEYGATE_PEPPER`), so a stolen database alone cannot be
 * used to test guesses. Changing the pepper invalidates every existing key.
 */
import { createHmac, hash, timingSafeEqual } from 'node:crypto';

export type KeyHasher = (secret: string) => string;

export function createKeyHasher(pepper: string | undefined): KeyHasher {
  if (pepper) return (secret) => createHmac('sha256', pepper).update(secret).digest('hex');
  return (secret) => hash('sha256', secret, 'hex');
}

/** A SHA-256 hex digest's length: compared in reused buffers, not two new ones per call. */
const HEX_SHA256_LENGTH = 64;
const scratchA = Buffer.alloc(HEX_SHA256_LENGTH);
const scratchB = Buffer.alloc(HEX_SHA256_LENGTH);

/** Constant-time comparison of two hex digests of equal length. */
export function sameDigest(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  if (a.length !== HEX_SHA256_LENGTH) return timingSafeEqual(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'));
  // Every request compares one digest: skip the allocations (synchronous, so no overlap).
  scratchA.write(a, 0, HEX_SHA256_LENGTH, 'latin1');
  scratchB.write(b, 0, HEX_SHA256_LENGTH, 'latin1');
  return timingSafeEqual(scratchA, scratchB);
}
