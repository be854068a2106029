/**
 * How the admin API's lists page: `?limit=` rows (1 to 1000; without it, all of them, as
 * before pages existed) after the `?after=` cursor that the previous page's
 * `Link: <…>; rel="next"` header carries. One shape for every list (accounts, keys, the
 * audit log, address blocks), so a script that pages one pages them all.
 *
 * @example
 *   // GET /v1/keys?limit=2 → two keys, and Link: </v1/keys?limit=2&after=MTc…>; rel="next"
 */
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import type { Page } from '../store/store.js';
import { cursorOf, placeOf } from '../operations/cursor.js';

/** How many rows a page holds: 1 to 1000, written in digits (not `0x10`, `1e2` or ` 1`). */
export function pageLimit() {
  const expected = 'a whole number from 1 to 1000';
  return z.string().regex(/^[0-9]{1,4}$/, expected).transform(Number).pipe(z.number().min(1, expected).max(1000, expected));
}

/**
 * A page of a list: `limit` rows (1 to 1000; without it, all of them, as before) after the
 * `after` cursor of the previous page's `Link: <...>; rel="next"`.
 */
export const PageQuery = {
  limit: pageLimit().optional().describe('At most this many, oldest first; a Link header (rel="next") gives the next page'),
  after: z.string().optional().describe('The cursor from the previous page\'s Link header'),
};

/**
 * Reads one row past the page to know whether another follows; sets its Link header.
 * Without a limit, the whole list (as before pages existed). `placeOfRow`: where a row
 * stands in the list's order (its creation time and id); `isId`: what such an id can be,
 * for a cursor read back (an id of the store's by default).
 */
export async function paged<T>(
  request: { url: string; query: { limit?: number | undefined; after?: string | undefined } },
  reply: FastifyReply,
  list: (page: Page) => T[] | Promise<T[]>,
  placeOfRow: (row: T) => { createdAt: number; id: string } = (row) => row as T & { createdAt: number; id: string },
  isId?: (id: string) => boolean,
): Promise<T[]> {
  const { limit, after } = request.query;
  const rows = await list({ ...(limit !== undefined ? { limit: limit + 1 } : {}), ...(after !== undefined ? { after: placeOf(after, isId) } : {}) });
  if (limit === undefined || rows.length <= limit) return rows;
  const page = rows.slice(0, limit);
  const next = new URLSearchParams();
  for (const [name, value] of Object.entries(request.query)) if (value !== undefined) next.set(name, String(value));
  next.set('after', cursorOf(placeOfRow(page[page.length - 1] as T)));
  next.set('limit', String(limit));
  reply.header('link', `<${request.url.split('?')[0]}?${next.toString()}>; rel="next"`);
  return page;
}
