/**
 * A small stand-in for the SE Ranking project API (api4.seranking.com) behind keygate:
 * projects ("sites") owned by accounts, the search engines each site is tracked in, its
 * keywords, and made-up but stable ranking positions. It trusts the identity headers
 * keygate adds (it listens on loopback only); another account's site does not exist for
 * the caller (404) unless its owner shared it: a shared site is read-only for the account
 * it was shared with, and changing it is 403 Access denied.
 *
 *   GET    /sites                         the account's sites, and those shared with it
 *   POST   /sites                         {"url": "http://example.com", "title": "example1"} → 201 {"site_id": 147696}
 *   GET    /sites/:id                     one site
 *   PUT    /sites/:id                     {"url": …, "title": …} (either or both): change it → 200, the site
 *   DELETE /sites/:id                     delete it
 *   POST   /sites/:id/viewers             {"account": "acc_…"}: share it, read-only → 204
 *   GET    /sites/:id/search-engines      the search engines it is tracked in
 *   POST   /sites/:id/search-engines      {"search_engine_id": 200} → 201 {"site_engine_id": 1}
 *   GET    /sites/:id/keywords            its keywords
 *   POST   /sites/:id/keywords            [{"keyword": "seo tools"}, …] → 201 {"added": 1, "ids": [1]}
 *   DELETE /sites/:id/keywords?keywords_ids[]=1&keywords_ids[]=2          → 204
 *   GET    /sites/:id/positions?date_from=YYYY-MM-DD&date_to=YYYY-MM-DD&site_engine_id=1
 *   GET    /system/search-engines         the search engines a site can be tracked in
 *
 * Bodies are JSON whatever the Content-Type says (the document's curl sends JSON with
 * curl's default form content type). Errors use the API's {"message": ...} envelope, the
 * message being the "Summary" of the document's row: Bad Request, Access denied, Not
 * Found, Invalid keyword_id, Invalid date, Invalid site_engine_id, No ids in request,
 * Unknown search_engine_id, Unknown site_engine_id. keygate must never forward the
 * caller's credential: a request that still carries an Authorization header or a token
 * parameter is answered with 500.
 *
 * Data lives in memory: a restart starts empty (site ids start at 147696 again).
 *
 *   node upstream.mjs [port]        (default 8133, as keygate.yaml expects)
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { readJson } from '../support/read-json.mjs';
import { servedAs } from '../support/method.mjs';

export const DEFAULT_PORT = 8133;
export const FIRST_SITE_ID = 147696;
/** The search engines a site can be tracked in (ids made up). */
export const SEARCH_ENGINES = [
  { id: 200, name: 'google.com' },
  { id: 339, name: 'google.com.ua' },
  { id: 411, name: 'bing.com' },
];
/** Positions are kept for a year: a longer date range is an invalid date. */
export const MAX_RANGE_DAYS = 366;
const ACCOUNT_HEADER = 'x-keygate-account';
const MAX_BODY = 64 * 1024;
const DAY = 86_400_000;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
const ID = /^\d+$/;

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** A YYYY-MM-DD calendar date as a UTC timestamp; undefined for anything else (2026-02-30 too). */
function parseDate(text) {
  if (!ISO_DATE.test(text)) return undefined;
  const time = Date.parse(`${text}T00:00:00Z`);
  return Number.isNaN(time) || new Date(time).toISOString().slice(0, 10) !== text ? undefined : time;
}

/** A stable made-up position from 0 (not in the top 100) to 100. */
function position(seed) {
  return createHash('sha256').update(seed).digest().readUInt32BE(0) % 101;
}

export function createUpstream() {
  /**
   * @type {Map<number, {id: number, account: string, viewers: Set<string>, url: string, title: string, created: string,
   *   engines: Map<number, {site_engine_id: number, search_engine_id: number, region_name: string | null, lang_code: string}>,
   *   keywords: Map<number, {id: number, name: string}>}>}
   */
  const sites = new Map();
  let nextSiteId = FIRST_SITE_ID;
  let nextSiteEngineId = 1;
  let nextKeywordId = 1;

  const out = (site, account) => ({
    id: site.id,
    url: site.url,
    title: site.title,
    created: site.created,
    keyword_count: site.keywords.size,
    access: site.account === account ? 'edit' : 'view',
  });

  /** The site as the caller may see it: its own, or one shared with it; any other is Not Found. */
  function visibleSite(id, account) {
    const site = sites.get(Number(id));
    if (!site || (site.account !== account && !site.viewers.has(account))) throw new ApiError(404, 'Not Found');
    return site;
  }

  /** A shared site can be read but not changed by the accounts it was shared with. */
  function mustOwn(site, account) {
    if (site.account !== account) throw new ApiError(403, 'Access denied');
  }

  /** A site's address as sent, or a 400 Bad Request. */
  function siteUrlOf(body) {
    const siteUrl = typeof body?.url === 'string' ? body.url.trim() : '';
    if (!/^https?:\/\/[^\s/]+/.test(siteUrl)) throw new ApiError(400, 'Bad Request');
    return siteUrl;
  }

  function sitesCollection(account, method, body) {
    if (method === 'GET') return { body: [...sites.values()].filter((s) => s.account === account || s.viewers.has(account)).map((s) => out(s, account)) };
    if (method !== 'POST') throw new ApiError(405, 'Method Not Allowed');
    const siteUrl = siteUrlOf(body);
    const site = {
      id: nextSiteId++,
      account,
      viewers: new Set(),
      url: siteUrl,
      title: typeof body.title === 'string' ? body.title : siteUrl,
      created: new Date().toISOString().slice(0, 10),
      engines: new Map(),
      keywords: new Map(),
    };
    sites.set(site.id, site);
    return { status: 201, body: { site_id: site.id } };
  }

  function oneSite(site, account, method, body) {
    if (method === 'GET') return { body: out(site, account) };
    if (method === 'PUT') {
      mustOwn(site, account);
      const change = typeof body === 'object' && body !== null && !Array.isArray(body) ? body : undefined;
      if (!change || (change.url === undefined && change.title === undefined)) throw new ApiError(400, 'Bad Request');
      if (change.title !== undefined && typeof change.title !== 'string') throw new ApiError(400, 'Bad Request');
      // Checked in full before anything changes.
      const siteUrl = change.url === undefined ? site.url : siteUrlOf(change);
      site.url = siteUrl;
      if (change.title !== undefined) site.title = change.title;
      return { body: out(site, account) };
    }
    if (method !== 'DELETE') throw new ApiError(405, 'Method Not Allowed');
    mustOwn(site, account);
    sites.delete(site.id);
    return { status: 204 };
  }

  function viewers(site, account, method, body) {
    if (method !== 'POST') throw new ApiError(405, 'Method Not Allowed');
    mustOwn(site, account);
    const viewer = typeof body?.account === 'string' ? body.account.trim() : '';
    if (viewer === '' || viewer === account) throw new ApiError(400, 'Bad Request');
    site.viewers.add(viewer);
    return { status: 204 };
  }

  function searchEngines(site, account, method, body) {
    if (method === 'GET') return { body: [...site.engines.values()] };
    if (method !== 'POST') throw new ApiError(405, 'Method Not Allowed');
    mustOwn(site, account);
    const id = body?.search_engine_id;
    if (!Number.isSafeInteger(id) || id < 1) throw new ApiError(400, 'Bad Request');
    if (!SEARCH_ENGINES.some((engine) => engine.id === id)) throw new ApiError(404, 'Unknown search_engine_id');
    const engine = {
      site_engine_id: nextSiteEngineId++,
      search_engine_id: id,
      region_name: typeof body.region_name === 'string' ? body.region_name : null,
      lang_code: typeof body.lang_code === 'string' ? body.lang_code : 'en',
    };
    site.engines.set(engine.site_engine_id, engine);
    return { status: 201, body: { site_engine_id: engine.site_engine_id } };
  }

  function keywords(site, account, method, query, body) {
    if (method === 'GET') return { body: [...site.keywords.values()] };
    if (method === 'POST') {
      mustOwn(site, account);
      const names = Array.isArray(body) ? body.map((k) => (typeof k?.keyword === 'string' ? k.keyword.trim() : '')) : [];
      if (names.length === 0 || names.includes('')) throw new ApiError(400, 'Bad Request');
      const ids = names.map((name) => {
        const keyword = { id: nextKeywordId++, name };
        site.keywords.set(keyword.id, keyword);
        return keyword.id;
      });
      return { status: 201, body: { added: ids.length, ids } };
    }
    if (method !== 'DELETE') throw new ApiError(405, 'Method Not Allowed');
    mustOwn(site, account);
    const ids = [...query.getAll('keywords_ids[]'), ...query.getAll('keywords_ids')].flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
    if (ids.length === 0) throw new ApiError(400, 'No ids in request');
    // All or nothing: one id that is not a keyword of this site deletes none of them.
    if (ids.some((id) => !ID.test(id) || !site.keywords.has(Number(id)))) throw new ApiError(400, 'Invalid keyword_id');
    for (const id of ids) site.keywords.delete(Number(id));
    return { status: 204 };
  }

  function positions(site, method, query) {
    if (method !== 'GET') throw new ApiError(405, 'Method Not Allowed');
    const today = new Date().toISOString().slice(0, 10);
    const to = parseDate(query.get('date_to') ?? today);
    const from = parseDate(query.get('date_from') ?? query.get('date_to') ?? today);
    if (from === undefined || to === undefined || from > to || (to - from) / DAY >= MAX_RANGE_DAYS) throw new ApiError(400, 'Invalid date');
    let engines = [...site.engines.values()];
    const wanted = query.get('site_engine_id');
    if (wanted !== null) {
      if (!ID.test(wanted) || Number(wanted) < 1) throw new ApiError(400, 'Invalid site_engine_id');
      engines = engines.filter((engine) => engine.site_engine_id === Number(wanted));
      if (engines.length === 0) throw new ApiError(404, 'Unknown site_engine_id');
    }
    const dates = [];
    for (let day = from; day <= to; day += DAY) dates.push(new Date(day).toISOString().slice(0, 10));
    return {
      body: engines.map((engine) => ({
        site_engine_id: engine.site_engine_id,
        keywords: [...site.keywords.values()].map((k) => ({
          id: k.id,
          name: k.name,
          positions: dates.map((date) => ({ date, pos: position(`${engine.site_engine_id}|${k.id}|${date}`) })),
        })),
      })),
    };
  }

  /** @returns {{status?: number, body?: unknown}} */
  function answer(account, method, url, body) {
    const path = url.pathname.replace(/\/+$/, '');
    if (path === '/system/search-engines') {
      if (method !== 'GET') throw new ApiError(405, 'Method Not Allowed');
      return { body: SEARCH_ENGINES };
    }
    if (path === '/sites') return sitesCollection(account, method, body);
    const m = /^\/sites\/(\d+)(?:\/([a-z-]+))?$/.exec(path);
    if (!m) throw new ApiError(404, 'Not Found');
    const site = visibleSite(m[1], account);
    switch (m[2]) {
      case undefined:
        return oneSite(site, account, method, body);
      case 'viewers':
        return viewers(site, account, method, body);
      case 'search-engines':
        return searchEngines(site, account, method, body);
      case 'keywords':
        return keywords(site, account, method, url.searchParams, body);
      case 'positions':
        return positions(site, method, url.searchParams);
      default:
        throw new ApiError(404, 'Not Found');
    }
  }

  return createServer((req, res) => {
    const send = (status, body) => {
      const text = body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, text ? { 'content-type': 'application/json' } : {});
      res.end(text);
    };
    const url = new URL(req.url ?? '/', 'http://upstream');
    if (req.headers.authorization !== undefined || url.searchParams.has('token')) {
      return send(500, { message: 'Server error: keygate forwarded the credential' });
    }
    const account = req.headers[ACCOUNT_HEADER];
    if (typeof account !== 'string' || account === '') return send(403, { message: 'No token' });
    readJson(req, MAX_BODY).then(
      (body) => {
        try {
          const result = answer(account, servedAs(req.method), url, body);
          send(result.status ?? 200, result.body);
        } catch (error) {
          if (error instanceof ApiError) return send(error.status, { message: error.message });
          send(500, { message: 'Server error' });
        }
      },
      () => send(400, { message: 'Bad Request' }),
    );
    return undefined;
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // The port given, else the one keygate names (PORT, from upstream.url), else its own.
  const port = Number(process.argv[2] ?? process.env.PORT ?? DEFAULT_PORT);
  createUpstream().listen(port, '127.0.0.1', () => console.log(`seranking-project upstream on http://127.0.0.1:${port}`));
}
