/**
 * A small stand-in for the SE Ranking Data API (api.seranking.com/v1) behind keygate:
 * backlinks, domain and keyword-export commands with made-up but stable figures. keygate
 * charges units for them; this upstream only has to say how many records it returned:
 *
 *   - backlinks answers carry `X-SE-Records: <n>` (keygate reads and removes it);
 *   - /v1/backlinks/summary lists one object per target under "summary" instead, and
 *     keygate counts that list (a JSON count, to show both ways).
 *
 *   GET|POST /v1/backlinks/<command>   target(s) in the query (target=…, repeatable, or
 *                                      target[]=…) or the JSON body ({"target": "a.com"} or
 *                                      {"target": ["a.com", "b.com"]}); list commands take
 *                                      limit (default 100, at most 10000)
 *   POST     /v1/backlinks/export      {"target": "a.com"} → {"task_id": …}
 *   GET      /v1/backlinks/export/status?task_id=…
 *   GET|POST /v1/domain/<command>      domain=… (required), source=… (a regional database code)
 *   POST     /v1/keywords/export       {"keywords": [...], "source": "us"}, optionally sorted:
 *                                      sort=keyword|volume|difficulty, sort_order=asc|desc
 *                                      (default desc; without sort, the order sent)
 *
 * Errors use the {"error_description": ...} envelope and the texts of the document's
 * table (`output`, `mode` and `order_by` are checked; only JSON is produced, so
 * `output=xml` is accepted and answered in JSON; a list's limit above 10000 is
 * `Row limit exceeded`; keywords/export's sort and sort_order give `Incorrect order` and
 * `Incorrect order field {sort} {sort_order}`). Huge websites (google.com, twitter.com)
 * answer 244 with no records, the table's text as its reason phrase; no-links.example is
 * a target with no backlinks (counts 0, InLink Ranks -1 for unknown). It trusts keygate's
 * identity headers, and answers 500 if a credential ever reaches it.
 *
 *   node upstream.mjs [port]        (default 8143, as keygate.yaml expects)
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { readJson } from '../support/read-json.mjs';
import { servedAs } from '../support/method.mjs';

export const DEFAULT_PORT = 8143;
export const RECORDS_HEADER = 'x-se-records';
const ACCOUNT_HEADER = 'x-keygate-account';
const MAX_BODY = 4 * 1024 * 1024;
const MAX_TARGETS = 100;
const MAX_KEYWORDS = 10_000;
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 10_000;
/** keywords/export sorts by the fields its rows carry. */
const KEYWORD_SORT_FIELDS = ['keyword', 'volume', 'difficulty'];
const SORT_ORDERS = ['asc', 'desc'];
const HUGE = new Set(['google.com', 'twitter.com', 'www.google.com', 'www.twitter.com', 'x.com']);
const HUGE_STATUS = 244;
const HUGE_REASON = 'Results for huge websites like google.com or twitter.com are unavailable via API so far';

/** Regional database codes (the document's table; "ww" and its alias "worldwide"). */
export const SOURCES = new Set(
  `ae af ag ai al am ao ar as at au aw az ba bb bd be bf bg bh bi bj bn bo br bs bt bw by bz ca cd cf cg ch ci ck cl cm cn co cr cu cv cy cz de dj dk dm do dz ec ee eg es et fi fj fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr gt gu gy hk hn hr ht hu id ie il im in iq is it je jm jo jp ke kg kh ki kn kr kw ky kz la lb lc li lk ls lt lu lv ly ma mc md me mg mk ml mm mn mq mr ms mt mu mv mw mx my mz na nc ne ng ni nl no np nr nu nz om pa pe pf pg ph pk pl pn pr ps pt py qa re ro rs ru rw sa sb sc se sg sh si sk sl sm sn so sr st sv td tg th tj tk tl tm tn to tr tt tw tz ua ug us uy uz vc ve vg vi vn vu ws ye yt za zm zw ww worldwide`.split(' '),
);

/** Commands that answer one record per target. */
const PER_TARGET = new Set([
  'summary', 'count', 'metrics', 'authority', 'authority/domain', 'referring-ips/count', 'history/count', 'history/cumulative',
  'refdomains/history/count', 'refdomains/count', 'referring-subnets/count',
]);
/** Commands that answer a list of records for one target, at most `limit`. */
const LISTS = new Set([
  'all', 'anchors', 'raw', 'refdomains', 'referring-ips', 'history', 'refdomains/history', 'authority/page', 'authority/page/history',
  'indexed-pages', 'authority/domain/distribution',
]);
const DOMAIN = new Set(['overview', 'overview/all', 'overview/db', 'overview/history', 'keywords', 'ads', 'competitors', 'keywords/comparison']);

function number(seed, max) {
  return createHash('sha256').update(seed).digest().readUInt32BE(0) % max;
}

/**
 * A target nobody links to, for the table's two "200 (OK)" rows: its counts are 0 ("no
 * referring backlinks or domains for an URL"), its InLink Ranks -1 ("must be treated as
 * Unknown", unlike a known rank of 0), and its lists are empty.
 */
const NO_LINKS = new Set(['no-links.example', 'www.no-links.example']);
const UNKNOWN_RANK = -1;

function hostOf(target) {
  return target.replace(/^https?:\/\//, '').split('/')[0];
}

/** How many records a list command has for a target (stable, 20..499; none for NO_LINKS). */
export function available(command, target) {
  if (NO_LINKS.has(hostOf(target))) return 0;
  return 20 + number(`${command}|${target}`, 480);
}

class HttpError extends Error {
  constructor(status, description, headers = {}) {
    super(description);
    this.status = status;
    this.headers = headers;
  }
}

/** The methods every command is served under; HEAD is GET without the body. */
const COMMAND_METHODS = 'GET, HEAD, POST';
/** The table's 405 row, naming the methods the endpoint does take (Allow), as HTTP asks of every 405. */
function methodNotAllowed(allow) {
  return new HttpError(405, 'Method Not Allowed.', { allow });
}

export function createUpstream() {
  const tasks = new Map();
  let nextTask = 1;

  function targetsOf(query, body) {
    const fromQuery = [...query.getAll('target'), ...query.getAll('target[]')].flatMap((t) => t.split(','));
    const fromBody = body?.target === undefined ? [] : Array.isArray(body.target) ? body.target : [body.target];
    const targets = [...fromQuery, ...fromBody].map((t) => String(t).trim().toLowerCase()).filter(Boolean);
    if (targets.length === 0) throw new HttpError(400, 'Parameter target is missing.');
    if (targets.length > MAX_TARGETS) throw new HttpError(400, 'Parameter target is invalid.');
    for (const t of targets) if (!/^[a-z0-9.-]+\.[a-z]{2,}(\/\S*)?$/.test(t.replace(/^https?:\/\//, ''))) throw new HttpError(400, 'Invalid target');
    return targets;
  }

  function param(query, body, name) {
    const value = query.get(name) ?? body?.[name];
    return value === undefined || value === null ? undefined : String(value);
  }

  function source(query, body) {
    const value = (param(query, body, 'source') ?? 'us').toLowerCase();
    if (!SOURCES.has(value)) throw new HttpError(400, 'Invalid source');
    return value;
  }

  /**
   * The format parameters every command takes, with the document's texts: `output` (406
   * as in its error-envelope example), `mode` and `order_by` (400, the table's rows).
   */
  function checkFormats(query, body) {
    const output = param(query, body, 'output');
    if (output !== undefined && !['json', 'xml'].includes(output)) {
      throw new HttpError(406, "Unsupported 'output' format. Supported 'output' formats are 'json' (default) and 'xml'.");
    }
    const mode = param(query, body, 'mode');
    if (mode !== undefined && !['host', 'domain', 'url'].includes(mode)) {
      throw new HttpError(400, 'Unsupported ‘mode’ format. Supported ‘mode’ formats are ‘host’ (default), ‘domain’, ‘url’.');
    }
    const orderBy = param(query, body, 'order_by');
    if (orderBy !== undefined && !['backlinks', 'refdomains'].includes(orderBy)) {
      throw new HttpError(400, 'Unsupported ‘order_by’ format. Supported ‘order_by’ formats are ‘backlinks’ (default), ‘refdomains’.');
    }
  }

  /** @returns {{status?: number, body: unknown, records?: number}} */
  function backlinks(account, command, method, query, body) {
    checkFormats(query, body);
    if (command === 'export') {
      if (method !== 'POST') throw methodNotAllowed('POST');
      const targets = targetsOf(query, body);
      if (targets.length > 1) throw new HttpError(400, 'Parameter target is invalid.');
      const id = `task_${nextTask++}`;
      tasks.set(id, { account, target: targets[0], polls: 0 });
      return { body: { task_id: id, status: 'queued' }, records: 1 };
    }
    if (command === 'export/status') {
      const task = tasks.get(param(query, body, 'task_id') ?? '');
      if (!task || task.account !== account) throw new HttpError(400, 'Parameter task_id is invalid.');
      task.polls += 1;
      const done = task.polls >= 2;
      return { body: { status: done ? 'complete' : 'processing', ...(done ? { download_url: `https://example.invalid/exports/${task.target}.csv.gz` } : {}) }, records: 0 };
    }
    const targets = targetsOf(query, body);
    const key = command.replaceAll('/', '_').replaceAll('-', '_');
    if (targets.every((t) => HUGE.has(hostOf(t)))) {
      return {
        status: HUGE_STATUS,
        body: { [key]: [], error_description: `${HUGE_REASON}.` },
        records: 0,
      };
    }
    if (PER_TARGET.has(command)) {
      const rows = targets.map((target) => ({
        target,
        backlinks: available('all', target) * 37,
        refdomains: available('refdomains', target) * 3,
        inlink_rank: NO_LINKS.has(hostOf(target)) ? UNKNOWN_RANK : number(`rank|${target}`, 101),
        domain_inlink_rank: NO_LINKS.has(hostOf(target)) ? UNKNOWN_RANK : number(`drank|${target}`, 101),
      }));
      return { body: { [key]: rows }, records: rows.length };
    }
    if (LISTS.has(command)) {
      if (targets.length > 1) throw new HttpError(400, 'Parameter target is invalid.');
      const target = targets[0];
      const limitText = param(query, body, 'limit') ?? String(DEFAULT_LIMIT);
      if (!/^\d+$/.test(limitText) || Number(limitText) < 1) throw new HttpError(400, `limit=${limitText} is not within required bounds!`);
      // More rows than one request may return: the table's own row for it, not the bounds text.
      if (Number(limitText) > MAX_LIMIT) throw new HttpError(400, 'Row limit exceeded');
      const n = Math.min(Number(limitText), available(command, target));
      const rows = Array.from({ length: n }, (_, i) => ({ url_from: `https://site${i + 1}.example/page`, url_to: `https://${target}/`, anchor: `anchor ${i + 1}`, nofollow: i % 4 === 0 }));
      return { body: { [key]: rows }, records: n };
    }
    throw new HttpError(400, 'The requested resource could not be found.');
  }

  function domain(command, query, body) {
    if (!DOMAIN.has(command)) throw new HttpError(400, 'The requested resource could not be found.');
    const name = param(query, body, 'domain');
    if (!name) throw new HttpError(400, 'Parameter domain is missing.');
    if (!/^[a-z0-9.-]+\.[a-z]{2,}$/i.test(name)) throw new HttpError(400, 'Invalid domain');
    const db = source(query, body);
    return { body: { domain: name.toLowerCase(), source: db, command, keywords: number(`kw|${name}|${db}`, 100_000), traffic: number(`tr|${name}|${db}`, 1_000_000) } };
  }

  function keywordsExport(method, query, body) {
    if (method !== 'POST') throw methodNotAllowed('POST');
    const list = Array.isArray(body?.keywords) ? body.keywords : (query.get('keywords') ?? '').split(',');
    const keywords = list.map((k) => String(k).trim()).filter(Boolean);
    if (keywords.length === 0) throw new HttpError(400, 'Invalid keywords');
    if (keywords.length > MAX_KEYWORDS) throw new HttpError(400, `Exceeded keywords size. Max keywords for one request: ${MAX_KEYWORDS}`);
    const db = source(query, body);
    const rows = keywords.map((keyword) => ({ keyword, source: db, volume: number(`vol|${keyword}|${db}`, 50_000), difficulty: number(`kd|${keyword}`, 101) }));
    return { body: sorted(rows, param(query, body, 'sort'), param(query, body, 'sort_order')) };
  }

  /**
   * keywords/export's rows in the order asked for. The order is checked first, so the
   * field's error can name it: the values sent, or desc when only sort was sent.
   */
  function sorted(rows, sort, sortOrder = 'desc') {
    if (!SORT_ORDERS.includes(sortOrder)) throw new HttpError(400, 'Incorrect order');
    if (sort === undefined) return rows;
    if (!KEYWORD_SORT_FIELDS.includes(sort)) throw new HttpError(400, `Incorrect order field ${sort} ${sortOrder}`);
    const direction = sortOrder === 'asc' ? 1 : -1;
    return rows.toSorted((a, b) => direction * (a[sort] < b[sort] ? -1 : a[sort] > b[sort] ? 1 : 0));
  }

  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://upstream');
    const send = (status, body, headers = {}) => {
      // 244 is the API's own status: the table gives its reason phrase (Node's would be "unknown").
      if (status === HUGE_STATUS) res.writeHead(status, HUGE_REASON, { 'content-type': 'application/json', ...headers });
      else res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== undefined || url.searchParams.has('apikey')) {
      return send(500, { error_description: 'Unexpected error. keygate forwarded the credential.' });
    }
    const account = req.headers[ACCOUNT_HEADER];
    if (typeof account !== 'string' || account === '') return send(400, { error_description: 'No token' });
    const method = servedAs(req.method);
    readJson(req, MAX_BODY).then(
      (body) => {
        try {
          if (!['GET', 'POST'].includes(method)) throw methodNotAllowed(COMMAND_METHODS);
          const path = url.pathname.replace(/\/+$/, '');
          let m;
          if ((m = /^\/v1\/backlinks\/(.+)$/.exec(path))) {
            const answer = backlinks(account, m[1], method, url.searchParams, body);
            // keygate counts summary records in the JSON body; every other command says it in a header.
            return send(answer.status ?? 200, answer.body, m[1] === 'summary' ? {} : { [RECORDS_HEADER]: String(answer.records ?? 0) });
          }
          if ((m = /^\/v1\/domain\/(.+)$/.exec(path))) return send(200, domain(m[1], url.searchParams, body).body);
          if (path === '/v1/keywords/export') return send(200, keywordsExport(method, url.searchParams, body).body);
          throw new HttpError(400, 'The requested resource could not be found.');
        } catch (error) {
          if (error instanceof HttpError) return send(error.status, { error_description: error.message }, error.headers);
          return send(500, { error_description: 'Unexpected error. Please try again later.' });
        }
      },
      () => send(400, { error_description: 'Parameter body is invalid.' }),
    );
    return undefined;
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // The port given, else the one keygate names (PORT, from upstream.url), else its own.
  const port = Number(process.argv[2] ?? process.env.PORT ?? DEFAULT_PORT);
  createUpstream().listen(port, '127.0.0.1', () => console.log(`seranking-data upstream on http://127.0.0.1:${port}`));
}
