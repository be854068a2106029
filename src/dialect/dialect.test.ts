import { describe, expect, it } from 'vitest';
import { parseConfigObject } from '../config/load.js';
import { deny } from '../denial/reasons.js';
import { createDialect } from './dialect.js';

function dialectFor(errors: Record<string, unknown>, scheme = 'Bearer') {
  const config = parseConfigObject({ upstream: { url: 'http://127.0.0.1:1' }, errors, auth: { credentials: [{ in: 'header', name: 'Authorization', scheme }] } });
  return createDialect(config.errors, config.auth.credentials);
}

describe('dialects', () => {
  it('renders the JSON:API errors[] envelope with the profile\'s code and detail', () => {
    const d = dialectFor({ envelope: 'jsonapi', reasons: { missing_key: { code: 'unauthorized', message: 'Invalid or missing API key.' } } });
    const r = d.render(deny('missing_key'));
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toEqual({ errors: [{ code: 'unauthorized', status: 401, detail: 'Invalid or missing API key.' }] });
  });

  it('renders message, error_description and error envelopes', () => {
    expect(JSON.parse(dialectFor({ envelope: 'message' }).render(deny('no_route')).body)).toEqual({ message: 'No such endpoint.' });
    expect(JSON.parse(dialectFor({ envelope: 'error_description' }).render(deny('no_route')).body)).toEqual({ error_description: 'No such endpoint.' });
    expect(JSON.parse(dialectFor({ envelope: 'error' }).render(deny('no_route')).body)).toEqual({ error: 'No such endpoint.' });
  });

  it('renders the typed envelope with a type derived from the status', () => {
    const d = dialectFor({ envelope: 'typed', reasons: { insufficient_scope: { code: 'insufficient_permissions' } } });
    expect(JSON.parse(d.render(deny('insufficient_scope', { fill: { scopes: 'projects:write' } })).body)).toEqual({
      error: { type: 'permission_error', code: 'insufficient_permissions', message: 'This API key lacks the scope this endpoint requires: projects:write.' },
    });
  });

  it('renders RFC 9457 problem details with their media type', () => {
    const r = dialectFor({ envelope: 'problem' }).render(deny('rate_limited', { retryAfterSeconds: 0.2 }));
    expect(r.headers['content-type']).toBe('application/problem+json');
    expect(r.headers['retry-after']).toBe('1');
    expect(JSON.parse(r.body)).toMatchObject({ title: 'Too Many Requests', status: 429, code: 'rate_limited' });
  });

  it("sends a profile's own reason phrase, which the problem envelope's title follows; refuses one a status line cannot carry", () => {
    const d = dialectFor({ envelope: 'problem', reasons: { service_unavailable: { reasonPhrase: 'Service unavailable' } } });
    const r = d.render(deny('service_unavailable'));
    expect(r.reasonPhrase).toBe('Service unavailable');
    expect(JSON.parse(r.body)).toMatchObject({ title: 'Service unavailable', status: 503 });
    // Without one, Node's standard phrase (nothing to set) and title.
    expect(d.render(deny('no_route')).reasonPhrase).toBeUndefined();
    expect(JSON.parse(d.render(deny('no_route')).body)).toMatchObject({ title: 'Not Found' });
    for (const bad of ['Busy\r\nX-Injected: 1', ' Busy', 'Busy ', '', 'Überlastet']) {
      expect(() => dialectFor({ reasons: { service_unavailable: { reasonPhrase: bad } } })).toThrow(/errors\.reasons\.service_unavailable\.reasonPhrase/);
    }
  });

  it('challenges with WWW-Authenticate on 401s, flagging a presented bad key as invalid_token', () => {
    const d = dialectFor({ envelope: 'problem', realm: 'ranksy' });
    expect(d.render(deny('missing_key')).headers['www-authenticate']).toBe('Bearer realm="ranksy"');
    expect(d.render(deny('unknown_key', { credentialPresented: true })).headers['www-authenticate']).toMatch(/^Bearer realm="ranksy", error="invalid_token"/);
    expect(d.render(deny('api_disabled')).headers['www-authenticate']).toBeUndefined();
  });

  it('says a message written over several lines on one line in the challenge, and whole in the body', () => {
    const d = dialectFor({ envelope: 'error', reasons: { unknown_key: { message: 'Invalid API key.\nSee  the docs.\n' } } });
    const rendered = d.render(deny('unknown_key', { credentialPresented: true }));
    expect(rendered.headers['www-authenticate']).toBe('Bearer realm="api", error="invalid_token", error_description="Invalid API key. See the docs."');
    expect(JSON.parse(rendered.body)).toEqual({ error: 'Invalid API key.\nSee  the docs.\n' });
  });

  it('sends no challenge for a bare-key scheme, where there is no scheme to name', () => {
    expect(dialectFor({ envelope: 'jsonapi' }, 'none').render(deny('missing_key')).headers['www-authenticate']).toBeUndefined();
  });

  it('lets a profile move a reason to another status (SE Ranking: No token is a 403)', () => {
    const d = dialectFor({ envelope: 'message', reasons: { missing_key: { status: 403, message: 'No token' } } });
    const r = d.render(deny('missing_key'));
    expect(r.status).toBe(403);
    expect(r.body).toBe('{"message":"No token"}');
  });

  it('names the parameter of invalid_parameter where its message says {{parameter}}, in every envelope, and as written', () => {
    const message = 'Parameter {{ parameter }} is invalid ("{{parameter}}").';
    for (const envelope of ['jsonapi', 'message', 'error_description', 'error', 'typed', 'problem'] as const) {
      const d = dialectFor({ envelope, reasons: { invalid_parameter: { message } } });
      // A name with JSON's and String.replace's special characters comes out as it is.
      const body = d.render(deny('invalid_parameter', { fill: { parameter: '$&"x' } })).body;
      expect(body).toContain(JSON.stringify('Parameter $&"x is invalid ("$&"x").').slice(1, -1));
      expect(d.render(deny('invalid_parameter', { fill: { parameter: 'limit' } })).body).toContain('Parameter limit is invalid');
    }
    // The default message names it too; without a parameter the message is left as it is.
    expect(JSON.parse(dialectFor({ envelope: 'message' }).render(deny('invalid_parameter', { fill: { parameter: 'limit' } })).body)).toEqual({ message: 'The query parameter limit is not valid.' });
  });

  it('says a plan without the meter does not include it, unless the profile words insufficient_funds itself', () => {
    const fill = { meter: 'credits', limit: '0', resets: '2027-01-01' };
    const plain = dialectFor({ envelope: 'message' });
    expect(JSON.parse(plain.render(deny('insufficient_funds', { fill, meterNotInPlan: true })).body)).toEqual({ message: 'Your plan does not include credits.' });
    expect(JSON.parse(plain.render(deny('insufficient_funds', { fill })).body)).toEqual({ message: "This request needs more credits than are left of the account's 0; they renew on 2027-01-01." });
    const worded = dialectFor({ envelope: 'message', reasons: { insufficient_funds: { message: 'Out of {{meter}}.' } } });
    expect(JSON.parse(worded.render(deny('insufficient_funds', { fill, meterNotInPlan: true })).body)).toEqual({ message: 'Out of credits.' });
  });

  it('says an account-scoped block is the account\'s, in every envelope, unless the profile words blocked itself', () => {
    const key = 'This API key is temporarily blocked for repeatedly exceeding the rate limit.';
    const account = 'This account is temporarily blocked for repeatedly exceeding the rate limit.';
    for (const envelope of ['jsonapi', 'message', 'error_description', 'error', 'typed', 'problem'] as const) {
      const plain = dialectFor({ envelope });
      expect(plain.render(deny('blocked', { accountBlocked: true })).body, envelope).toContain(account);
      expect(plain.render(deny('blocked')).body, envelope).toContain(key);
    }
    const worded = dialectFor({ envelope: 'message', reasons: { blocked: { status: 429, message: 'Too Many Requests' } } });
    expect(JSON.parse(worded.render(deny('blocked', { accountBlocked: true })).body)).toEqual({ message: 'Too Many Requests' });
    // Only the message is the profile's: a profile that changes blocked's code keeps the account's wording.
    const coded = dialectFor({ envelope: 'typed', reasons: { blocked: { code: 'too_many' } } });
    expect(JSON.parse(coded.render(deny('blocked', { accountBlocked: true })).body)).toEqual({ error: { type: 'rate_limit_error', code: 'too_many', message: account } });
  });

  it('refuses a placeholder in a message where nothing fills it in', () => {
    expect(() => dialectFor({ reasons: { bad_request: { message: 'Parameter {{parameter}} is invalid.' } } })).toThrow(
      'errors.reasons.bad_request.message: {{parameter}} would be sent as written: nothing is filled in in this message',
    );
    expect(() => dialectFor({ reasons: { invalid_parameter: { message: 'Parameter {{param}} is invalid.' } } })).toThrow(
      'errors.reasons.invalid_parameter.message: {{param}} would be sent as written: this message may hold {{parameter}}',
    );
  });
});
