/**
 * A small stand-in for the Trakkr API behind keygate: brands owned by accounts. It trusts
 * the identity headers keygate adds (it listens on loopback only), so another account's
 * brand does not exist for the caller (404).
 *
 *   GET  /get-brands                 the account's brands
 *   GET  /get-brand?brand_id=…       one brand
 *   POST /create-brand               {"name": "Acme", "domain": "acme.com"} → 201
 *
 * Data lives in memory: a restart starts empty.
 *
 *   node upstream.mjs [port]        (default 8153, as keygate.yaml expects)
 */
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { readJson } from '../support/read-json.mjs';
import { servedAs } from '../support/method.mjs';

export const DEFAULT_PORT = 8153;
const ACCOUNT_HEADER = 'x-keygate-account';
const MAX_BODY = 64 * 1024;

export function createUpstream() {
  /** @type {Map<string, {id: string, account: string, name: string, domain: string | null, created_at: string}>} */
  const brands = new Map();
  let next = 1;
  const out = ({ account: _account, ...brand }) => brand;

  return createServer((req, res) => {
    const send = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(body));
    };
    const account = req.headers[ACCOUNT_HEADER];
    if (typeof account !== 'string' || account === '') return send(401, { error: 'Call this upstream through keygate' });
    const url = new URL(req.url ?? '/', 'http://upstream');
    const path = url.pathname.replace(/\/+$/, '');
    const method = servedAs(req.method);

    if (method === 'GET' && path === '/get-brands') {
      return send(200, { brands: [...brands.values()].filter((b) => b.account === account).map(out) });
    }
    if (method === 'GET' && path === '/get-brand') {
      const brand = brands.get(url.searchParams.get('brand_id') ?? '');
      if (!brand || brand.account !== account) return send(404, { error: 'Brand not found' });
      return send(200, { brand: out(brand) });
    }
    if (method === 'POST' && path === '/create-brand') {
      readJson(req, MAX_BODY).then(
        (body) => {
          const name = typeof body?.name === 'string' ? body.name.trim() : '';
          if (name === '') return send(400, { error: 'name is required' });
          const brand = { id: `brand_${next++}`, account, name, domain: typeof body.domain === 'string' ? body.domain : null, created_at: new Date().toISOString() };
          brands.set(brand.id, brand);
          send(201, { brand: out(brand) });
        },
        () => send(400, { error: 'The body must be JSON' }),
      );
      return undefined;
    }
    return send(404, { error: 'Not found' });
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // The port given, else the one keygate names (PORT, from upstream.url), else its own.
  const port = Number(process.argv[2] ?? process.env.PORT ?? DEFAULT_PORT);
  createUpstream().listen(port, '127.0.0.1', () => console.log(`trakkr upstream on http://127.0.0.1:${port}`));
}
