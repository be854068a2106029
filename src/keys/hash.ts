/**
 * Keys are stored only as a hash: SHA-256 of the secret, or HMAC-SHA-256 with a pepper
 * kept outside the database (`KEYGATE_PEPPER`), so a stolen database alone cannot be
 * used to test guesses. Changing the pepper invalidates every existing key.
 */
import { createHmac, hash, timingSafeEqual } from 'node:crypto';

export type KeyHasher = (secret: string) => string;

export function createKeyHasher(pepper: string | undefined): KeyHasher {
  if (pepper) return (secret) => createHmac('sha256', pepper).update(secret).digest('hex');
  return sha256Hex;
}

/** SHA-256 as hex: how keygate stores every token it hands out (sessions, invitations). */
export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex');
}

/** Constant-time comparison of two hex digests of equal length. */
export function sameDigest(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'));
}
