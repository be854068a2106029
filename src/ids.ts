/** Record ids: a type prefix and 16 random base62 characters, e.g. `acc_7fK2...`. */
import { BASE62, randomBase62 } from './keys/format.js';

const ID_LENGTH = 16;
/** Orders audit entries made within the same millisecond by this process. */
let auditSequence = 0;

export function newId(prefix: 'acc' | 'key' | 'mem' | 'aud' | 'chk'): string {
  const random = randomBase62(ID_LENGTH);
  // Audit ids sort by time, then by the order they were made in, so listings are stable.
  if (prefix === 'aud') {
    auditSequence = (auditSequence + 1) % 36 ** 4;
    return `aud_${Date.now().toString(36).padStart(9, '0')}${auditSequence.toString(36).padStart(4, '0')}${random}`;
  }
  return `${prefix}_${random}`;
}

/**
 * A record id made from a digest (HMAC output, at least 12 bytes) instead of at random:
 * the same digest gives the same id, as `newId` would write it.
 */
export function idFromDigest(prefix: 'acc' | 'key', digest: Uint8Array): string {
  let n = BigInt(`0x${Buffer.from(digest).toString('hex')}`);
  let out = '';
  for (let i = 0; i < ID_LENGTH; i++) {
    out += BASE62[Number(n % 62n)];
    n /= 62n;
  }
  return `${prefix}_${out}`;
}
