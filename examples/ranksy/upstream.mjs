/**
 * A small stand-in for the Ranksy API v1 behind keygate: Shopify apps owned by teams,
 * and their partner metrics. It trusts the identity headers keygate adds (it listens on
 * loopback only): X-Keygate-Account is the team, X-Keygate-Mode is live or test. Another
 * team's app does not exist for the caller (404).
 *
 *   GET /api/v1/apps                            the team's apps
 *   GET /api/v1/apps/{app}/metrics/{metric}     one partner metric of one app
 *
 * Every team gets two apps whose ids are derived from the team id (so they are stable
 * across restarts). Figures depend only on the app and the metric: as the document says,
 * they are the same in test and live mode; only `livemode` tells them apart.
 *
 *   node upstream.mjs [port]        (default 8123, as keygate.yaml expects)
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { servedAs } from '../support/method.mjs';

export const DEFAULT_PORT = 8123;
const TEAM_HEADER = 'x-keygate-account';
const MODE_HEADER = 'x-keygate-mode';
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const APP_NAMES = ['Bundle Builder', 'Review Booster'];

/** Metric name → how its value is shown. */
export const METRICS = {
  mrr: { unit: 'USD' },
  arr: { unit: 'USD' },
  revenue: { unit: 'USD' },
  active_installs: { unit: 'installs' },
  installs: { unit: 'installs' },
  uninstalls: { unit: 'installs' },
  churn_rate: { unit: 'percent' },
};

function digest(text) {
  return createHash('sha256').update(text).digest();
}

/** A ULID-looking id (25 Crockford base32 characters, like the document's example) for a team's n-th app. */
export function appId(team, n) {
  const bytes = digest(`${team}#${n}`);
  let out = '01JN4HKQX';
  for (let i = 0; out.length < 25; i++) out += CROCKFORD[bytes[i] % 32];
  return out;
}

export function appsOf(team) {
  return APP_NAMES.map((name, n) => ({ id: appId(team, n), name, platform: 'shopify' }));
}

function metricValue(app, metric) {
  const n = digest(`${app}/${metric}`).readUInt32BE(0);
  if (metric === 'churn_rate') return Math.round((n % 1000) / 10) / 10;
  if (METRICS[metric].unit === 'USD') return Math.round(n % 5_000_000) / 100;
  return n % 5000;
}

export function createUpstream() {
  return createServer((req, res) => {
    const send = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(body));
    };
    const error = (status, type, code, message) => send(status, { error: { type, code, message } });
    const team = req.headers[TEAM_HEADER];
    if (typeof team !== 'string' || team === '') return error(401, 'authentication_error', 'no_team', 'Call this upstream through keygate.');
    if (servedAs(req.method) !== 'GET') return error(405, 'invalid_request_error', 'method_not_allowed', `${req.method} is not allowed here.`);
    const livemode = req.headers[MODE_HEADER] !== 'test';
    const path = (req.url ?? '/').split('?')[0].replace(/\/+$/, '');
    const apps = appsOf(team);

    if (path === '/api/v1/apps') return send(200, { data: apps, livemode });
    const m = /^\/api\/v1\/apps\/([^/]+)\/metrics\/([^/]+)$/.exec(path);
    if (!m) return error(404, 'invalid_request_error', 'not_found', 'No such endpoint.');
    const [, appParam, metric] = m.map(safeDecode);
    const app = apps.find((a) => a.id === appParam);
    if (!app) return error(404, 'invalid_request_error', 'app_not_found', `No such app: ${appParam}`);
    if (!Object.hasOwn(METRICS, metric)) {
      return error(404, 'invalid_request_error', 'metric_not_found', `No such metric: ${metric}. Metrics: ${Object.keys(METRICS).join(', ')}.`);
    }
    return send(200, {
      data: { app: app.id, metric, value: metricValue(app.id, metric), unit: METRICS[metric].unit, as_of: new Date().toISOString().slice(0, 10) },
      livemode,
    });
  });
}

function safeDecode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // The port given, else the one keygate names (PORT, from upstream.url), else its own.
  const port = Number(process.argv[2] ?? process.env.PORT ?? DEFAULT_PORT);
  createUpstream().listen(port, '127.0.0.1', () => console.log(`ranksy upstream on http://127.0.0.1:${port}`));
}
