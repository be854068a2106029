/**
 * HTML from template literals. Every interpolated value is escaped unless it already is
 * `Html`, so a key name such as `<script>` is shown, never run.
 *
 * @example
 * const row = html`<td>${key.name}</td>`;          // escaped
 * const page = html`<tr>${rows}</tr>`;              // arrays of Html are joined
 */

/** Markup that is already safe to put in a page. */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

export type Renderable = Html | string | number | boolean | null | undefined | readonly Renderable[];

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

function render(value: Renderable): string {
  if (value instanceof Html) return value.value;
  if (value === null || value === undefined || value === false) return '';
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: Renderable[]): Html {
  let out = strings[0] as string;
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] as string);
  });
  return new Html(out);
}

/** Trusted markup written by this module's own code (never user input). */
export function raw(markup: string): Html {
  return new Html(markup);
}
