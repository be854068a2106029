/**
 * The last key presented on one client connection, with what the pipeline worked out of
 * it before the key cache is asked: its shape (mode) and its digest. A client sends the
 * same key on every request of a keep-alive connection, and SHA-256 with Node's work
 * around it is the largest part of a cached key's check (about 5,500 instructions per
 * request in `node bench/instructions.js c`); a key presented again is compared instead.
 *
 * Only the digest is remembered, not the answer: the key cache is still asked on every
 * request, so revocation, expiry and the cache's TTL apply as before. A connection may
 * carry several clients' requests (behind a load balancer), so the comparison takes the
 * same time wherever two keys of one length differ (`crypto.timingSafeEqual`): a request
 * learns nothing of the key another client sent before it, but for its length, which a
 * key format fixes anyway.
 */
import { timingSafeEqual } from 'node:crypto';
import type { KeyMode } from './format.js';
import type { KeyDigest } from './hash.js';

/**
 * Keys are compared as UTF-16 code units, two bytes each: exact for any string (a key
 * read from the query may hold any character), where latin1 would take `ţ` for `c`.
 */
const ENCODING = 'utf16le';

export class KeyMemo {
  /** Who filled it in (a pipeline): another one (after a reload) works its keys out afresh. */
  private owner: object | undefined = undefined;
  /** The key's length in UTF-16 code units (-1: none yet). */
  private length = -1;
  /** The key as UTF-16 bytes, and room for a candidate of the same length. */
  private bytes: Buffer = EMPTY;
  private scratch: Buffer = EMPTY;
  mode: KeyMode | undefined = undefined;
  digest = '' as KeyDigest;

  /** Whether `secret` is the key remembered here by `owner`, compared in constant time. */
  holds(owner: object, secret: string): boolean {
    if (owner !== this.owner || secret.length !== this.length) return false;
    this.scratch.write(secret, 0, this.scratch.length, ENCODING);
    return timingSafeEqual(this.scratch, this.bytes);
  }

  /** Remembers `secret` (of a key's shape) as `owner` worked it out. */
  remember(owner: object, secret: string, mode: KeyMode | undefined, digest: KeyDigest): void {
    if (secret.length !== this.length) {
      this.length = secret.length;
      this.bytes = Buffer.alloc(secret.length * 2);
      this.scratch = Buffer.alloc(secret.length * 2);
    }
    this.bytes.write(secret, 0, this.bytes.length, ENCODING);
    this.owner = owner;
    this.mode = mode;
    this.digest = digest;
  }
}

const EMPTY = Buffer.alloc(0);
