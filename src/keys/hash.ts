/**
 * Keys are stored only as a hash: SHA-256 of the secret, or HMAC-SHA-256 with a pepper
 * kept outside the database (`KEYGATE_PEPPER`), so a stolen database alone cannot be
 * used to test guesses. Changing the pepper invalidates every existing key.
 */
import { createHmac, hash, timingSafeEqual } from 'node:crypto';

/**
 * A key's hash as hex, as the store keeps it; `digest` gives the same 32 bytes one
 * character each (latin1), which is what the in-process key cache is keyed by: half as
 * long to look up, and no hex encoding on the request path.
 */
export interface KeyHasher {
  (secret: string): string;
  digest(secret: string): KeyDigest;
}

/** A key's digest as the key cache is keyed by it: a type of its own, so no hex hash is looked up in its place. */
export type KeyDigest = string & { readonly keyDigest: true };

export function createKeyHasher(pepper: string | undefined): KeyHasher {
  // 'binary' is Node's other name for latin1.
  const digest = pepper
    ? (secret: string) => createHmac('sha256', pepper).update(secret).digest('binary') as KeyDigest
    : (secret: string) => hash('sha256', secret, 'binary') as KeyDigest;
  return Object.assign((secret: string) => hexOfDigest(digest(secret)), { digest });
}

/** A digest (latin1) as the hex the store keeps. */
export function hexOfDigest(digest: KeyDigest): string {
  return Buffer.from(digest, 'latin1').toString('hex');
}

/** The stored hex hash as the digest the key cache is keyed by. */
export function digestOfHex(hex: string): KeyDigest {
  return Buffer.from(hex, 'hex').toString('latin1') as KeyDigest;
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
