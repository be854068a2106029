/**
 * How a data table is named for screen readers. By the heading right above it (its id),
 * so that the name is not read twice, the heading's text and then a caption saying the
 * same; by a hidden caption only where no heading says what the table holds.
 */
import { html, type Html } from './html.js';

export type TableName = { heading: string } | { caption: string };

/** The `<table>` attributes and the caption (none for a heading) that give it `name`. */
export function tableNaming(name: TableName): { attributes: Html; caption: Html } {
  return 'heading' in name
    ? { attributes: html` aria-labelledby="${name.heading}"`, caption: html`` }
    : { attributes: html``, caption: html`<caption class="sr-only">${name.caption}</caption>` };
}
