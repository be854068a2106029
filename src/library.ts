/**
 * keygate as a library: the same pipeline in process, for an API that does not want a
 * proxy hop. `check` runs steps 1–7 and answers either an identity to serve or the
 * finished error in the API's dialect; `settle` is step 9 once the API has answered.
 * docs/library.md says how, with Fastify and Express too.
 */
import type { LoadedConfig } from './config/load.js';
import { createRuntime, type Runtime, type RuntimeOptions } from './runtime.js';
import type { RenderedError } from './dialect/dialect.js';
import type { Identity } from './pipeline/identity.js';
import type { RouteMatch } from './routes/route-table.js';
import { settleCharge, type OnCharged } from './pipeline/settle.js';
import type { Reservation } from './counters/counters.js';
import { renderBuiltin } from './gateway/builtins.js';
import { statusClass } from './usage/usage-recorder.js';
import { isReportedCount, MAX_REPORTED } from './meters/cost.js';
import { isRequestLineMethod, judgeTarget, normalBasePath, NOT_IN_REQUEST_LINE } from './gateway/request-path.js';
import { isRefusedHost } from './host-value.js';
import { deny, type DenialReason } from './denial/reasons.js';
import { refusedKeyOwner } from './pipeline/pipeline.js';
import { redactedTarget } from './gateway/redacted-target.js';
import { forwardedTarget } from './auth/credential.js';
import { misplacedKey, MOST_PLACES, type MisplacedKey } from './auth/misplaced-key.js';
import { DRAINING_RETRY_AFTER_S, OUTAGE_RETRY_AFTER_S } from './operations/health.js';

export interface CheckRequest {
  /**
   * As received (`req.method`): a method Node's parser does not read, one it does not know
   * (`FOO`) or in lower case (`get`), is refused as `bad_request`, as the gateway refuses it;
   * so is a `QUERY` whose `headers` hold no `Content-Type`.
   */
  method: string;
  /** Path and query string, as received. */
  url: string;
  /**
   * Node's `req.headers` (names in lower case), or any other object of header names and
   * values, a `Headers` or a `Map` (see `nodeHeaders` for how odd shapes are read).
   */
  headers: Record<string, string | string[] | undefined> | Headers | ReadonlyMap<string, string | string[]>;
  /**
   * Node's `req.rawHeaders` (name, value, …), where a header sent twice still shows: Node
   * keeps only the first `Authorization` (`Proxy-Authorization`, `From`, …) in `headers`. With it, two are refused as
   * `malformed_key`, as the gateway refuses them; without it, the first one is read.
   */
  rawHeaders?: readonly string[];
  /**
   * The address the request came from (Node's `req.socket.remoteAddress`): with
   * `auth.unknownKeys`, the unknown keys of each client address are counted (behind
   * `trustedProxies`, the client X-Forwarded-For names). Without it, none are counted.
   */
  remoteAddress?: string;
}

/**
 * `T` with every field, at every depth, read-only (arrays too): what `check` answers that
 * keygate shares with later requests. Functions stay as they are.
 */
export type ReadonlyDeep<T> = T extends (...args: never[]) => unknown ? T : T extends object ? { readonly [K in keyof T]: ReadonlyDeep<T[K]> } : T;

/** A refused request: send `error` as it is. */
export interface CheckRefused {
  allowed: false;
  /** Why, as logs and metrics name it (the client sees only `error`). */
  reason: DenialReason;
  /**
   * The request target as it may be logged: credential parameters and anything else
   * shaped like a key replaced by `[REDACTED]` (`req.url` still holds them).
   */
  url: string;
  /** The answer to send, in the API's dialect. */
  error: RenderedError;
  /**
   * A `missing_key` refusal whose request holds a key somewhere the profile does not read
   * keys from (`X-API-Key: <key>`, `Cookie: api_key=<key>`, `?api_key=<key>`): where, never
   * the key, for your log (the gateway logs it as `sentIn`). Absent otherwise.
   */
  misplaced?: MisplacedKey;
}

/** An admitted request: serve it, then `settle` with the status sent (what a Fastify or Express app keeps on its request). */
export interface CheckAdmitted {
  allowed: true;
  /**
   * The request target without credential query parameters, nor any other parameter whose
   * value is a key of the profile's format (`?api_key=<key>` where keys are read from a
   * header): what the API should route by and may log (`req.url` still holds them), and
   * what the gateway would forward.
   */
  url: string;
  /**
   * Who is calling: the record keygate caches for the key's next requests, not a copy, so
   * read-only (a scope pushed here would be what those requests are judged by). Copy what
   * you want to change.
   */
  identity: ReadonlyDeep<Identity>;
  /** The profile's own route (or built-in), the same object for every request: read-only. */
  route: ReadonlyDeep<RouteMatch>;
  /** RateLimit fields to add to the response (shared: copy before changing). */
  headers: Readonly<Record<string, string>>;
  /** For built-in endpoints: the body keygate answers with. */
  builtinBody?: string;
  /**
   * Commit the route's cost for a 2xx (per-record routes: pass the records returned, a
   * whole number from 0 to 999,999,999,999,999; anything else is charged what the request
   * reserved, but for a 204 or 205 without a count: it has no body, so no records; settle
   * sees no answer, so for any other sent without a body, an empty 200, pass 0);
   * release it otherwise. Call it in a `finally`: an unsettled reservation holds its
   * units for 10 minutes, until it lapses, and `close()` waits for it (up to
   * `shutdown.drainTimeout`). Settling twice is harmless: the first call counts, and a
   * second resolves to what the first did.
   */
  settle(status: number, records?: number): Promise<SettleOutcome>;
}

/**
 * What `settle` resolves to: the status it was given and whether the route's cost was
 * charged (a 2xx) or released. `POST /v1/check/{id}/settle` answers the same, with the
 * check's id.
 */
export interface SettleOutcome {
  status: number;
  /**
   * true: a 2xx, the cost charged; false: released. A settle after `close()` stopped
   * waiting for it (`shutdown.drainTimeout`) records nothing: true only for a flat cost,
   * charged at admission and written out by `close()`, whatever the status.
   */
  charged: boolean;
}

/** What `check` answers: `allowed` tells which. */
export type CheckResult = CheckRefused | CheckAdmitted;

export interface Keygate {
  readonly runtime: Runtime;
  /**
   * Judges one request (the target, then steps 1–7): `allowed: false` with the error to
   * send as it is, or `allowed: true` with who is calling, to serve and then `settle`.
   * Never rejects: a backend that fails on the way answers `service_unavailable` (503).
   */
  check(request: CheckRequest): Promise<CheckResult>;
  /** Puts a changed profile into effect without a restart (`Runtime.reload`): answers the fields that changed. */
  reload(loaded: LoadedConfig): Promise<string[]>;
  /**
   * Stops: from the call on, `check` refuses every request (`service_unavailable`, 503 with
   * `Retry-After: 1`, as the gateway answers while it stops); requests already admitted are
   * waited for until they settle (up to the profile's `shutdown.drainTimeout`), then usage
   * and balances are written to the store and it is closed; last, keygate's own log on
   * standard output (none if a `log` was given) is written out, its reader waited for as
   * long as it takes lines (5 s for one that takes none), and ended: nothing of keygate's
   * holds the process after. Call it once your server has stopped taking requests; a
   * second call answers the same promise.
   */
  close(): Promise<void>;
}

/** No Content and Reset Content: answers without a body (RFC 9110 §15.3.5, §15.3.6), so without records. */
const NO_CONTENT = 204;
const RESET_CONTENT = 205;

/** Said when `createKeygate` or `reload` is given something else than a loaded profile (plain JavaScript: TypeScript refuses it). */
const notALoadedProfile = (call: 'createKeygate' | 'reload') =>
  `${call} takes a loaded profile, { config, file, dir }, as loadConfigFile('keygate.yaml') answers it; for a profile written in code: ${call}({ config: parseConfigObject({ plans: …, routes: … }), file: 'inline', dir: process.cwd() })`;

/**
 * Whether `loaded` holds a profile as the schema answers it (defaults filled in): a bare
 * profile, or one not validated, would fail deep inside with "Cannot read properties of
 * undefined".
 */
function isLoadedProfile(loaded: unknown): loaded is LoadedConfig {
  const config = (loaded as { config?: unknown } | null | undefined)?.config;
  return typeof config === 'object' && config !== null && 'upstream' in config && 'log' in config && 'shutdown' in config;
}

/**
 * Opens the profile's store and counters and answers the gate your server asks about each
 * request (docs/library.md). Rejects with a `DatabaseInUseError` while another keygate
 * holds the SQLite file, or an `Error` naming the store when it cannot be opened.
 *
 * @example
 * const gate = await createKeygate(loadConfigFile('keygate.yaml'));
 * const server = http.createServer(async (req, res) => {
 *   const result = await gate.check({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders });
 *   if (!result.allowed) {
 *     res.writeHead(result.error.status, result.error.reasonPhrase, result.error.headers).end(result.error.body);
 *     return;
 *   }
 *   let status = 500;
 *   try {
 *     const body = JSON.stringify(await rowsFor(result.identity.account.id));   // the answer whole, before its status
 *     status = res.destroyed ? 499 : 200;
 *     res.writeHead(status, { 'content-type': 'application/json', ...result.headers }).end(body);
 *   } finally {
 *     await result.settle(status);   // charges a 2xx, gives the cost back otherwise
 *   }
 * }).listen(3000);
 * // keygate handles no signals: on Ctrl-C, stop taking requests, then write usage out.
 * process.once('SIGINT', () => { server.close(); void gate.close(); });
 */
export async function createKeygate(loaded: LoadedConfig, options: RuntimeOptions = {}): Promise<Keygate> {
  if (!isLoadedProfile(loaded)) throw new TypeError(notALoadedProfile('createKeygate'));
  const rt = await createRuntime(loaded, options);
  // Not waited for: it reads every key in use (see Runtime.warnOfKeysOutsideFormat).
  void rt.warnOfKeysOutsideFormat();
  /** Requests being checked, or admitted and not yet settled: what `close` waits for. */
  let open = 0;
  let allSettled: (() => void) | undefined;
  let closing: Promise<void> | undefined;
  const drain: Drain = { gaveUp: false };
  const checkRequest = requestChecker(rt, { drain });
  const done = () => {
    open -= 1;
    if (open === 0) allSettled?.();
  };

  /** Waits for the admitted requests to settle (up to `shutdown.drainTimeout`), then writes usage out and closes. */
  async function drainThenClose(): Promise<void> {
    if (open > 0) {
      const ms = rt.config.shutdown.drainTimeout;
      rt.log.info({ unsettled: open, drainTimeoutMs: ms }, `waiting for ${open} admitted request(s) to settle before usage is written out (up to shutdown.drainTimeout)`);
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        new Promise<'settled'>((resolve) => (allSettled = () => resolve('settled'))),
        // Not unref'd: a process whose server has closed stays up until usage is written.
        new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms))),
      ]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        // Before usage is written out: a settle from now on would be lost in it, or half in it.
        drain.gaveUp = true;
        rt.log.warn({ unsettled: open, drainTimeoutMs: ms }, 'admitted requests still unsettled at shutdown.drainTimeout: closing without them (a flat cost stays charged, a per-record reservation is dropped)');
      }
    }
    await rt.close();
  }

  return {
    runtime: rt,
    async check(request) {
      // Once closing, nothing more is admitted: what it would charge could not be written out.
      if (closing) {
        return refusalOf(rt, 'service_unavailable', targetOf(request), deny('service_unavailable', { retryAfterSeconds: DRAINING_RETRY_AFTER_S }));
      }
      open += 1;
      return checkRequest(request, done);
    },
    // A bare profile would be refused as a change of every field, named "".
    reload: (loaded) => (isLoadedProfile(loaded) ? rt.reload(loaded) : Promise.reject(new TypeError(notALoadedProfile('reload')))),
    close() {
      closing ??= drainThenClose();
      return closing;
    },
  };
}

/** A refusal as `check` answers it: the target redacted, the error in the profile's dialect. */
function refusalOf(rt: Runtime, reason: DenialReason, url: string, denial = deny(reason)): CheckRefused {
  return { allowed: false, reason, url: redactedTarget(rt, url), error: rt.dialect.render(denial) };
}

/** How far `close()` got: set once it stopped waiting for settles and writes usage out without them. */
export interface Drain {
  gaveUp: boolean;
}

export interface CheckerOptions {
  /** Who checks, as the log names it when a check fails or is given no request ("library check"). */
  caller?: string;
  /** Told the units each settle charges (the admin API counts them in its metrics). */
  onCharged?: OnCharged;
  /** The library's stop: a settle after it gave up records nothing, and says so. */
  drain?: Drain;
}

/**
 * Steps 1–7 for one request, the gateway's checks of its target first, as the library's
 * `check` and the admin API's `POST /v1/check` both run them: one function, so a backend
 * asking over HTTP gets exactly what an in-process caller gets. `finished` runs once the
 * request is done with: at once for a refusal, on its first settle for an admitted one.
 */
export function requestChecker(rt: Runtime, options: CheckerOptions = {}): (request: unknown, finished: () => void) => Promise<CheckResult> {
  const basePath = normalBasePath(rt.config.basePath);
  const caller = options.caller ?? 'library check';
  const { onCharged, drain } = options;

  async function judge(request: ReadRequest, finished: () => void): Promise<CheckResult> {
    // What the gateway refuses before judging the target, in its order: a request line
    // Node's parser does not read (a method it does not know, or in lower case; a space
    // or a character outside ASCII in the target), then a Host that names no host, or two.
    const unread = !isRequestLineMethod(request.method) || NOT_IN_REQUEST_LINE.test(request.url);
    if (unread || isRefusedHost(request.headers.host, request.rawHeaders)) return refusalOf(rt, 'bad_request', request.url);
    // A QUERY (RFC 10008) must say what its body is: the gateway's server refuses one
    // without a Content-Type before any key is read, and so does the check, from the
    // headers it is given (none given: none sent).
    if (request.method === QUERY_METHOD && request.headers['content-type'] === undefined) return refusalOf(rt, 'bad_request', request.url);
    // Then the gateway's checks of the target: a path the API's router could read as
    // another one (`..`, `\\`, `%2e`, `//`) would be judged by one route's scopes and
    // served by another's.
    const target = judgeTarget(request.url, basePath, rt.config.upstream.caseSensitivePaths);
    if (!target.ok) return refusalOf(rt, target.reason, request.url);
    const { url, path } = target;
    const { method } = request;
    const decision = await rt.pipeline.authorize({ method, path, url, headers: request.headers, ...(request.rawHeaders ? { rawHeaders: request.rawHeaders } : {}), ...(request.remoteAddress === undefined ? {} : { peer: request.remoteAddress }) });
    if (!decision.allowed) {
      // Counted as the gateway counts it: against the key's account, or a revoked or expired key's owner.
      const account = decision.identity?.account.id ?? refusedKeyOwner(decision);
      if (account !== undefined) rt.usage.add(account, rt.clock(), 'denials', decision.denial.reason);
      const refused = refusalOf(rt, decision.denial.reason, url, decision.denial);
      if (decision.denial.reason !== 'missing_key') return refused;
      // Where the key went instead, as the gateway's log says it (a missing_key refusal only: an admitted request is not looked at).
      const misplaced = misplacedKey({ url: request.url, rawHeaders: request.rawHeaders ?? rawHeadersOf(request.headers) }, rt.keyFormat);
      return misplaced === undefined ? refused : { ...refused, misplaced };
    }
    const { identity, route, reservation } = decision;
    rt.usage.touch(identity.key.id, identity.account.id, decision.at);
    let settled: Promise<SettleOutcome> | undefined;
    const settleOnce = async (status: number, records?: number): Promise<SettleOutcome> => {
      try {
        if (drain?.gaveUp) return lateSettle(route, reservation, status);
        rt.usage.add(identity.account.id, rt.clock(), 'requests', statusClass(status));
        const proxied = route.kind === 'proxy' ? route.route : undefined;
        // A 204 or 205 has no body, so no records: without a count, or with one that is none, it is charged none, as the gateway charges one without a count header that it can read.
        const counted = status === NO_CONTENT || status === RESET_CONTENT ? bodilessRecords(records, status, proxied?.path) : countedRecords(records, proxied?.path);
        await settleCharge(rt, identity.account.id, method, proxied, reservation, status, counted, onCharged);
        return { status, charged: status >= 200 && status < 300 };
      } finally {
        finished();
      }
    };
    const settle = (status: number, records?: number) => (settled ??= settleOnce(status, records));
    const builtinBody = route.kind === 'builtin' ? await renderBuiltin(rt, route.builtin, identity) : undefined;
    return { allowed: true, url: forwardedTarget(url, request, rt.config.auth.credentials, rt.keyFormat), identity, route, headers: decision.headers, settle, ...(builtinBody !== undefined ? { builtinBody } : {}) };
  }

  /**
   * A settle after `close()` stopped waiting: usage is written out (or being written)
   * without it, so it changes nothing, and says what stays: a flat cost committed at
   * admission (`final`) is charged whatever the status; a reservation was dropped.
   */
  function lateSettle(route: RouteMatch, reservation: Reservation | undefined, status: number): SettleOutcome {
    const charged = reservation?.final === true;
    rt.log.warn(
      { route: route.name, status, charged },
      charged
        ? 'settle came after close() stopped waiting for it (shutdown.drainTimeout): nothing recorded; its flat cost, charged at admission, stays charged'
        : 'settle came after close() stopped waiting for it (shutdown.drainTimeout): nothing recorded, nothing charged',
    );
    return { status, charged };
  }

  /**
   * The records `settle` was given, as the gateway reads a count header: a whole number
   * from 0 to MAX_REPORTED (15 digits), or undefined (charged what the request reserved).
   * The gateway charges no records for an unreadable count on an answer without a body;
   * settle cannot see whether the 2xx it is given had one, so its caller passes 0 for it.
   * NaN, a fraction or a negative number would be charged as such, and a NaN in the daily
   * usage stops every later write of usage, for every account, until the process ends; a
   * count past 15 digits, which the gateway would not take from an upstream, would charge
   * (with overage) more units than a double holds exactly.
   */
  function countedRecords(records: number | undefined, path: string | undefined): number | undefined {
    if (records === undefined || isReportedCount(records)) return records;
    rt.log.warn({ route: path, records: String(records) }, `settle was given a number of records that is not a whole number from 0 to ${MAX_REPORTED}; charged the reserved estimate (${notACount(records)})`);
    return undefined;
  }

  /**
   * What is wrong with a number of records that is none, for countedRecords' warning: a NaN
   * (a `Number()` that failed, of a count the caller could not read: "pass 0" for an answer
   * without a body), a negative, a count past 15 digits, or a fraction.
   */
  function notACount(records: number): string {
    if (typeof records !== 'number' || Number.isNaN(records)) return 'settle cannot see the answer: one sent without a body has no records, pass 0';
    if (records < 0) return 'a count of records is never negative';
    if (records > MAX_REPORTED) return `a count of records is at most ${MAX_REPORTED}, as a count header's 15 digits`;
    return 'records are counted whole: pass a whole number';
  }

  /** The records of an answer without a body: those given, if a count, else none (a count that is none said in the log, as above). */
  function bodilessRecords(records: number | undefined, status: number, path: string | undefined): number {
    if (records === undefined || isReportedCount(records)) return records ?? 0;
    rt.log.warn({ route: path, records: String(records) }, `settle was given a number of records that is not a whole number from 0 to ${MAX_REPORTED}; a ${status} has no body: charged no records`);
    return 0;
  }

  return async (request, finished) => {
    const target = targetOf(request);
    const read = readRequest(request);
    if (read === undefined) {
      finished();
      // No method or target to judge (plain JavaScript): as the gateway answers a request line it cannot read.
      rt.log.warn({ target: redactedTarget(rt, target) }, `${caller} was given a request without a method and url as strings: answered bad_request`);
      return refusalOf(rt, 'bad_request', target);
    }
    let result: CheckResult | undefined;
    try {
      result = await judge(read, finished);
    } catch (error) {
      // A backend that failed on the way (the store under a built-in, say): the client
      // gets the gateway's 503 in the dialect, never a rejection the API's handler would
      // have to catch (node:http would end the process on it).
      rt.log.error({ err: error, target: redactedTarget(rt, target) }, `${caller} failed`);
      result = refusalOf(rt, 'service_unavailable', target, deny('service_unavailable', { retryAfterSeconds: OUTAGE_RETRY_AFTER_S }));
    } finally {
      // Only an admitted request is waited for; whatever else happened, this one is done.
      if (!result?.allowed) finished();
    }
    return result;
  };
}

/** The one method that must name its body's type (RFC 10008 §2). */
const QUERY_METHOD = 'QUERY';

/** A request as the pipeline reads it: Node's shapes only. */
interface ReadRequest {
  method: string;
  url: string;
  headers: Record<string, HeaderValue>;
  rawHeaders?: readonly string[];
  remoteAddress?: string;
}

type HeaderValue = string | string[] | undefined;

/**
 * `check`'s request as the gateway would have read the same bytes, from whatever a
 * plain-JavaScript caller passed; undefined without a method and url (strings; one that
 * throws as it is read, a getter or a Proxy, is none). Never throws: a check
 * that rejected would leave `close()` waiting for it until `shutdown.drainTimeout`.
 */
function readRequest(request: unknown): ReadRequest | undefined {
  if (typeof request !== 'object' || request === null) return undefined;
  // Field by field: one that throws (rawHeaders, remoteAddress) is absent, not the whole request.
  const read = (name: keyof CheckRequest): unknown => readable(() => (request as Partial<Record<keyof CheckRequest, unknown>>)[name]);
  const method = read('method');
  const url = read('url');
  if (typeof method !== 'string' || typeof url !== 'string') return undefined;
  const rawHeaders = read('rawHeaders');
  const remoteAddress = read('remoteAddress');
  const raw = readable(() => (Array.isArray(rawHeaders) && rawHeaders.every((item) => typeof item === 'string') ? (rawHeaders as string[]) : undefined));
  const headers = nodeHeaders(read('headers'));
  return { method, url, headers, ...(raw ? { rawHeaders: raw } : {}), ...(typeof remoteAddress === 'string' && remoteAddress !== '' ? { remoteAddress } : {}) };
}

/** What `get` reads; undefined where it throws (a getter or a Proxy of the caller's). */
function readable<T>(get: () => T): T | undefined {
  try {
    return get();
  } catch {
    return undefined;
  }
}

/** The target a plain-JavaScript caller passed, for the log: '' for none, or one that cannot be read. */
function targetOf(request: unknown): string {
  try {
    const url = (request as Partial<CheckRequest> | null | undefined)?.url;
    return typeof url === 'string' ? url : '';
  } catch {
    return '';
  }
}

/**
 * Headers in Node's `rawHeaders` shape (name, value, …) from its `headers` object (a
 * header sent more than once: each value), the first MOST_PLACES only (all misplacedKey
 * reads): for a check that has no `rawHeaders` (given `req.headers`, `POST /v1/check`),
 * to find where a refused request's key went.
 */
export function rawHeadersOf(headers: Readonly<Record<string, string | readonly string[] | undefined>>): string[] {
  const lines: string[] = [];
  for (const name in headers) {
    const value = headers[name];
    for (const each of typeof value === 'string' ? [value] : (value ?? [])) {
      if (lines.length >= MOST_PLACES * 2) return lines;
      lines.push(name, each);
    }
  }
  return lines;
}

/**
 * Stands for a header value that no header on the wire could be (an object, a symbol, a
 * function): an array, which the credential's header is refused as (a header sent more
 * than once, `malformed_key`), as the gateway refuses a value it cannot read.
 */
const UNREADABLE: string[] = [];
/** An upper-case ASCII letter: a name Node would have lower-cased. */
const UPPER_CASE = /[A-Z]/;

/**
 * Headers in Node's shape (`req.headers`: names in lower case, a value a string, or an
 * array for a header sent more than once), from what a caller may pass: Node's own object
 * as it is (no copy); any other plain object, a `Headers` or a `Map`, read the way the
 * same header lines on the wire are. A name in any case is that header (two names that
 * differ only in case are the header sent twice); a number or boolean is its text; an
 * array is the header sent as many times (even once: a list where one value goes); null
 * and undefined are no header; a headers object that is missing or no object, no headers
 * at all. So a key sent oddly is `malformed_key` or `missing_key` (401 by default), as
 * `serve()` answers it, never a failure.
 */
function nodeHeaders(headers: unknown): Record<string, HeaderValue> {
  if (typeof headers !== 'object' || headers === null) return {};
  let plain: boolean;
  try {
    const proto = Object.getPrototypeOf(headers) as unknown;
    plain = proto === Object.prototype || proto === null;
    if (plain && nodeShaped(headers as Record<string, unknown>)) return headers as Record<string, HeaderValue>;
  } catch {
    // A getter or a Proxy that throws: read below as far as it can be.
    plain = false;
  }
  const out: Record<string, HeaderValue> = Object.create(null) as Record<string, HeaderValue>;
  const add = (name: unknown, value: unknown) => {
    if (typeof name !== 'string') return;
    const text = headerText(value);
    if (text === undefined) return;
    const key = name.toLowerCase();
    const before = out[key];
    if (before === undefined) out[key] = text;
    else out[key] = before === UNREADABLE || text === UNREADABLE ? UNREADABLE : [...[before].flat(), ...[text].flat()];
  };
  try {
    const entries = (headers as { entries?: unknown }).entries;
    if (!plain && typeof entries === 'function') for (const [name, value] of entries.call(headers) as Iterable<[unknown, unknown]>) add(name, value);
    else for (const name of Object.keys(headers)) add(name, (headers as Record<string, unknown>)[name]);
  } catch {
    // An object whose entries cannot be read (a getter that throws): what was read so far.
  }
  return out;
}

/** Whether a plain object is in Node's shape already (the usual case: `req.headers`). */
function nodeShaped(headers: Record<string, unknown>): boolean {
  for (const name in headers) {
    if (UPPER_CASE.test(name)) return false;
    const value = headers[name];
    if (typeof value === 'string' || value === undefined) continue;
    if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) return false;
  }
  return true;
}

/** A header value as Node would give it; undefined for none. */
function headerText(value: unknown): HeaderValue {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  // A list stays a list (Node's shape for a header sent more than once), even of one.
  if (Array.isArray(value)) {
    const items: string[] = [];
    for (const item of value as unknown[]) {
      const text = Array.isArray(item) ? UNREADABLE : headerText(item);
      if (text === UNREADABLE) return UNREADABLE;
      if (typeof text === 'string') items.push(text);
    }
    return items.length === 0 ? undefined : items;
  }
  return UNREADABLE;
}
