/**
 * The last key presented on one client connection, with what the pipeline worked out of
 * it before the key cache is asked: its shape (mode) and its digest. A client sends the
 * same key on every request of a keep-alive connection, and SHA-256 with Node's work
 * around it is the largest part of a cached key's check (about 5,500 instructions per
 * request in `node bench/instructions.js c`); a key presented again is compared instead,
 * and one sent in the same header value as before is not even read out of it again.
 *
 * Only the digest is remembered, not the answer: the key cache is still asked on every
 * request, so revocation, expiry and the cache's TTL apply as before. A connection may
 * carry several clients' requests (behind a load balancer), so the comparison takes the
 * same time wherever two keys of one length differ (`crypto.timingSafeEqual`): a request
 * learns nothing of the key another client sent before it, but for its length, which a
 * key format fixes anyway.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FoundCredential, KnownCredential } from '../auth/credential.js';
import type { KeyMode } from './format.js';
import type { KeyDigest } from './hash.js';

/**
 * Compared as UTF-16 code units, two bytes each: exact for any string (a key read from
 * the query may hold any character), where latin1 would take `ţ` for `c`.
 */
const ENCODING = 'utf16le';

export class KeyMemo implements KnownCredential {
  /** Who filled it in (a pipeline): another one (after a reload) works its keys out afresh. */
  private owner: object | undefined = undefined;
  /** The length of what is compared (UTF-16 code units; -1: nothing yet). */
  private length = -1;
  /**
   * What is compared, as UTF-16 bytes: the header value as sent (read from a header), or
   * the key (read from the query); and room for a candidate of the same length.
   */
  private bytes: Buffer = EMPTY;
  private scratch: Buffer = EMPTY;
  /** The credential as it was found (read only: the requests that send it again share it). */
  found: FoundCredential | undefined = undefined;
  mode: KeyMode | undefined = undefined;
  digest = '' as KeyDigest;

  /** This memo, if `owner` filled it in. */
  of(owner: object): KeyMemo | undefined {
    return owner === this.owner ? this : undefined;
  }

  /** Whether `text` is what was remembered (see `bytes`), compared in constant time. */
  holds(text: string): boolean {
    if (text.length !== this.length) return false;
    this.scratch.write(text, 0, this.scratch.length, ENCODING);
    return timingSafeEqual(this.scratch, this.bytes);
  }

  /** Remembers a credential (of a key's shape) as `owner` worked it out. */
  remember(owner: object, found: FoundCredential, mode: KeyMode | undefined, digest: KeyDigest): void {
    const text = found.sent ?? found.secret;
    if (text.length !== this.length) {
      this.length = text.length;
      this.bytes = Buffer.alloc(text.length * 2);
      this.scratch = Buffer.alloc(text.length * 2);
    }
    this.bytes.write(text, 0, this.bytes.length, ENCODING);
    this.owner = owner;
    this.found = found;
    this.mode = mode;
    this.digest = digest;
  }
}

const EMPTY = Buffer.alloc(0);
