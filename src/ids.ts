/** Record ids: a type prefix and 16 random base62 characters, e.g. `acc_7fK2...`. */
import { randomBytes } from 'node:crypto';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export function newId(prefix: 'acc' | 'key' | 'mem' | 'aud'): string {
  let out = '';
  while (out.length < 16) {
    for (const byte of randomBytes(24)) {
      if (byte < 248) out += BASE62[byte % 62];
      if (out.length === 16) break;
    }
  }
  // Audit ids sort by time so listings are stable.
  if (prefix === 'aud') return `aud_${Date.now().toString(36).padStart(9, '0')}${out}`;
  return `${prefix}_${out}`;
}
