/**
 * A small stand-in for the Ranktracker REST API behind keygate: domains and their
 * keywords, each owned by one account. It trusts the identity headers keygate adds
 * (it listens on loopback only), so another account's domain or keyword is a 404,
 * "as if it did not exist", in the JSON:API error envelope.
 *
 *   GET    /v1/domains                  the account's domains
 *   POST   /v1/domains                  {"data":{"type":"domains","attributes":{"domain":"example.com"}}} (or {"domain":...})
 *   GET    /v1/domains/:id              one domain
 *   DELETE /v1/domains/:id              delete it and its keywords
 *   GET    /v1/domains/:id/keywords     its keywords
 *   POST   /v1/domains/:id/keywords     {"data":{"type":"keywords","attributes":{"keywords":["a","b"],"locations":["us","gb"]}}}
 *   GET    /v1/keywords/:id             one keyword
 *   DELETE /v1/keywords/:id             stop tracking it
 *
 * Every answer reports the account's gauges in two headers keygate reads (and removes):
 * X-Ranktracker-Keywords (keywords tracked) and X-Ranktracker-Data-Rows (one data row
 * per keyword and location). keygate serves them from GET /v1/account/usage.
 *
 * Data lives in memory: a restart starts empty.
 *
 *   node upstream.mjs [port]        (default 8113, as keygate.yaml expects)
 */
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { readJson } from '../support/read-json.mjs';
import { servedAs } from '../support/method.mjs';

export const DEFAULT_PORT = 8113;
const ACCOUNT_HEADER = 'x-keygate-account';
const MAX_BODY = 1024 * 1024;

export function createUpstream() {
  /** @type {Map<string, {id: string, account: string, domain: string, createdAt: string}>} */
  const domains = new Map();
  /** @type {Map<string, {id: string, account: string, domainId: string, keyword: string, locations: string[], createdAt: string}>} */
  const keywords = new Map();
  let nextDomain = 1;
  let nextKeyword = 1;

  const domainResource = (d) => ({ id: d.id, type: 'domains', attributes: { domain: d.domain, createdAt: d.createdAt } });
  const keywordResource = (k) => ({
    id: k.id,
    type: 'keywords',
    attributes: { keyword: k.keyword, locations: k.locations, createdAt: k.createdAt },
    relationships: { domain: { data: { type: 'domains', id: k.domainId } } },
  });
  const notFound = (detail) => [404, { errors: [{ code: 'not_found', status: 404, detail }] }];
  const invalid = (detail) => [422, { errors: [{ code: 'unprocessable_entity', status: 422, detail }] }];
  const ownDomain = (account, id) => {
    const d = domains.get(id);
    return d && d.account === account ? d : undefined;
  };

  /** @returns {[number, unknown]} */
  function route(method, path, account, body) {
    let m;
    if (path === '/v1/domains') {
      if (method === 'GET') return [200, { data: [...domains.values()].filter((d) => d.account === account).map(domainResource) }];
      if (method === 'POST') {
        const domain = String(body?.data?.attributes?.domain ?? body?.domain ?? '').trim().toLowerCase();
        if (!/^[a-z0-9.-]+\.[a-z]{2,}$/.test(domain)) return invalid('attributes.domain must be a domain name such as example.com.');
        const d = { id: `dom_${nextDomain++}`, account, domain, createdAt: new Date().toISOString() };
        domains.set(d.id, d);
        return [201, { data: domainResource(d) }];
      }
    } else if ((m = /^\/v1\/domains\/([^/]+)$/.exec(path))) {
      const d = ownDomain(account, m[1]);
      if (!d) return notFound('Domain not found.');
      if (method === 'GET') return [200, { data: domainResource(d) }];
      if (method === 'DELETE') {
        domains.delete(d.id);
        for (const k of keywords.values()) if (k.domainId === d.id) keywords.delete(k.id);
        return [204, undefined];
      }
    } else if ((m = /^\/v1\/domains\/([^/]+)\/keywords$/.exec(path))) {
      const d = ownDomain(account, m[1]);
      if (!d) return notFound('Domain not found.');
      if (method === 'GET') return [200, { data: [...keywords.values()].filter((k) => k.domainId === d.id).map(keywordResource) }];
      if (method === 'POST') {
        const attributes = body?.data?.attributes ?? body ?? {};
        const list = Array.isArray(attributes.keywords) ? attributes.keywords : [attributes.keyword];
        const names = list.map((k) => String(k ?? '').trim()).filter(Boolean);
        const locations = Array.isArray(attributes.locations) && attributes.locations.length > 0 ? attributes.locations.map(String) : ['us'];
        if (names.length === 0) return invalid('attributes.keywords must list at least one keyword.');
        const created = names.map((keyword) => {
          const k = { id: `kw_${nextKeyword++}`, account, domainId: d.id, keyword, locations, createdAt: new Date().toISOString() };
          keywords.set(k.id, k);
          return keywordResource(k);
        });
        return [201, { data: created }];
      }
    } else if ((m = /^\/v1\/keywords\/([^/]+)$/.exec(path))) {
      const k = keywords.get(m[1]);
      if (!k || k.account !== account) return notFound('Keyword not found.');
      if (method === 'GET') return [200, { data: keywordResource(k) }];
      if (method === 'DELETE') {
        keywords.delete(k.id);
        return [204, undefined];
      }
    } else {
      return notFound('No such endpoint.');
    }
    return [405, { errors: [{ code: 'method_not_allowed', status: 405, detail: `${method} is not allowed here.` }] }];
  }

  return createServer((req, res) => {
    const account = req.headers[ACCOUNT_HEADER];
    const send = (status, body, headers = {}) => {
      const text = body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, { ...(text ? { 'content-type': 'application/json; charset=utf-8' } : {}), ...headers });
      res.end(text);
    };
    if (typeof account !== 'string' || account === '') {
      send(401, { errors: [{ code: 'unauthorized', status: 401, detail: 'Call this upstream through keygate.' }] });
      return;
    }
    readJson(req, MAX_BODY).then(
      (body) => {
        const path = (req.url ?? '/').split('?')[0].replace(/\/+$/, '') || '/';
        const [status, payload] = route(servedAs(req.method), path, account, body);
        const own = [...keywords.values()].filter((k) => k.account === account);
        send(status, payload, {
          'x-ranktracker-keywords': String(own.length),
          'x-ranktracker-data-rows': String(own.reduce((rows, k) => rows + k.locations.length, 0)),
        });
      },
      () => send(400, { errors: [{ code: 'bad_request', status: 400, detail: 'The body must be JSON.' }] }),
    );
  });
}

/** The request body parsed as JSON (undefined when empty), whatever its content type. */

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // The port given, else the one keygate names (PORT, from upstream.url), else its own.
  const port = Number(process.argv[2] ?? process.env.PORT ?? DEFAULT_PORT);
  createUpstream().listen(port, '127.0.0.1', () => console.log(`ranktracker upstream on http://127.0.0.1:${port}`));
}
