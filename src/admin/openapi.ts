/**
 * The admin API's OpenAPI document as a client generator reads it: the routes' own
 * schemas (from their zod definitions) give each operation its success and its
 * operation-specific refusals; this adds what every operation can answer besides (401
 * without the token, 403 for a change with the read-only token, 400 for a query it does
 * not take, 404 for a record's id, 414 and 431 for a URL or headers too long, 408 for a request too slow to arrive, 413 and 415 for a body, 503 while locked, while a backend is away or
 * while the store refuses writes), gives
 * every error the problem-details media type it is sent with, and drops the body a 204
 * never has.
 */
import { STATUS_CODES } from 'node:http';

/** The parts of an OpenAPI 3.1 document this touches. */
interface Operation {
  operationId?: string;
  requestBody?: { required?: boolean; content?: Record<string, unknown> };
  parameters?: { in: string }[];
  responses?: Record<string, ResponseObject>;
}
interface ResponseObject {
  description?: string;
  content?: Record<string, { schema?: unknown }>;
  headers?: Record<string, unknown>;
}
export interface OpenApiDocument {
  paths?: Record<string, Record<string, Operation>>;
  tags?: { name: string; description?: string }[];
  [field: string]: unknown;
}

export const PROBLEM_MEDIA_TYPE = 'application/problem+json';
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head'];
/** Refusals any operation may meet, and when. */
const COMMON: { status: number; when: string; headers?: Record<string, unknown>; applies: (op: { method: string; path: string; operation: Operation }) => boolean }[] = [
  { status: 400, when: 'A query parameter it does not take, or a value it refuses', applies: () => true },
  {
    status: 401,
    when: 'No admin token ("Missing admin token: …"), or a wrong one ("The admin token is not valid: …"), or not sent as one "Authorization: Bearer <token>" (WWW-Authenticate: Bearer)',
    headers: { 'WWW-Authenticate': { description: 'Bearer realm="keygate-admin"', schema: { type: 'string' } } },
    applies: () => true,
  },
  { status: 403, when: 'The read-only token, for a change', applies: ({ method, path }) => method !== 'get' && method !== 'head' && path !== '/v1/forecast' },
  { status: 404, when: 'No such record', applies: ({ operation }) => (operation.parameters ?? []).some((p) => p.in === 'path') },
  // Node's parser refuses a request line over the listener's head limit before any route: any operation may meet it.
  { status: 414, when: "A URL over the listener's head limit (admin.listen.maxHeaderSize, 16 KB by default), or a path parameter over 2,048 characters", applies: () => true },
  { status: 431, when: "Request headers over the listener's head limit (admin.listen.maxHeaderSize, 16 KB by default)", applies: () => true },
  { status: 408, when: 'A request not all sent within admin.listen.requestTimeout (30 s by default): its connection is closed', applies: () => true },
  { status: 413, when: 'A body over 1 MB', applies: ({ method }) => method !== 'get' && method !== 'head' },
  { status: 415, when: 'A body that is not JSON in UTF-8, or is sent with a Content-Encoding (also where none is read)', applies: ({ method }) => method !== 'get' && method !== 'head' },
  {
    status: 503,
    when: 'The admin API is locked (no usable token configured), or the store (or, for what needs them, the counters) is not reachable, or (Redis counters) Redis answers what is needed with an error ("counters backend answered with an error: …": NOPERM from its ACL, READONLY), or (SQLite) another process held its write lock past the wait, or (SQLite) the store refused to write for want of room or permission ("the database could not be written: disk full", "…: the database file is read-only"): the change was not saved, or only in part',
    headers: {
      'Retry-After': {
        description:
          'Seconds to wait before trying again, while a backend is away: on reads, on changes refused before anything was made (the counters away, or answering with an error), and on changes the store refused to write (disk full, read-only: /health/ready answers 200 again once it takes writes; check before sending the change again, it may have been saved in part). Not on a change an unreachable or busy store may or may not have made: check before sending it again. Not while the admin API is locked',
        schema: { type: 'integer', minimum: 1 },
      },
    },
    applies: () => true,
  },
];
/** Operations that list a page at a time. */
const LINK_HEADER = {
  description: 'The next page: `<…?after=…&limit=…>; rel="next"` (absent on the last page)',
  schema: { type: 'string' },
};

const WARNING_HEADER = {
  description: 'Present when the change could not be sent to the other keygate processes on Redis (unreachable): it holds in this process and the store, and the others learn of it from the store within about a second (or, where the store could not be marked either, keep a cached key for up to keyCacheTtl)',
  schema: { type: 'string' },
};

/** Operations whose answer is a dashboard link. */
const DASHBOARD_LINKS = new Set(['/v1/members/invitations', '/v1/members/password-resets']);
const DASHBOARD_OFF_HEADER = {
  description: 'Present when the profile turns the dashboard off (dashboard.enabled: false): the link opens nothing until keygate serves the dashboard',
  schema: { type: 'string' },
};

/** Operations that set an account's plan expiry (`method path`): their answer warns of one already past. */
const PLAN_EXPIRY_SETTERS = new Set(['post /v1/accounts', 'patch /v1/accounts/{id}']);
const PAST_PLAN_EXPIRY_HEADER = {
  description: "Present when planExpiresAt was set to a time already past: saved, and the plan is already expired for the account (its keys' requests are refused as plan_expired)",
  schema: { type: 'string' },
};

/** Operations that make a key (`method path`): their answer warns when the account's keys are refused for now. */
const KEY_MAKERS = new Set(['post /v1/keys', 'post /v1/keys/import', 'post /v1/keys/{id}/rotate']);
const REFUSED_KEY_HEADER = {
  description:
    "Present when the account's keys are refused for now (its API access off, its plan's off or the plan expired): the key is made all the same, and this says why its requests will be refused (api_disabled, plan_expired) and what to change, in the CLI's words",
  schema: { type: 'string' },
};

/** Operations that change an account: their answer warns when the change stops keys that worked until then. */
const ACCOUNT_CHANGERS = new Set(['patch /v1/accounts/{id}']);
const KEYS_TURNED_OFF_HEADER = {
  description:
    "Present when the change stops keys that worked until then (a plan without API access, the account's API access turned off): their next request is refused (api_disabled), and this says so and what undoes it, in the CLI's words",
  schema: { type: 'string' },
};

/** `response` declaring `header` as its Keygate-Warning; beside one it declares already, each a line of its own. */
function withWarning(response: { headers?: Record<string, unknown> }, header: { description: string; schema: object }): void {
  const had = response.headers?.['Keygate-Warning'] as { description: string } | undefined;
  const declared = had === undefined ? header : { ...header, description: `One line for each that applies. ${had.description}. ${header.description}` };
  response.headers = { ...response.headers, 'Keygate-Warning': declared };
}

/**
 * Whether a route (`/v1/keys/:id/revoke`, or as OpenAPI writes it, `/v1/keys/{id}/revoke`)
 * makes changes the other processes learn of as cache invalidations (over Redis).
 */
export function toldToOthers(path: string): boolean {
  return /^\/v1\/(accounts\/(:id|\{id\})|keys\/import|keys\/(:id|\{id\})(\/revoke|\/rotate)?)$/.test(path);
}

/**
 * `doc` completed in place (and returned), as described above; `problemSchema`: the JSON
 * Schema of the problem details every refusal carries.
 */
export function completeDocument(doc: OpenApiDocument, tags: Record<string, string>, problemSchema: object): OpenApiDocument {
  doc.tags = Object.entries(tags).map(([name, description]) => ({ name, description }));
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const responses = (operation.responses ??= {});
      for (const common of COMMON) {
        const key = String(common.status);
        if (responses[key] === undefined && common.applies({ method, path, operation })) responses[key] = { description: common.when };
        const response = responses[key];
        if (response !== undefined && common.headers) response.headers = { ...response.headers, ...common.headers };
      }
      for (const [key, response] of Object.entries(responses)) {
        const status = Number(key);
        if (status === 204) delete response.content;
        else if (status >= 400) response.content = { [PROBLEM_MEDIA_TYPE]: { schema: problemSchema } };
        if (response.description === undefined || response.description === 'Default Response') response.description = STATUS_CODES[status] ?? key;
      }
      // A body that may be null may be left out (rotate's: the default overlap).
      const body = operation.requestBody?.content?.['application/json'] as { schema?: { anyOf?: { type?: unknown }[] } } | undefined;
      if (operation.requestBody && body?.schema?.anyOf?.some((member) => member.type === 'null')) operation.requestBody.required = false;
      const query = (operation.parameters ?? []) as { in: string; name?: string }[];
      if (query.some((p) => p.in === 'query' && p.name === 'limit') && responses['200']) responses['200'].headers = { Link: LINK_HEADER };
      if (method !== 'get' && toldToOthers(path)) {
        for (const [key, response] of Object.entries(responses)) if (Number(key) < 300) response.headers = { ...response.headers, 'Keygate-Warning': WARNING_HEADER };
      }
      if (method === 'post' && DASHBOARD_LINKS.has(path) && responses['201']) responses['201'].headers = { ...responses['201'].headers, 'Keygate-Warning': DASHBOARD_OFF_HEADER };
      if (PLAN_EXPIRY_SETTERS.has(`${method} ${path}`)) for (const [key, response] of Object.entries(responses)) if (Number(key) < 300) withWarning(response, PAST_PLAN_EXPIRY_HEADER);
      if (KEY_MAKERS.has(`${method} ${path}`)) for (const [key, response] of Object.entries(responses)) if (Number(key) < 300) withWarning(response, REFUSED_KEY_HEADER);
      if (ACCOUNT_CHANGERS.has(`${method} ${path}`)) for (const [key, response] of Object.entries(responses)) if (Number(key) < 300) withWarning(response, KEYS_TURNED_OFF_HEADER);
    }
  }
  return doc;
}
