import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfigObject, parseConfigText } from '../config/load.js';
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

describe('the template envelope: errors in the shape the profile writes', () => {
  const FAULT = { fault: { kind: '{{code}}', text: '{{message}}', status: '{{status}}' } };
  const templated = (template: unknown, more: Record<string, unknown> = {}) => dialectFor({ envelope: 'template', template, ...more });

  it("renders an upstream's own {fault:{kind,text}} shape, {{status}} as a number, with JSON's content type", () => {
    const r = templated(FAULT).render(deny('missing_key'));
    expect(r.status).toBe(401);
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(r.headers['www-authenticate']).toBe('Bearer realm="api"');
    expect(r.body).toBe('{"fault":{"kind":"missing_key","text":"Missing API key.","status":401}}');
  });

  it('fills each placeholder: code and message as the profile words them, reason the typed one, type, title, retryAfter', () => {
    const d = templated(
      { code: '{{code}}', message: '{{message}}', reason: '{{reason}}', type: '{{type}}', title: '{{title}}', retryAfter: '{{retryAfter}}', status: '{{status}}' },
      { reasons: { unknown_key: { code: 'bad_token', message: 'Token not recognised.', type: 'auth' }, service_unavailable: { reasonPhrase: 'Service unavailable' } } },
    );
    expect(JSON.parse(d.render(deny('unknown_key')).body)).toEqual({ code: 'bad_token', message: 'Token not recognised.', reason: 'unknown_key', type: 'auth', title: 'Unauthorized', retryAfter: null, status: 401 });
    // malformed_key shares unknown_key's default code; {{reason}} tells them apart.
    expect(JSON.parse(d.render(deny('malformed_key')).body)).toMatchObject({ code: 'invalid_key', reason: 'malformed_key', type: 'authentication_error' });
    expect(JSON.parse(d.render(deny('service_unavailable', { retryAfterSeconds: 5 })).body)).toMatchObject({ title: 'Service unavailable', retryAfter: 5, status: 503, type: 'api_error' });
  });

  it('says {{retryAfter}} as the Retry-After header does, per answer, and null where none is sent', () => {
    const d = templated({ error: { message: '{{message}}', retry_after: '{{retryAfter}}' } });
    const limited = d.render(deny('rate_limited', { retryAfterSeconds: 41.2 }));
    expect(limited.headers['retry-after']).toBe('42');
    expect(JSON.parse(limited.body)).toEqual({ error: { message: 'Too many requests. Slow down.', retry_after: 42 } });
    expect(JSON.parse(d.render(deny('rate_limited', { retryAfterSeconds: 0.2 })).body).error.retry_after).toBe(1);
    expect(JSON.parse(d.render(deny('rate_limited')).body).error.retry_after).toBeNull();
    // An account's block, rendered once up front, still says its own wait and its own message.
    expect(JSON.parse(d.render(deny('blocked', { accountBlocked: true, retryAfterSeconds: 600 })).body)).toEqual({
      error: { message: 'This account is temporarily blocked for repeatedly exceeding the rate limit.', retry_after: 600 },
    });
  });

  it('interpolates placeholders inside longer strings as text, keeps other values, nests in lists', () => {
    const d = templated({ errors: [{ id: 'E{{status}}', detail: '{{code}}: {{ message }}', help: 'https://docs.example.com/errors#{{code}}', wait: 'retry in {{retryAfter}}s', fatal: true, n: 7, none: null }] });
    expect(JSON.parse(d.render(deny('no_route')).body)).toEqual({
      errors: [{ id: 'E404', detail: 'not_found: No such endpoint.', help: 'https://docs.example.com/errors#not_found', wait: 'retry in s', fatal: true, n: 7, none: null }],
    });
  });

  it('escapes quotes, backslashes, line breaks and replacement patterns in a message, also one with the denial\'s own figures', () => {
    const message = 'Say "hi" \\ then\nleave {{parameter}}.';
    const d = templated({ fault: { text: '{{message}}', quoted: '«{{message}}»' } }, { reasons: { invalid_parameter: { message } } });
    const body = d.render(deny('invalid_parameter', { fill: { parameter: '$&"x' } })).body;
    const expected = 'Say "hi" \\ then\nleave $&"x.';
    expect(JSON.parse(body)).toEqual({ fault: { text: expected, quoted: `«${expected}»` } });
    expect(body).toContain('Say \\"hi\\"');
  });

  it('shapes the fixed answers (414 and the like) the same way, their code as {{reason}}', () => {
    const r = templated({ ...FAULT, why: '{{reason}}' }).renderMessage(414, 'uri_too_long', 'The request URL is too long.');
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(JSON.parse(r.body)).toEqual({ fault: { kind: 'uri_too_long', text: 'The request URL is too long.', status: 414 }, why: 'uri_too_long' });
  });

  it('sends the content type the profile gives', () => {
    expect(templated(FAULT, { contentType: 'application/vnd.fault+json' }).render(deny('no_route')).headers['content-type']).toBe('application/vnd.fault+json');
  });

  it('refuses, naming the field, an unknown placeholder (listing the names it may hold), a filter, an unquoted one, and a template that is missing or not used', () => {
    const allowed = '{{status}}, {{code}}, {{message}}, {{reason}}, {{type}}, {{title}}, {{retryAfter}}';
    expect(() => templated({ fault: { kind: '{{kind}}' } })).toThrow(`errors.template.fault.kind: unknown placeholder "{{kind}}"; an error template may hold ${allowed}`);
    expect(() => templated({ list: ['ok', 'at {{mesage}}'] })).toThrow(`errors.template.list[1]: unknown placeholder "{{mesage}}" (did you mean "message"?); an error template may hold ${allowed}`);
    expect(() => templated({ at: '{{account.id}}' })).toThrow('errors.template.at: unknown placeholder "{{account.id}}"');
    expect(() => templated({ at: '{{status | date}}' })).toThrow('errors.template.at: "{{status | date}}": an error template takes no filter (filters format dates); write "{{status}}"');
    // YAML reads `kind: {{code}}` as a mapping whose key is "{ code }".
    expect(() => templated({ fault: { kind: { '{ code }': null } } })).toThrow('errors.template.fault.kind: {{code}} unquoted is a YAML mapping, not a placeholder: write "{{code}}" in quotes');
    expect(() => dialectFor({ envelope: 'template' })).toThrow('errors.template: envelope "template" needs the body to send');
    expect(() => dialectFor({ envelope: 'message', template: FAULT })).toThrow('errors.template: a template shapes errors only with envelope: template (envelope is "message")');
    expect(() => templated('{{message}}')).toThrow(/errors\.template: /);
  });
});

describe("docs/configuration.md's error envelopes", () => {
  const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## Error envelopes'), doc.indexOf('## The denial reasons'));

  it('shows for missing_key the body and content type each fixed envelope sends', () => {
    const rows = section.split('\n').filter((line) => line.startsWith('| `') && !line.startsWith('| `{{'));
    expect(rows.map((row) => row.split('`')[1])).toEqual(['jsonapi', 'message', 'error_description', 'error', 'typed', 'problem']);
    for (const row of rows) {
      const [envelope, contentType, body] = row.split(' | ').map((cell) => cell.replace(/^\|? ?`|`.*$/g, ''));
      const r = dialectFor({ envelope }).render(deny('missing_key'));
      expect([r.headers['content-type'], r.body], envelope).toEqual([contentType, body]);
    }
  });

  it("shows the template example's bodies as rendered (401, 429 with Retry-After: 60, 414)", () => {
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
    const shown = (/```json\n([\s\S]*?)```/.exec(section)?.[1] ?? '').trim().split('\n');
    const config = parseConfigText(`upstream: {url: "http://127.0.0.1:1"}\n${yaml}`);
    const d = createDialect(config.errors, config.auth.credentials);
    expect([d.render(deny('missing_key')).body, d.render(deny('rate_limited', { retryAfterSeconds: 60 })).body, d.renderMessage(414, 'uri_too_long', 'The request URL is too long.').body]).toEqual(shown);
  });
});
