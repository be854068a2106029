/**
 * How wrong passwords pause sign-ins (src/dashboard/sign-in.ts counts them): in a row for an
 * email from one client address, from one IPv6 /64, or from anywhere, and for how long;
 * and what the store counts an email's failures under.
 */
import type { KeyHasher } from '../keys/hash.js';

export const MAX_FAILED_SIGN_INS = 5;
export const MAX_FAILED_SIGN_INS_PER_NETWORK = 10;
export const MAX_FAILED_SIGN_INS_PER_EMAIL = 20;
export const LOCKOUT_MS = 15 * 60_000;
/**
 * Sign-in attempts (right or wrong, any email) one client address, or one IPv6 /64, may
 * make in a minute in one process: each costs a scrypt (tens of milliseconds of a core,
 * 32 MiB) and a write, and a client trying a new email each time is paused by nothing
 * above. A person signing in makes a few; an office behind one address, a few dozen.
 */
export const MAX_SIGN_INS_PER_ADDRESS = 30;
export const SIGN_IN_WINDOW_MS = 60_000;

/** Put before an email where it is hashed: its digest is no key's hash (a key pasted into the field as an email). */
const EMAIL_DIGEST_CONTEXT = 'keygate sign-in email\n';

/**
 * What the store counts an email's wrong passwords under (an email as typed, trimmed and
 * lower-cased): its HMAC-SHA-256 with the pepper keys are hashed with, or its SHA-256
 * without one; never the text, which is kept a day and may be a password pasted into the
 * email field. Every process hashes alike: they share the pepper (runtime.ts refuses
 * another).
 */
export function signInEmailDigest(hashKey: KeyHasher, email: string): string {
  return hashKey(EMAIL_DIGEST_CONTEXT + email);
}
