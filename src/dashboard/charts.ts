/**
 * Charts drawn on the server as inline SVG: stacked bars per day and horizontal bars
 * per label. The plot is a stretchable SVG (no text inside, so it stays sharp at any
 * width); axis labels and the legend are ordinary HTML that keeps its size on a phone.
 * The x axis has one cell per day, as wide as the day's slot in the plot, so a label is
 * centred under its bar whatever the number of days.
 * Every chart has a text alternative and a table of its numbers.
 */
import { html, type Html } from './html.js';
import { number, shortDay } from './format.js';

/** One coloured part of a stacked bar, one value per day. */
export interface DailySeries {
  label: string;
  values: number[];
}

export interface LabelledValue {
  label: string;
  value: number;
}

/** Width of one day's slot in SVG units; the bar fills BAR_FILL of it. */
const SLOT = 10;
const BAR_FILL = 0.7;
const PLOT_HEIGHT = 100;
/** Colour classes in the stylesheet (.s0 ... .s5). */
const COLOURS = 6;

/** Axis tops: 1, 2, 4, 6 or 8 × 10^k, so that the top and its half are round numbers. */
const NICE_STEPS = [1, 2, 4, 6, 8, 10];

/** The smallest nice axis top at or above `value`. */
export function niceCeiling(value: number): number {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of NICE_STEPS) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

function svgNumber(value: number): string {
  return String(Math.round(value * 100) / 100);
}

/** Stacked bars, one per day. `emptyText` replaces the plot when every value is 0. */
export function dailyBarChart(options: { id: string; title: string; days: readonly string[]; series: readonly DailySeries[]; unit: string; emptyText: string; wide?: boolean }): Html {
  const { id, title, days, series, unit } = options;
  const totals = days.map((_, i) => series.reduce((sum, s) => sum + (s.values[i] ?? 0), 0));
  const grandTotal = totals.reduce((a, b) => a + b, 0);
  const heading = html`<h3 id="${id}-title">${title}</h3>`;
  if (grandTotal === 0 || days.length === 0) {
    return html`<figure class="chart${options.wide ? ' wide' : ''}" aria-labelledby="${id}-title">${heading}<p class="chart-empty">${options.emptyText}</p></figure>`;
  }
  // At least 2, so the middle label of a chart of small counts is a whole number.
  const ceiling = Math.max(2, niceCeiling(Math.max(...totals)));
  const width = days.length * SLOT;
  const bars: Html[] = [];
  days.forEach((day, i) => {
    let stacked = 0;
    series.forEach((s, j) => {
      const value = s.values[i] ?? 0;
      if (value <= 0) return;
      const height = (value / ceiling) * PLOT_HEIGHT;
      stacked += height;
      bars.push(
        html`<rect class="s${j % COLOURS}" x="${svgNumber(i * SLOT + (SLOT * (1 - BAR_FILL)) / 2)}" y="${svgNumber(PLOT_HEIGHT - stacked)}" width="${svgNumber(SLOT * BAR_FILL)}" height="${svgNumber(height)}"><title>${shortDay(day)}: ${number(value)} ${s.label}</title></rect>`,
      );
    });
  });
  // The first, middle and last days are named (each once: a chart of one day has one label).
  const labelled = new Set([0, Math.floor((days.length - 1) / 2), days.length - 1]);
  const summary = `${title}, ${shortDay(days[0] as string)} to ${shortDay(days[days.length - 1] as string)}: ${number(grandTotal)} ${unit} in all, at most ${number(Math.max(...totals))} in a day.`;
  return html`<figure class="chart${options.wide ? ' wide' : ''}" aria-labelledby="${id}-title">
  ${heading}
  <div class="plot">
    <div class="y" aria-hidden="true"><span>${number(ceiling)}</span><span>${number(ceiling / 2)}</span><span>0</span></div>
    <svg viewBox="0 0 ${width} ${PLOT_HEIGHT}" preserveAspectRatio="none" role="img" aria-label="${summary}" focusable="false">
      <line class="grid" x1="0" x2="${width}" y1="${PLOT_HEIGHT / 2}" y2="${PLOT_HEIGHT / 2}" vector-effect="non-scaling-stroke"></line>
      ${bars}
    </svg>
    <div class="x" aria-hidden="true">${days.map((day, i) => html`<span>${labelled.has(i) ? shortDay(day) : ''}</span>`)}</div>
  </div>
  ${legend(series.map((s) => s.label))}
  <details class="numbers"><summary>Show the numbers<span class="sr-only"> for ${title.toLowerCase()}</span></summary>
    <div class="table-wrap"><table class="data">
      <thead><tr><th scope="col">Day</th>${series.map((s) => html`<th scope="col" class="num">${s.label}</th>`)}</tr></thead>
      <tbody>${days
        .map((day, i) => ({ day, i }))
        .filter(({ i }) => (totals[i] ?? 0) > 0)
        .map(({ day, i }) => html`<tr><th scope="row">${day}</th>${series.map((s) => html`<td class="num">${number(s.values[i] ?? 0)}</td>`)}</tr>`)}</tbody>
    </table></div>
  </details>
</figure>`;
}

/** One horizontal bar per label, longest first. */
export function labelledBarChart(options: { id: string; title: string; items: readonly LabelledValue[]; emptyText: string; wide?: boolean }): Html {
  const { id, title } = options;
  const items = options.items.filter((item) => item.value > 0).sort((a, b) => b.value - a.value);
  const heading = html`<h3 id="${id}-title">${title}</h3>`;
  if (items.length === 0) {
    return html`<figure class="chart${options.wide ? ' wide' : ''}" aria-labelledby="${id}-title">${heading}<p class="chart-empty">${options.emptyText}</p></figure>`;
  }
  const largest = Math.max(...items.map((item) => item.value));
  return html`<figure class="chart${options.wide ? ' wide' : ''}" aria-labelledby="${id}-title">
  ${heading}
  <ul class="hbars">${items.map(
    (item, i) => html`<li>
    <span class="label">${item.label}</span>
    <svg viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" focusable="false"><rect class="s${(i + 1) % COLOURS}" x="0" y="0" height="10" width="${svgNumber(Math.max(1, (item.value / largest) * 100))}"></rect></svg>
    <span class="value">${number(item.value)}</span>
  </li>`,
  )}</ul>
</figure>`;
}

function legend(labels: readonly string[]): Html {
  if (labels.length < 2) return html``;
  return html`<ul class="legend" aria-hidden="true">${labels.map((label, i) => html`<li><span class="swatch s${i % COLOURS}"></span>${label}</li>`)}</ul>`;
}
