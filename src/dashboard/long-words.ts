/**
 * Text whose long words are marked as it is built, for a cell that wraps at spaces and
 * keeps words whole (the audit log's Details): a word no column has room for (a
 * 200-character account name, a detail's JSON) is put in `<span class="long-word">`,
 * which the stylesheet lets break anywhere. Words are found in the text itself, before
 * it is escaped, so no pattern ever runs over markup, and `&` counts as one character.
 *
 * @example
 * prose`“${account.name}” on the ${planName} plan`; // the name (with its quotes) marked if 40+ characters; planName, Html, kept as it is
 */
import { Html, escapeHtml, html, type Renderable } from './html.js';

/**
 * A word (no space in it) at least this long breaks anywhere. Shorter ones stay whole and
 * widen the column instead: `anywhere` on the whole cell let the table squeeze the column
 * below a word's width and break every word in it.
 */
export const LONG_WORD = 40;

/**
 * Where text may wrap: white space, but for the vertical tab and form feed, which
 * escapeHtml shows as U+FFFD (a character of the word, then).
 */
const SPACES = /([^\S\v\f]+)/;

/** `text`, escaped, each of its words of LONG_WORD characters or more marked `long-word`. */
export function breakable(text: string): Html {
  return new Html(
    text
      .split(SPACES)
      .map((part, i) => (i % 2 === 0 && [...part].length >= LONG_WORD ? html`<span class="long-word">${part}</span>`.value : escapeHtml(part)))
      .join(''),
  );
}

/**
 * A tagged template for text, as `html` is for markup: its literal parts are text too,
 * and so is each interpolated string or number (escaped, never markup). Long words are
 * marked (breakable) across the literal parts and the values they join, as a reader sees
 * the words: `“${name}”` is one word with its quotes. An `Html` value (an email's span,
 * a `<code>`) is put in as it is, and ends the word before it; an array's items are put
 * in one after another.
 */
export function prose(strings: TemplateStringsArray, ...values: Renderable[]): Html {
  let out = '';
  let run = '';
  const put = (value: Renderable): void => {
    if (value instanceof Html) {
      out += breakable(run).value + value.value;
      run = '';
    } else if (Array.isArray(value)) value.forEach(put);
    else if (value !== null && value !== undefined && value !== false) run += String(value);
  };
  strings.forEach((literal, i) => {
    run += literal;
    if (i < values.length) put(values[i]);
  });
  return new Html(out + breakable(run).value);
}
