/**
 * A dialect turns a typed denial into the API's own error: status, code, message and
 * envelope (one of six fixed shapes, or the profile's own template). Bodies are rendered
 * once per reason at start-up; only headers vary per request (Retry-After, RateLimit
 * fields, WWW-Authenticate), and the messages that name the denial's own figures, and a
 * template's {{retryAfter}}.
 *
 * @example
 * const dialect = createDialect(config.errors, config.auth.credentials);
 * const { status, headers, body } = dialect.render(deny('missing_key'));
 */
import { STATUS_CODES } from 'node:http';
import { hasScheme, type CredentialLocation, type DialectConfig, type Envelope } from '../config/schema.js';
import { DENIAL_REASONS, MESSAGE_PLACEHOLDER, placeholderName, SCOPE_LIST_SEPARATOR, type Denial, type DenialReason } from '../denial/reasons.js';
import { mentionsRetryAfter, renderErrorTemplate } from './error-template.js';

export interface ReasonRendering {
  status: number;
  code: string;
  message: string;
  type: string;
  /** The status line's reason phrase, where the profile gives its own. */
  reasonPhrase?: string;
}

export interface RenderedError {
  status: number;
  /** The status line's reason phrase, where the profile gives its own (else Node's standard one). */
  reasonPhrase?: string;
  headers: Record<string, string>;
  body: string;
}

export interface Dialect {
  readonly envelope: Envelope;
  rendering(reason: DenialReason): ReasonRendering;
  render(denial: Denial): RenderedError;
  /** Render an arbitrary status/message in the same envelope (admin and gateway odd cases). */
  renderMessage(status: number, code: string, message: string): RenderedError;
}

/** What each reason looks like unless the profile says otherwise. */
export const DEFAULT_RENDERINGS: Record<DenialReason, Omit<ReasonRendering, 'type'>> = {
  missing_key: { status: 401, code: 'missing_key', message: 'Missing API key.' },
  malformed_key: { status: 401, code: 'invalid_key', message: 'Invalid API key.' },
  unknown_key: { status: 401, code: 'invalid_key', message: 'Invalid API key.' },
  too_many_failures: { status: 429, code: 'too_many_failures', message: 'Too many requests with invalid API keys from this address. Try again later.' },
  revoked_key: { status: 401, code: 'revoked_key', message: 'This API key has been revoked.' },
  expired_key: { status: 401, code: 'expired_key', message: 'This API key has expired.' },
  key_not_bound: { status: 401, code: 'key_not_bound', message: 'This API key is not bound to an account.' },
  api_disabled: { status: 403, code: 'api_disabled', message: 'API access is not enabled for this account.' },
  plan_expired: { status: 403, code: 'plan_expired', message: 'Your plan has expired.' },
  no_route: { status: 404, code: 'not_found', message: 'No such endpoint.' },
  method_not_allowed: { status: 405, code: 'method_not_allowed', message: 'This endpoint does not accept this method.' },
  insufficient_scope: { status: 403, code: 'insufficient_scope', message: 'This API key lacks the scope this endpoint requires: {{scopes}}.' },
  blocked: {
    status: 429,
    code: 'blocked',
    message: 'This API key is temporarily blocked for repeatedly exceeding the rate limit.',
  },
  rate_limited: { status: 429, code: 'rate_limited', message: 'Too many requests. Slow down.' },
  concurrency_limited: { status: 429, code: 'concurrency_limited', message: 'Too many requests at once. Wait for one to finish.' },
  invalid_parameter: { status: 400, code: 'invalid_parameter', message: 'The query parameter {{parameter}} is not valid.' },
  insufficient_funds: { status: 402, code: 'insufficient_funds', message: "This request needs more {{meter}} than are left of the account's {{limit}}; they renew on {{resets}}." },
  upstream_unavailable: { status: 502, code: 'bad_gateway', message: 'The upstream service is unavailable.' },
  upstream_timeout: { status: 504, code: 'gateway_timeout', message: 'The upstream service did not answer in time.' },
  service_unavailable: { status: 503, code: 'service_unavailable', message: 'Service temporarily unavailable. Try again shortly.' },
  bad_request: { status: 400, code: 'bad_request', message: 'Bad request.' },
};

/** insufficient_funds' default message where the plan has no such meter (the route costs what the plan does not include). */
const METER_NOT_IN_PLAN_MESSAGE = 'Your plan does not include {{meter}}.';
/** insufficient_scope's default message where the key lacks several of the route's scopes (a route requires all of its own). */
const SCOPES_LACKING_MESSAGE = 'This API key lacks the scopes this endpoint requires: {{scopes}}.';

/** The default message this denial gets in place of its reason's usual one, if any (a profile that words the reason itself keeps its own). */
function defaultFor(denial: Denial): string | undefined {
  if (denial.meterNotInPlan) return METER_NOT_IN_PLAN_MESSAGE;
  if (denial.reason === 'insufficient_scope' && denial.fill?.scopes?.includes(SCOPE_LIST_SEPARATOR)) return SCOPES_LACKING_MESSAGE;
  return undefined;
}

/** blocked's default message where the block is the account's (every key of it is refused), not the key's. */
const ACCOUNT_BLOCKED_MESSAGE = 'This account is temporarily blocked for repeatedly exceeding the rate limit.';

/** Reasons where a credential was presented but did not work: RFC 6750 `invalid_token`. */
const INVALID_TOKEN_REASONS = new Set<DenialReason>(['malformed_key', 'unknown_key', 'revoked_key', 'expired_key']);

export function createDialect(config: DialectConfig, credentials: readonly CredentialLocation[]): Dialect {
  const renderings = new Map<DenialReason, ReasonRendering>();
  /** Each reason's message as WWW-Authenticate's error_description can carry it, if it can. */
  const descriptions = new Map<DenialReason, string | undefined>();
  const bodies = new Map<DenialReason, string>();
  for (const reason of DENIAL_REASONS) {
    const base = DEFAULT_RENDERINGS[reason];
    const custom = config.reasons[reason] ?? {};
    const status = custom.status ?? base.status;
    const rendering: ReasonRendering = {
      status,
      code: custom.code ?? base.code,
      message: custom.message ?? base.message,
      type: custom.type ?? defaultType(status),
      ...(custom.reasonPhrase === undefined ? {} : { reasonPhrase: custom.reasonPhrase }),
    };
    renderings.set(reason, rendering);
    descriptions.set(reason, challengeDescription(rendering.message));
    bodies.set(reason, renderBody(config, rendering, { reason }));
  }
  // blocked as said of an account's block, rendered once too; a profile that words blocked itself says that of both.
  const accountBlocked = config.reasons.blocked?.message === undefined ? accountBlockedRendering(config, renderings.get('blocked') as ReasonRendering) : undefined;
  // Retry-After differs per answer: a template that shows it renders such a body per answer.
  const bodySaysRetryAfter = config.envelope === 'template' && mentionsRetryAfter(config.template);
  const contentType = config.contentType ?? (config.envelope === 'problem' ? 'application/problem+json' : 'application/json; charset=utf-8');
  const challenge = config.wwwAuthenticate ? challengeOf(credentials, config) : undefined;

  return {
    envelope: config.envelope,
    rendering: (reason) => renderings.get(reason) as ReasonRendering,
    render(denial) {
      let rendering = renderings.get(denial.reason) as ReasonRendering;
      let renderedBody = bodies.get(denial.reason) as string;
      const otherDefault = config.reasons[denial.reason]?.message === undefined ? defaultFor(denial) : undefined;
      if (otherDefault !== undefined) rendering = { ...rendering, message: otherDefault };
      if (denial.accountBlocked && denial.reason === 'blocked' && accountBlocked) {
        rendering = accountBlocked.rendering;
        renderedBody = accountBlocked.body;
      }
      const headers: Record<string, string> = { 'content-type': contentType, ...denial.headers };
      const retryAfter = denial.retryAfterSeconds === undefined ? undefined : Math.max(1, Math.ceil(denial.retryAfterSeconds));
      if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
      if (rendering.status === 401 && challenge) {
        if (challenge.errorCodes && denial.credentialPresented && INVALID_TOKEN_REASONS.has(denial.reason)) {
          const description = descriptions.get(denial.reason);
          headers['www-authenticate'] = `${challenge.value}, error="invalid_token"${description === undefined ? '' : `, error_description="${description}"`}`;
        } else {
          headers['www-authenticate'] = challenge.value;
        }
      }
      // A message with the denial's own figures is written per denial; the others once, up front.
      const { fill } = denial;
      const filled = fill === undefined ? undefined : rendering.message.replace(MESSAGE_PLACEHOLDER, (placeholder, name: string) => fill[placeholderName(name)] ?? placeholder);
      const sameMessage = filled === undefined || filled === rendering.message;
      const body =
        sameMessage && (retryAfter === undefined || !bodySaysRetryAfter)
          ? renderedBody
          : renderBody(config, { ...rendering, message: filled ?? rendering.message }, { reason: denial.reason, ...(retryAfter === undefined ? {} : { retryAfter }) });
      return rendering.reasonPhrase === undefined ? { status: rendering.status, headers, body } : { status: rendering.status, reasonPhrase: rendering.reasonPhrase, headers, body };
    },
    renderMessage(status, code, message) {
      return {
        status,
        headers: { 'content-type': contentType },
        // These answers have no reason of their own: /metrics counts them by their code.
        body: renderBody(config, { status, code, message, type: defaultType(status) }, { reason: code }),
      };
    },
  };
}

/** The WWW-Authenticate challenge of a profile's 401s. */
interface Challenge {
  /** `<scheme> realm="<realm>"`. */
  value: string;
  /** Whether a key that does not work adds RFC 6750's `error="invalid_token"` and its description. */
  errorCodes: boolean;
}

/**
 * The first credential header with a scheme names the challenge, as the scheme the client
 * sends its key with. Where none has one (bare headers, query parameters), the profile's
 * `errors.challenge`, if given, names it alone: Kong's `Key realm="kong"`, without RFC
 * 6750's error codes, which belong to a scheme the key is sent with and which clients of
 * Kong's challenge do not expect (the body says why the key failed).
 */
function challengeOf(credentials: readonly CredentialLocation[], config: DialectConfig): Challenge | undefined {
  const schemed = credentials.find(hasScheme);
  if (schemed?.in === 'header') return { value: `${schemed.scheme} realm="${config.realm}"`, errorCodes: true };
  if (config.challenge !== undefined) return { value: `${config.challenge} realm="${config.realm}"`, errorCodes: false };
  return undefined;
}

/** blocked's rendering and body when the block is the account's. */
function accountBlockedRendering(config: DialectConfig, blocked: ReasonRendering): { rendering: ReasonRendering; body: string } {
  const rendering = { ...blocked, message: ACCOUNT_BLOCKED_MESSAGE };
  return { rendering, body: renderBody(config, rendering, { reason: 'blocked' }) };
}

/** What RFC 6750 §3 allows in error_description: printable ASCII without `"` and `\`. */
const DESCRIPTION = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * A message as error_description: accents, typographic quotes and dashes, ellipses made
 * ASCII ("é" → "e", "’" → "'", "—" → "-", "…" → "..."), `"` → `'`, line breaks and
 * runs of spaces one space. A message that is still not ASCII (other
 * scripts) has none: a header cannot carry it (Node refuses to send it), the body does.
 */
function challengeDescription(message: string): string | undefined {
  const ascii = message
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .replace(/["\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u2032\u2033]/g, "'")
    .replace(/[\u2010-\u2015\u2212]/g, '-')
    .replace(/\\/g, '/')
    // A message written as a YAML block ends in a line break, and may hold more.
    .replace(/\s+/g, ' ')
    .trim();
  return DESCRIPTION.test(ascii) ? ascii : undefined;
}

/** What a body may say besides its rendering (a template's {{reason}} and {{retryAfter}}). */
interface BodyContext {
  reason: string;
  retryAfter?: number;
}

function renderBody(config: DialectConfig, r: ReasonRendering, context: BodyContext): string {
  const title = r.reasonPhrase ?? STATUS_CODES[r.status] ?? 'Error';
  switch (config.envelope) {
    case 'jsonapi':
      return JSON.stringify({ errors: [{ code: r.code, status: r.status, detail: r.message }] });
    case 'message':
      return JSON.stringify({ message: r.message });
    case 'error_description':
      return JSON.stringify({ error_description: r.message });
    case 'error':
      return JSON.stringify({ error: r.message });
    case 'typed':
      return JSON.stringify({ error: { type: r.type, code: r.code, message: r.message } });
    case 'problem':
      return JSON.stringify({
        type: `${config.problemTypeBase}${r.code}`,
        title,
        status: r.status,
        detail: r.message,
        code: r.code,
      });
    case 'template':
      return renderErrorTemplate(config.template, {
        status: r.status,
        code: r.code,
        message: r.message,
        reason: context.reason,
        type: r.type,
        title,
        retryAfter: context.retryAfter ?? null,
      });
  }
}

function defaultType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'api_error';
  return 'invalid_request_error';
}
