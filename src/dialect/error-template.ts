/**
 * The `template` envelope: an error body in the API's own shape, for an API whose errors
 * none of the fixed envelopes match (`{"fault":{"kind":…,"text":…}}`). The profile writes
 * the body as JSON whose string values may hold placeholders, as built-in endpoint bodies
 * do (gateway/template.ts): a string that is exactly `{{status}}` becomes the value with
 * its type (a number), one with `{{code}}` inside is interpolated as text.
 *
 * @example
 * renderErrorTemplate({ fault: { kind: '{{code}}', text: '{{message}}', status: '{{status}}' } }, fields)
 * // → '{"fault":{"kind":"missing_key","text":"Missing API key.","status":401}}'
 */
import { didYouMean } from '../config/closest-name.js';
import { renderTemplate, TEMPLATE_PLACEHOLDER } from '../gateway/template.js';

/** What one error body can say: what the six fixed envelopes say between them, and the typed reason and Retry-After. */
export interface ErrorFields {
  status: number;
  code: string;
  message: string;
  /** The typed denial reason (`unknown_key` where the code is `invalid_key`); for the five fixed answers, their code. */
  reason: string;
  /** The typed envelope's `type` (`authentication_error`, or the reason's own `type`). */
  type: string;
  /** The problem envelope's `title`: the reason phrase (the profile's, or the standard one). */
  title: string;
  /** Retry-After's seconds, where the answer has that header; else null. */
  retryAfter: number | null;
}

/** The placeholders an error template may hold, in the order the docs list them. */
export const ERROR_TEMPLATE_FIELDS = ['status', 'code', 'message', 'reason', 'type', 'title', 'retryAfter'] as const satisfies readonly (keyof ErrorFields)[];

/** The body of one error: the template with its placeholders filled, as JSON (strings escaped by JSON.stringify). */
export function renderErrorTemplate(template: unknown, fields: ErrorFields): string {
  return JSON.stringify(renderTemplate(template, { ...fields }));
}

/** Whether the template says `{{retryAfter}}`: then a body with Retry-After is rendered per answer, not once per reason. */
export function mentionsRetryAfter(template: unknown): boolean {
  return placeholdersOf(template).some(({ name }) => name === 'retryAfter');
}

export interface ErrorTemplateProblem {
  /** Where in the template, from its root: `['fault', 'kind']`. */
  path: (string | number)[];
  message: string;
}

/** `{ code }` as YAML reads an unquoted `{{code}}`: a mapping whose one key is the inner braces. */
const UNQUOTED = /^\{\s*([\w.]+)\s*(?:\|\s*\w+\s*)?\}$/;

/**
 * Why a template can never render as meant, one problem per placeholder, for refusing a
 * profile at start-up: a name it has no value for (sent as written, or as nothing), a
 * filter (dates only; an error has none), a placeholder YAML read as a mapping.
 */
export function errorTemplateProblems(template: unknown): ErrorTemplateProblem[] {
  const problems: ErrorTemplateProblem[] = [];
  const allowed = ERROR_TEMPLATE_FIELDS.map((name) => `{{${name}}}`).join(', ');
  for (const { path, name, filter, written } of placeholdersOf(template)) {
    if (!(ERROR_TEMPLATE_FIELDS as readonly string[]).includes(name)) {
      problems.push({ path, message: `unknown placeholder "${written}"${didYouMean(name, ERROR_TEMPLATE_FIELDS)}; an error template may hold ${allowed}` });
    } else if (filter !== undefined) {
      problems.push({ path, message: `"${written}": an error template takes no filter (filters format dates); write "{{${name}}}"` });
    }
  }
  visit(template, [], (value, path) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
    const entries = Object.entries(value);
    const unquoted = entries.length === 1 && entries[0]?.[1] === null ? UNQUOTED.exec(entries[0][0]) : null;
    if (unquoted) problems.push({ path, message: `{{${unquoted[1]}}} unquoted is a YAML mapping, not a placeholder: write "{{${unquoted[1]}}}" in quotes` });
  });
  return problems;
}

interface Placeholder {
  path: (string | number)[];
  name: string;
  filter?: string;
  written: string;
}

function placeholdersOf(template: unknown): Placeholder[] {
  const found: Placeholder[] = [];
  visit(template, [], (value, path) => {
    if (typeof value !== 'string') return;
    for (const m of value.matchAll(TEMPLATE_PLACEHOLDER)) {
      found.push({ path, name: m[1] as string, written: m[0], ...(m[2] === undefined ? {} : { filter: m[2] }) });
    }
  });
  return found;
}

/** Every value of the template, with its path, the root's included. */
function visit(value: unknown, path: (string | number)[], see: (value: unknown, path: (string | number)[]) => void): void {
  see(value, path);
  if (Array.isArray(value)) value.forEach((item, i) => visit(item, [...path, i], see));
  else if (value !== null && typeof value === 'object') for (const [key, item] of Object.entries(value)) visit(item, [...path, key], see);
}
