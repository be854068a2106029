/**
 * An opaque place in a list in creation order (a row's creation time and id), for the
 * admin API's `after` and the dashboard's next-page links: rows added or removed
 * meanwhile neither skip nor repeat one.
 */
import type { Page } from '../store/store.js';
import { OperationError } from './errors.js';

export function cursorOf(row: { createdAt: number; id: string }): string {
  return Buffer.from(`${row.createdAt}.${row.id}`).toString('base64url');
}

/** A store's id: a prefix, `_` and base62 (`key_…`), as `newId` makes them. */
const STORE_ID = /^[\w-]{1,100}$/;

/**
 * The place a cursor names; OperationError `invalid` for anything keygate did not give.
 * `isId`: what the list's ids can be (a store's by default; a blocked address for
 * GET /v1/address-blocks).
 */
export function placeOf(cursor: string | undefined, isId: (id: string) => boolean = (id) => STORE_ID.test(id)): Page['after'] {
  if (cursor === undefined) return undefined;
  const match = /^(\d{1,15})\.(.{1,100})$/s.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match || !isId(match[2] as string)) throw new OperationError('invalid', 'after: not a cursor keygate gave (take the one the previous page ended with)');
  return { createdAt: Number(match[1]), id: match[2] as string };
}
