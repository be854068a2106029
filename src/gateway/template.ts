/**
 * Built-in endpoint bodies are JSON templates in keygate.yaml. A string that is exactly
 * `{{path}}` becomes the value at that path (number, boolean, object...); a string with
 * `{{path}}` inside is interpolated as text. Anything else is copied as is. A filter
 * formats a date: `{{meters.units.periodEnd | datetime}}` → `2026-12-01 00:00:00`.
 *
 * @example
 * renderTemplate({ apiEnabled: '{{account.apiEnabled}}', id: 'acct-{{account.id}}' }, context)
 */
const WHOLE = /^\{\{\s*([\w.]+)\s*(?:\|\s*(\w+)\s*)?\}\}$/;
const INSIDE = /\{\{\s*([\w.]+)\s*(?:\|\s*(\w+)\s*)?\}\}/g;

/** Date filters: the value may be ms since the epoch, an ISO date-time or `YYYY-MM-DD`. */
const FILTERS: Record<string, (date: Date) => string> = {
  date: (d) => d.toISOString().slice(0, 10),
  datetime: (d) => d.toISOString().slice(0, 19).replace('T', ' '),
  iso: (d) => d.toISOString(),
  unix: (d) => String(Math.floor(d.getTime() / 1000)),
};

export const TEMPLATE_FILTERS = Object.keys(FILTERS);

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

/** Every placeholder path in a template, for validating profiles at start-up. */
export function templatePaths(template: unknown, out: string[] = []): string[] {
  if (typeof template === 'string') for (const m of template.matchAll(INSIDE)) out.push(m[1] as string);
  else if (Array.isArray(template)) template.forEach((t) => templatePaths(t, out));
  else if (template !== null && typeof template === 'object') Object.values(template).forEach((t) => templatePaths(t, out));
  return out;
}
