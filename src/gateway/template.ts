/**
 * Built-in endpoint bodies are JSON templates in keygate.yaml. A string that is exactly
 * `{{path}}` becomes the value at that path (number, boolean, object...); a string with
 * `{{path}}` inside is interpolated as text. Anything else is copied as is. A filter
 * formats a date: `{{meters.units.periodEnd | datetime}}` → `2026-12-01 00:00:00`.
 *
 * @example
 * renderTemplate({ apiEnabled: '{{account.apiEnabled}}', id: 'acct-{{account.id}}' }, context)
 */
import { didYouMean } from '../config/closest-name.js';

const WHOLE = /^\{\{\s*([\w.]+)\s*(?:\|\s*(\w+)\s*)?\}\}$/;
const INSIDE = /\{\{\s*([\w.]+)\s*(?:\|\s*(\w+)\s*)?\}\}/g;
/** A placeholder anywhere in a string: its path (group 1) and filter (group 2), for checking a template written elsewhere (the error envelope's). */
export const TEMPLATE_PLACEHOLDER: RegExp = INSIDE;

/** Date filters: the value may be ms since the epoch, an ISO date-time or `YYYY-MM-DD`. */
const FILTERS: Record<string, (date: Date) => string> = {
  date: (d) => d.toISOString().slice(0, 10),
  datetime: (d) => d.toISOString().slice(0, 19).replace('T', ' '),
  iso: (d) => d.toISOString(),
  unix: (d) => String(Math.floor(d.getTime() / 1000)),
};


function applyFilter(value: unknown, filter: string | undefined): unknown {
  if (filter === undefined || value === null || value === undefined) return value;
  const format = FILTERS[filter];
  if (!format) return value;
  const date = new Date(typeof value === 'number' || typeof value === 'string' ? value : NaN);
  if (Number.isNaN(date.getTime())) return value;
  return filter === 'unix' ? Number(format(date)) : format(date);
}

export function renderTemplate(template: unknown, context: Record<string, unknown>): unknown {
  if (typeof template === 'string') {
    const whole = WHOLE.exec(template);
    if (whole) return applyFilter(lookup(context, whole[1] as string), whole[2]) ?? null;
    return template.replace(INSIDE, (_, path: string, filter?: string) => {
      const value = applyFilter(lookup(context, path), filter);
      return value === undefined || value === null ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
    });
  }
  if (Array.isArray(template)) return template.map((item) => renderTemplate(item, context));
  if (template !== null && typeof template === 'object') {
    return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, renderTemplate(v, context)]));
  }
  return template;
}

function lookup(context: Record<string, unknown>, path: string): unknown {
  let value: unknown = context;
  for (const part of path.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** What built-in endpoint templates can refer to (gateway/builtins.ts builds it). */
const TEMPLATE_FIELDS: Record<string, readonly string[]> = {
  account: ['id', 'name', 'apiEnabled', 'status', 'planId', 'planName', 'planExpiresAt', 'planExpired', 'createdAt'],
  plan: ['id', 'name'],
  key: ['id', 'name', 'mode', 'hint', 'scopes'],
  meter: ['kind', 'unit', 'usage', 'limit', 'remaining', 'overage', 'overageAllowed', 'periodStart', 'periodEnd'],
};

/**
 * Why a template can never render as meant (an unknown placeholder, meter or filter),
 * one message per problem, for refusing a profile at start-up.
 */
export function templateProblems(template: unknown, meters: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  for (const { path, filter } of placeholders(template)) {
    const [root = '', second, third, ...rest] = path.split('.');
    const shown = `"{{${path}${filter ? ` | ${filter}` : ''}}}"`;
    if (filter !== undefined && !(filter in FILTERS)) {
      problems.push(`${shown}: unknown filter "${filter}"; filters are ${Object.keys(FILTERS).join(', ')}`);
    }
    if (root === 'now') {
      if (second !== undefined) problems.push(`${shown}: "now" has no fields`);
    } else if (root === 'meters') {
      if (second !== undefined && !meters.has(second)) problems.push(`${shown}: no plan defines meter "${second}"${didYouMean(second, meters)}`);
      else if (third !== undefined && (rest.length > 0 || !TEMPLATE_FIELDS.meter?.includes(third))) {
        problems.push(`${shown}: a meter has ${TEMPLATE_FIELDS.meter?.join(', ')}`);
      }
    } else if (TEMPLATE_FIELDS[root] && root !== 'meter') {
      if (second !== undefined && (third !== undefined || !TEMPLATE_FIELDS[root].includes(second))) {
        problems.push(`${shown}: "${root}" has ${TEMPLATE_FIELDS[root].join(', ')}`);
      }
    } else {
      problems.push(`unknown placeholder ${shown}; placeholders start with account, plan, key, meters, now`);
    }
  }
  return problems;
}

/** Every placeholder in a template, with its filter. */
function placeholders(template: unknown, out: { path: string; filter?: string }[] = []): { path: string; filter?: string }[] {
  if (typeof template === 'string') {
    for (const m of template.matchAll(INSIDE)) out.push(m[2] === undefined ? { path: m[1] as string } : { path: m[1] as string, filter: m[2] });
  } else if (Array.isArray(template)) template.forEach((t) => placeholders(t, out));
  else if (template !== null && typeof template === 'object') Object.values(template).forEach((t) => placeholders(t, out));
  return out;
}
