/**
 * Every way keygate can refuse a request, as a typed value. The pipeline only ever
 * produces these; the profile's dialect alone decides how each one looks on the wire.
 */

export const DENIAL_REASONS = [
  'missing_key',
  'malformed_key',
  'unknown_key',
  'too_many_failures',
  'revoked_key',
  'expired_key',
  'key_not_bound',
  'api_disabled',
  'plan_expired',
  'no_route',
  'method_not_allowed',
  'insufficient_scope',
  'blocked',
  'rate_limited',
  'concurrency_limited',
  'invalid_parameter',
  'insufficient_funds',
  'upstream_unavailable',
  'upstream_timeout',
  'service_unavailable',
  'bad_request',
] as const;

export type DenialReason = (typeof DENIAL_REASONS)[number];

/** A refusal with what the client needs to recover from it. */
export interface Denial {
  reason: DenialReason;
  /**
   * Seconds until a retry can succeed (too_many_failures, blocked, rate_limited,
   * concurrency_limited, service_unavailable; upstream_unavailable while an upstream
   * keygate started is down).
   */
  retryAfterSeconds?: number;
  /** Extra response headers (RateLimit fields on a 429). */
  headers?: Record<string, string>;
  /** True when the client presented a credential (drives `error="invalid_token"`). */
  credentialPresented?: boolean;
  /**
   * What each `{{name}}` in the reason's message becomes (MESSAGE_PLACEHOLDERS lists them):
   * names from the profile and figures keygate counted, never the client's text.
   */
  fill?: Readonly<Record<string, string>>;
  /**
   * insufficient_funds only: the account's plan has no such meter at all (nothing to run
   * out of, nothing that renews). Said so unless the profile words the refusal itself.
   */
  meterNotInPlan?: boolean;
  /**
   * blocked only: the block is the account's (a plan `block` with `scope: account`), so
   * every key of the account is refused, not only this one. Said so unless the profile
   * words the refusal itself.
   */
  accountBlocked?: boolean;
}

/** How `{{scopes}}` lists several scopes (`read, export`): a scope holds no space. */
export const SCOPE_LIST_SEPARATOR = ', ';

/**
 * A `{{name}}` in a message (spaces allowed, as in templates); the name is group 1, trimmed
 * (`placeholderName`). No brace inside: with one allowed (`[^}]*?`), each `{` of a long run
 * of them was tried as a start and scanned to the end, seconds for 20 KB of braces in a
 * profile's message and hours for a megabyte (`keygate check` and `serve` hung on it).
 */
export const MESSAGE_PLACEHOLDER = /\{\{([^{}]*)\}\}/g;

/** The name a MESSAGE_PLACEHOLDER match holds: `{{ scopes }}` is `scopes`. */
export function placeholderName(inside: string): string {
  return inside.trim();
}

/**
 * The placeholders a reason's message may hold: invalid_parameter names the query
 * parameter it could not read; insufficient_scope the scopes the route requires that the
 * key (within its plan) lacks, comma-separated; insufficient_funds the meter, its limit
 * and the day its period starts afresh (`YYYY-MM-DD`, UTC). Any other `{{…}}` is refused
 * at start-up.
 */
export const MESSAGE_PLACEHOLDERS: Readonly<Partial<Record<DenialReason, readonly string[]>>> = {
  invalid_parameter: ['parameter'],
  insufficient_scope: ['scopes'],
  insufficient_funds: ['meter', 'limit', 'resets'],
};

export function deny(reason: DenialReason, extra: Omit<Denial, 'reason'> = {}): Denial {
  return { reason, ...extra };
}
