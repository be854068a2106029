/**
 * keygate as a library: the same pipeline in process, for an API that does not want a
 * proxy hop. `check` runs steps 1–7 and answers either an identity to serve or the
 * finished error in the API's dialect; `settle` is step 9 once the API has answered.
 *
 * @example
 * const gate = await createKeygate(loadConfigFile('keygate.yaml'));
 * http.createServer(async (req, res) => {
 *   const result = await gate.check({ method: req.method!, url: req.url!, headers: req.headers });
 *   if (!result.allowed) {
 *     res.writeHead(result.error.status, result.error.reasonPhrase, result.error.headers).end(result.error.body);
 *     return;
 *   }
 *   res.setHeader('x-account', result.identity.account.id);
 *   // ... serve the request for result.identity.account ...
 *   res.end('{}');
 *   await result.settle(res.statusCode);
 * });
 */
import type { LoadedConfig } from './config/load.js';
import { createRuntime, type Runtime, type RuntimeOptions } from './runtime.js';
import type { RenderedError } from './dialect/dialect.js';
import type { Identity } from './pipeline/identity.js';
import type { RouteMatch } from './routes/route-table.js';
import { settleCharge } from './pipeline/settle.js';
import { renderBuiltin } from './gateway/builtins.js';
import { statusClass } from './usage/usage-recorder.js';
import { judgeTarget, normalBasePath } from './gateway/request-path.js';
import { deny, type DenialReason } from './denial/reasons.js';
import { refusedKeyOwner } from './pipeline/pipeline.js';
import { redactedTarget } from './gateway/redacted-target.js';
import { withoutCredentialParams } from './auth/credential.js';
import { DRAINING_RETRY_AFTER_S, OUTAGE_RETRY_AFTER_S } from './operations/health.js';

export interface CheckRequest {
  method: string;
  /** Path and query string, as received. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  /**
   * Node's `req.rawHeaders` (name, value, …), where a header sent twice still shows: Node
   * keeps only the first `Authorization` in `headers`. With it, two are refused as
   * `malformed_key`, as the gateway refuses them; without it, the first one is read.
   */
  rawHeaders?: readonly string[];
}

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
}

/** An admitted request: serve it, then `settle` with the status sent (what a Fastify or Express app keeps on its request). */
export interface CheckAdmitted {
  allowed: true;
  /**
   * The request target without credential query parameters: what the API should route
   * by and may log (`req.url` still holds a key sent as `?apikey=`).
   */
  url: string;
  identity: Identity;
  route: RouteMatch;
  /** RateLimit fields to add to the response (shared: copy before changing). */
  headers: Readonly<Record<string, string>>;
  /** For built-in endpoints: the body keygate answers with. */
  builtinBody?: string;
  /**
   * Commit the route's cost for a 2xx (per-record routes: pass the records returned, a
   * whole number of 0 or more; anything else is charged what the request reserved);
   * release it otherwise. Call it in a `finally`: an unsettled reservation holds its
   * units for 10 minutes, until it lapses, and `close()` waits for it (up to
   * `shutdown.drainTimeout`). Settling twice is harmless: the first call counts.
   */
  settle(status: number, records?: number): Promise<void>;
}

/** What `check` answers: `allowed` tells which. */
export type CheckResult = CheckRefused | CheckAdmitted;

export interface Keygate {
  readonly runtime: Runtime;
  check(request: CheckRequest): Promise<CheckResult>;
  /** Puts a changed profile into effect without a restart (`Runtime.reload`): answers the fields that changed. */
  reload(loaded: LoadedConfig): Promise<string[]>;
  /**
   * Stops: from the call on, `check` refuses every request (`service_unavailable`, 503 with
   * `Retry-After: 1`, as the gateway answers while it stops); requests already admitted are
   * waited for until they settle (up to the profile's `shutdown.drainTimeout`), then usage
   * and balances are written to the store and it is closed. Call it once your server has
   * stopped taking requests; a second call answers the same promise.
   */
  close(): Promise<void>;
}

/** Said when `createKeygate` or `reload` is given something else than a loaded profile (plain JavaScript: TypeScript refuses it). */
const notALoadedProfile = (call: 'createKeygate' | 'reload') =>
  `${call} takes a loaded profile, { config, file, dir }, as loadConfigFile('keygate.yaml') answers it; for a profile written in code: ${call}({ config: parseConfigObject({ upstream: { url: '…' }, … }), file: 'inline', dir: process.cwd() })`;

/**
 * Whether `loaded` holds a profile as the schema answers it (defaults filled in): a bare
 * profile, or one not validated, would fail deep inside with "Cannot read properties of
 * undefined".
 */
function isLoadedProfile(loaded: unknown): loaded is LoadedConfig {
  const config = (loaded as { config?: unknown } | null | undefined)?.config;
  return typeof config === 'object' && config !== null && 'upstream' in config && 'log' in config && 'shutdown' in config;
}

export async function createKeygate(loaded: LoadedConfig, options: RuntimeOptions = {}): Promise<Keygate> {
  if (!isLoadedProfile(loaded)) throw new TypeError(notALoadedProfile('createKeygate'));
  const rt = await createRuntime(loaded, options);
  const basePath = normalBasePath(rt.config.basePath);
  /** Requests being checked, or admitted and not yet settled: what `close` waits for. */
  let open = 0;
  let allSettled: (() => void) | undefined;
  let closing: Promise<void> | undefined;
  const done = () => {
    open -= 1;
    if (open === 0) allSettled?.();
  };
  const refusal = (reason: DenialReason, url: string, denial = deny(reason)): CheckResult => ({ allowed: false, reason, url: redactedTarget(rt, url), error: rt.dialect.render(denial) });

  async function judge(request: CheckRequest): Promise<CheckResult> {
    // The gateway's checks of the target first: a path the API's router could read as
    // another one (`..`, `\\`, `%2e`, `//`) would be judged by one route's scopes and
    // served by another's.
    const target = judgeTarget(request.url, basePath, rt.config.upstream.caseSensitivePaths);
    if (!target.ok) return refusal(target.reason, request.url);
    const { url, path } = target;
    const method = request.method.toUpperCase();
    const decision = await rt.pipeline.authorize({ method, path, url, headers: request.headers, ...(request.rawHeaders ? { rawHeaders: request.rawHeaders } : {}) });
    if (!decision.allowed) {
      // Counted as the gateway counts it: against the key's account, or a revoked or expired key's owner.
      const account = decision.identity?.account.id ?? refusedKeyOwner(decision);
      if (account !== undefined) rt.usage.add(account, rt.clock(), 'denials', decision.denial.reason);
      return refusal(decision.denial.reason, url, decision.denial);
    }
    const { identity, route, reservation } = decision;
    rt.usage.touch(identity.key.id, decision.at);
    let settled = false;
    const settle = async (status: number, records?: number) => {
      if (settled) return;
      settled = true;
      try {
        rt.usage.add(identity.account.id, rt.clock(), 'requests', statusClass(status));
        const proxied = route.kind === 'proxy' ? route.route : undefined;
        await settleCharge(rt, identity.account.id, method, proxied, reservation, status, countedRecords(records, proxied?.path));
      } finally {
        done();
      }
    };
    const builtinBody = route.kind === 'builtin' ? await renderBuiltin(rt, route.builtin, identity) : undefined;
    return { allowed: true, url: withoutCredentialParams(url, rt.config.auth.credentials), identity, route, headers: decision.headers, settle, ...(builtinBody !== undefined ? { builtinBody } : {}) };
  }

  /**
   * The records `settle` was given, as the gateway reads a count header: a whole number
   * of 0 or more, or undefined (charged what the request reserved). NaN, a fraction or a
   * negative number would be charged as such, and a NaN in the daily usage stops every
   * later write of usage, for every account, until the process ends.
   */
  function countedRecords(records: number | undefined, path: string | undefined): number | undefined {
    if (records === undefined || (Number.isSafeInteger(records) && records >= 0)) return records;
    rt.log.warn({ route: path, records: String(records) }, 'settle was given a number of records that is not a whole number of 0 or more; charged the reserved estimate');
    return undefined;
  }

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
        rt.log.warn({ unsettled: open, drainTimeoutMs: ms }, 'admitted requests still unsettled at shutdown.drainTimeout: closing without them (a flat cost stays charged, a per-record reservation is dropped)');
      }
    }
    await rt.close();
  }

  return {
    runtime: rt,
    async check(request) {
      // A plain-JavaScript caller may pass no request, or one without a target.
      const target = typeof request?.url === 'string' ? request.url : '';
      // Once closing, nothing more is admitted: what it would charge could not be written out.
      if (closing) return refusal('service_unavailable', target, deny('service_unavailable', { retryAfterSeconds: DRAINING_RETRY_AFTER_S }));
      open += 1;
      let result: CheckResult | undefined;
      try {
        result = await judge(request);
      } catch (error) {
        // A backend that failed on the way (the store under a built-in, say), or a request
        // without a target (plain JavaScript): the client gets the gateway's 503 in the
        // dialect, never a rejection the API's handler would have to catch (node:http
        // would end the process on it).
        rt.log.error({ err: error, target: redactedTarget(rt, target) }, 'library check failed');
        result = refusal('service_unavailable', target, deny('service_unavailable', { retryAfterSeconds: OUTAGE_RETRY_AFTER_S }));
      } finally {
        // Only an admitted request is waited for by close(); whatever else happened, this one is done.
        if (!result?.allowed) done();
      }
      return result;
    },
    // A bare profile would be refused as a change of every field, named "".
    reload: (loaded) => (isLoadedProfile(loaded) ? rt.reload(loaded) : Promise.reject(new TypeError(notALoadedProfile('reload')))),
    close() {
      closing ??= drainThenClose();
      return closing;
    },
  };
}
