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
/**
 * Control characters (C0, DEL, C1) other than tab and line breaks: no page means to
 * show one, and a NUL or escape typed into a form must not come back in the page as
 * is. Each becomes U+FFFD, as browsers show a NUL, rather than nothing, so that two
 * different values never read the same.
 */
const UNSAFE = /[&<>"'\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/g;
const REPLACEMENT = '\uFFFD';

export function escapeHtml(text: string): string {
  return text.replace(UNSAFE, (c) => ESCAPES[c] ?? REPLACEMENT);
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
