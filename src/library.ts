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
 *     res.writeHead(result.error.status, result.error.headers).end(result.error.body);
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

export interface CheckRequest {
  method: string;
  /** Path and query string, as received. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

export type CheckResult =
  | { allowed: false; error: RenderedError }
  | {
      allowed: true;
      identity: Identity;
      route: RouteMatch;
      /** RateLimit fields to add to the response. */
      headers: Record<string, string>;
      /** For built-in endpoints: the body keygate answers with. */
      builtinBody?: string;
      /**
       * Commit the route's cost for a 2xx (per-record routes: pass the records returned);
       * release it otherwise. Call it in a `finally`: an unsettled reservation holds its
       * units until the process restarts.
       */
      settle(status: number, records?: number): Promise<void>;
    };

export interface Keygate {
  readonly runtime: Runtime;
  check(request: CheckRequest): Promise<CheckResult>;
  close(): Promise<void>;
}

export async function createKeygate(loaded: LoadedConfig, options: RuntimeOptions = {}): Promise<Keygate> {
  const rt = await createRuntime(loaded, options);
  return {
    runtime: rt,
    async check(request) {
      const query = request.url.indexOf('?');
      const path = query === -1 ? request.url : request.url.slice(0, query);
      const method = request.method.toUpperCase();
      const decision = await rt.pipeline.authorize({ method, path, url: request.url, headers: request.headers });
      if (!decision.allowed) {
        if (decision.identity) rt.usage.add(decision.identity.account.id, rt.clock(), 'denials', decision.denial.reason);
        return { allowed: false, error: rt.dialect.render(decision.denial) };
      }
      const { identity, route, reservation } = decision;
      rt.usage.touch(identity.key.id, rt.clock());
      let settled = false;
      const settle = async (status: number, records?: number) => {
        if (settled) return;
        settled = true;
        rt.usage.add(identity.account.id, rt.clock(), 'requests', statusClass(status));
        await settleCharge(rt, identity.account.id, method, route.kind === 'proxy' ? route.route : undefined, reservation, status, records);
      };
      const builtinBody = route.kind === 'builtin' ? await renderBuiltin(rt, route.builtin, identity) : undefined;
      return { allowed: true, identity, route, headers: decision.headers, settle, ...(builtinBody !== undefined ? { builtinBody } : {}) };
    },
    close: () => rt.close(),
  };
}
