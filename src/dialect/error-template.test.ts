import { describe, expect, it } from 'vitest';
import { ERROR_TEMPLATE_FIELDS, errorTemplateProblems, mentionsRetryAfter, renderErrorTemplate, type ErrorFields } from './error-template.js';

const FIELDS: ErrorFields = { status: 429, code: 'rate_limited', message: 'Say "wait" \\ then\nretry.', reason: 'blocked', type: 'rate_limit_error', title: 'Too Many Requests', retryAfter: 600 };

describe('error templates', () => {
  it('gives each placeholder alone its value with its type, and inside a longer string as text', () => {
    const whole = Object.fromEntries(ERROR_TEMPLATE_FIELDS.map((name) => [name, `{{${name}}}`]));
    expect(JSON.parse(renderErrorTemplate(whole, FIELDS))).toEqual(FIELDS);
    const inside = Object.fromEntries(ERROR_TEMPLATE_FIELDS.map((name) => [name, `<{{${name}}}>`]));
    expect(JSON.parse(renderErrorTemplate(inside, FIELDS))).toEqual(Object.fromEntries(ERROR_TEMPLATE_FIELDS.map((name) => [name, `<${String(FIELDS[name])}>`])));
    // No Retry-After: null alone, nothing inside text.
    expect(JSON.parse(renderErrorTemplate({ a: '{{retryAfter}}', b: 'in {{retryAfter}}s' }, { ...FIELDS, retryAfter: null }))).toEqual({ a: null, b: 'in s' });
  });

  it('writes valid JSON for a message with quotes, a backslash and a line break', () => {
    const body = renderErrorTemplate(['{{message}}', 'x {{message}}'], FIELDS);
    expect(body).toBe('["Say \\"wait\\" \\\\ then\\nretry.","x Say \\"wait\\" \\\\ then\\nretry."]');
    expect(JSON.parse(body)).toEqual([FIELDS.message, `x ${FIELDS.message}`]);
  });

  it('tells whether a template shows Retry-After, wherever it is', () => {
    expect(mentionsRetryAfter({ a: [{ b: 'wait {{ retryAfter }}s' }] })).toBe(true);
    expect(mentionsRetryAfter({ a: '{{message}}', retryAfter: 5 })).toBe(false);
  });

  it('finds nothing wrong in a template of known placeholders', () => {
    expect(errorTemplateProblems({ a: ['{{status}}', { b: 'E{{code}}: {{ message }}' }], c: 1, d: null })).toEqual([]);
  });
});
