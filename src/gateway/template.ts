/**
 * Built-in endpoint bodies are JSON templates in keygate.yaml. A string that is exactly
 * `{{path}}` becomes the value at that path (number, boolean, object...); a string with
 * `{{path}}` inside is interpolated as text. Anything else is copied as is.
 *
 * @example
 * renderTemplate({ apiEnabled: '{{account.apiEnabled}}', id: 'acct-{{account.id}}' }, context)
 */
const WHOLE = /^\{\{\s*([\w.]+)\s*\}\}$/;
const INSIDE = /\{\{\s*([\w.]+)\s*\}\}/g;

export function renderTemplate(template: unknown, context: Record<string, unknown>): unknown {
  if (typeof template === 'string') {
    const whole = WHOLE.exec(template);
    if (whole) return lookup(context, whole[1] as string) ?? null;
    return template.replace(INSIDE, (_, path: string) => {
      const value = lookup(context, path);
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
