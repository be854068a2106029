/**
 * The dashboard's only stylesheet and script, served from its own origin (the page's
 * Content-Security-Policy allows nothing else). The CSS lays pages out for a phone first
 * and widens at 44rem; the script only adds the copy buttons, so every page works
 * without it.
 */
import { createHash } from 'node:crypto';

export const STYLESHEET = `
:root { --ink: #0f172a; --muted: #475569; --line: #cbd5e1; --soft: #f1f5f9; --accent: #1d4ed8; --accent-dark: #1e3a8a;
  --danger: #b91c1c; --ok: #15803d; --warn: #b45309; --focus: #f59e0b; color-scheme: light; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Liberation Sans", sans-serif; color: var(--ink); background: #fff; }
a { color: var(--accent); text-underline-offset: 2px; }
a:hover { color: var(--accent-dark); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; border-radius: 2px; }
main:focus, h1[tabindex="-1"]:focus { outline: none; }
/* A long word (a name without spaces) breaks rather than widening the page. */
main { overflow-wrap: break-word; }
h1 { font-size: 1.6rem; line-height: 1.25; margin: 1.5rem 0 .75rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; }
h3 { font-size: 1rem; margin: 1.25rem 0 .25rem; }
p { margin: .5rem 0; max-width: 48rem; }
pre.try { white-space: pre-wrap; overflow-wrap: anywhere; max-width: 48rem; margin: .5rem 0; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .92em; }
.wrap { max-width: 76rem; margin: 0 auto; padding: 0 1rem; }
.muted { color: var(--muted); }
.sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
.skip { position: absolute; left: .5rem; top: -4rem; background: #fff; color: var(--ink); padding: .5rem .75rem; z-index: 10; border-radius: 4px; }
.skip:focus { top: .5rem; }

/* header */
.top { background: var(--ink); color: #fff; }
.top .wrap { display: flex; flex-wrap: wrap; align-items: center; gap: .25rem 1.25rem; padding-top: .5rem; padding-bottom: .5rem; }
.brand { color: #fff; font-weight: 700; text-decoration: none; font-size: 1.05rem; padding: .4rem 0; }
.brand:hover { color: #e2e8f0; }
.top nav { flex: 1 1 auto; }
.top nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: .25rem 1rem; margin: 0; padding: 0; }
.top nav a { color: #e2e8f0; text-decoration: none; display: inline-block; padding: .4rem 0; border-bottom: 2px solid transparent; }
.top nav a:hover { color: #fff; border-bottom-color: #64748b; }
.top nav a[aria-current="page"] { color: #fff; border-bottom-color: #fff; font-weight: 600; }
.top .who { display: flex; align-items: center; gap: .75rem; font-size: .9rem; color: #cbd5e1; flex-wrap: wrap; }
.top .who form { margin: 0; }
.top .who a { color: #e2e8f0; padding: .4rem 0; }
.top .who a:hover { color: #fff; }
.top .who a[aria-current="page"] { color: #fff; font-weight: 600; }
.top :focus-visible { outline-color: var(--focus); }
.linklike { background: none; border: 0; padding: .4rem 0; color: #e2e8f0; font: inherit; text-decoration: underline; cursor: pointer; min-height: 0; }
.linklike:hover { color: #fff; background: none; }

/* buttons */
button, .button { display: inline-flex; align-items: center; justify-content: center; gap: .4rem; min-height: 44px; padding: .5rem 1rem;
  font: inherit; font-weight: 600; line-height: 1.2; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff;
  cursor: pointer; text-decoration: none; }
button:hover, .button:hover { background: var(--accent-dark); border-color: var(--accent-dark); color: #fff; }
.button.secondary, button.secondary { background: #fff; color: var(--accent); }
.button.secondary:hover, button.secondary:hover { background: var(--soft); color: var(--accent-dark); }
.button.danger, button.danger { background: var(--danger); border-color: var(--danger); }
.button.danger:hover, button.danger:hover { background: #7f1d1d; border-color: #7f1d1d; }
.button.small, button.small { min-height: 36px; padding: .3rem .7rem; font-size: .9rem; }
.actions { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: 1rem 0; }
.actions.tight { margin: 0; }
.actions.tight .inline-form { margin: 0; }

/* forms */
form.stack { max-width: 36rem; }
.field { margin: 0 0 1.1rem; }
label, legend { display: block; font-weight: 600; margin-bottom: .3rem; }
legend { padding: 0; }
.hint { display: block; color: var(--muted); font-size: .9rem; font-weight: 400; margin: .1rem 0 .35rem; }
input[type=text], input[type=email], input[type=password], input[type=search], input[type=date], select { width: 100%; max-width: 28rem; font: inherit; padding: .55rem .65rem;
  border: 1px solid #64748b; border-radius: 6px; background: #fff; color: var(--ink); min-height: 44px; }
input[aria-invalid=true] { border-color: var(--danger); border-width: 2px; }
fieldset { border: 0; padding: 0; margin: 0 0 1.1rem; min-width: 0; }
.choices { display: flex; flex-wrap: wrap; gap: .4rem 1.25rem; }
.choice { display: flex; align-items: center; gap: .45rem; font-weight: 400; margin: 0; min-height: 36px; }
.choice input { width: 1.15rem; height: 1.15rem; margin: 0; accent-color: var(--accent); }
.inline-form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: flex-end; margin: .5rem 0 1rem; }
.inline-form .field { margin: 0; flex: 0 1 28rem; }
/* Level with the form's button, not with the middle of a field and its label: a 24 px line
   padded to the button's 44 px (text stays inline: a flex box would drop its spaces). */
.inline-form p { margin: 0; align-self: flex-end; padding: 10px 0; }
/* A form's refusal, said in the form, on a line of its own above its fields. */
.inline-form > .notice { flex: 1 0 100%; max-width: none; margin: 0; }
/* A form in a table's cell (Lift, Unblock) starts at the cell's padding, level with the row's text. */
table.data td > .inline-form { margin: 0; }

/* notices */
.notice { border-left: 4px solid var(--accent); background: #eff6ff; padding: .75rem 1rem; margin: 1rem 0; border-radius: 0 6px 6px 0; max-width: 48rem; }
.notice > :first-child { margin-top: 0; }
.notice > :last-child { margin-bottom: 0; }
.notice.success { border-color: var(--ok); background: #f0fdf4; }
.notice.error { border-color: var(--danger); background: #fef2f2; }
.notice.warning { border-color: var(--warn); background: #fffbeb; }
.pager { display: flex; gap: 1.5rem; margin: .75rem 0 1.5rem; }
.empty { border: 2px dashed var(--line); border-radius: 8px; padding: 1.25rem; color: var(--muted); max-width: 48rem; }
.empty p { margin: .25rem 0; }

/* the one-time secret */
.secret { border: 2px solid var(--warn); border-radius: 8px; padding: 1rem; background: #fffbeb; max-width: 48rem; }
.secret input { width: 100%; max-width: none; font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .95rem; background: #fff; }
.secret .actions { margin-bottom: 0; }
.copy-status { margin: .25rem 0 0; color: var(--ok); font-weight: 600; }
.copy-status:empty { margin: 0; }

/* tables */
/* position: the visually hidden headers inside stay in the box (absolute, they would widen the page). */
.table-wrap { overflow-x: auto; position: relative; }
table.data { width: 100%; border-collapse: collapse; margin: .5rem 0 1rem; font-size: .95rem; }
table.data caption { text-align: left; font-weight: 600; padding: .25rem 0; }
table.data th, table.data td { text-align: left; padding: .55rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
/* Column headings only: a row's own heading (a chart's day) is ruled like the rest of its row. */
table.data thead th { font-size: .85rem; text-transform: uppercase; letter-spacing: .03em; color: var(--muted); border-bottom-width: 2px; }
table.data td.num, table.data th.num { text-align: right; font-variant-numeric: tabular-nums; }
/* A name of 100 characters without a space wraps in its cell instead of widening the table. */
table.data .key-name { font-weight: 600; display: block; overflow-wrap: anywhere; }
/* So does an account's name, where a table names it. */
table.data .account-name { overflow-wrap: anywhere; }
/* An audit entry's details break at spaces, words whole; only a word no column has room for (.long-word, marked as the details are built: long-words.ts) breaks anywhere. */
table.data td.details .long-word { overflow-wrap: anywhere; }
/* What an audit event did reads on one line, or two ("Joined (set a password)"): an account's name that breaks anywhere
   (200 characters) would otherwise take the room and squeeze the column to its longest word, one word to a line. */
table.data td[data-label="What"] { min-width: 13rem; }
table.data time, code.hint { white-space: nowrap; }
/* An email is not broken at its hyphens (ops-team) by a squeezed column: the table scrolls in its box instead. */
table.data .email { white-space: nowrap; }
table.data td.key-cell { min-width: 14rem; }
.related { display: block; font-size: .85rem; color: var(--muted); }
@media (max-width: 44rem) {
  table.cards thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  table.cards, table.cards tbody, table.cards tr, table.cards td { display: block; width: 100%; }
  table.cards tr { border: 1px solid var(--line); border-radius: 8px; padding: .5rem .75rem; margin-bottom: .75rem; }
  table.cards td { display: grid; grid-template-columns: 7.5rem 1fr; gap: .5rem; border: 0; padding: .3rem 0; }
  table.cards td.num { text-align: left; }
  table.cards td::before { content: attr(data-label); font-weight: 600; color: var(--muted); font-size: .85rem; }
  table.cards td > * { justify-self: start; }
  table.cards td[data-label=""] { grid-template-columns: 1fr; }
  table.cards td[data-label=""]::before { content: none; }
  /* A card is as wide as the phone: an email wraps there only where it does not fit, anywhere rather than past the edge. */
  table.cards .email { white-space: normal; overflow-wrap: anywhere; }
  /* Nor are an audit entry's details squeezed on a card: any word breaks, only where it does not fit. */
  table.cards td.details { overflow-wrap: anywhere; }
  /* A card's line has room: no floor beside the label. */
  table.cards td[data-label="What"] { min-width: 0; }
}

/* facts and badges */
.facts { display: grid; grid-template-columns: repeat(auto-fit, minmax(12rem, 1fr)); gap: .75rem; margin: 1rem 0; padding: 0; }
.facts div { border: 1px solid var(--line); border-radius: 8px; padding: .6rem .8rem; }
.facts dt { font-size: .85rem; color: var(--muted); }
.facts dd { margin: .1rem 0 0; font-weight: 600; }
.badge { display: inline-block; padding: .05rem .55rem; border-radius: 999px; font-size: .82rem; font-weight: 600; white-space: nowrap; border: 1px solid transparent; }
.badge.active, .badge.on { background: #dcfce7; color: #14532d; border-color: #86efac; }
.badge.expiring { background: #fef3c7; color: #78350f; border-color: #fcd34d; }
.badge.revoked, .badge.off, .badge.blocked { background: #fee2e2; color: #7f1d1d; border-color: #fca5a5; }
.badge.expired, .badge.invited, .badge.unbound { background: #e2e8f0; color: #1e293b; border-color: #cbd5e1; }
.badge.live { background: #e0e7ff; color: #1e1b4b; border-color: #a5b4fc; }
.badge.test { background: #fae8ff; color: #4a044e; border-color: #f0abfc; }
.scopes { display: flex; flex-wrap: wrap; gap: .25rem; }
/* "Blocked, ends in under a minute" beside another badge would widen a table past its box at 1280 px (Rotate and Revoke out of view): in a table it wraps. */
table.data .badge.blocked, table.data .badge.blocked time { white-space: normal; }
table.data .badge.blocked { border-radius: .75rem; }

/* meters and charts */
meter { width: 100%; max-width: 14rem; height: 1rem; }
/* The bar and its share in figures, side by side. */
.share { display: flex; align-items: center; gap: .5rem; }
.share meter { flex: 1 1 auto; min-width: 4rem; }
.share span { white-space: nowrap; font-variant-numeric: tabular-nums; }
.charts { display: grid; gap: 1.5rem; grid-template-columns: 1fr; align-items: start; }
@media (min-width: 60rem) { .charts { grid-template-columns: 1fr 1fr; } .charts .wide { grid-column: 1 / -1; } }
figure.chart { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: .75rem 1rem 1rem; min-width: 0; }
figure.chart h3 { margin: 0 0 .5rem; }
.plot { display: grid; grid-template-columns: auto 1fr; gap: 0 .5rem; }
.plot .y { display: flex; flex-direction: column; justify-content: space-between; font-size: .8rem; color: var(--muted); text-align: right; height: 10rem; font-variant-numeric: tabular-nums; }
.plot svg { width: 100%; height: 10rem; display: block; background: linear-gradient(var(--line), var(--line)) bottom / 100% 1px no-repeat; }
/* One equal cell per day, like the bars' slots; a label wider than its cell spills evenly to both sides. */
.plot .x { grid-column: 2; display: grid; grid-auto-flow: column; grid-auto-columns: minmax(0, 1fr); font-size: .8rem; color: var(--muted); padding-top: .25rem; }
.plot .x span { justify-self: center; white-space: nowrap; }
.legend { display: flex; flex-wrap: wrap; gap: .25rem 1rem; list-style: none; padding: 0; margin: .5rem 0 0; font-size: .85rem; }
.legend li { display: flex; align-items: center; gap: .35rem; }
.swatch { width: .8rem; height: .8rem; border-radius: 2px; display: inline-block; }
.s0 { fill: #1d4ed8; background: #1d4ed8; } .s1 { fill: #d97706; background: #d97706; } .s2 { fill: #b91c1c; background: #b91c1c; }
.s3 { fill: #7c3aed; background: #7c3aed; } .s4 { fill: #0f766e; background: #0f766e; } .s5 { fill: #64748b; background: #64748b; }
.plot .grid { stroke: #e2e8f0; stroke-width: 1; }
.hbars { list-style: none; margin: 0; padding: 0; display: grid; gap: .4rem; }
.hbars li { display: grid; grid-template-columns: minmax(7rem, 11rem) 1fr 3.5rem; gap: .5rem; align-items: center; font-size: .9rem; }
.hbars svg { width: 100%; height: 1rem; display: block; }
.hbars .value { text-align: right; font-variant-numeric: tabular-nums; }
.hbars .label { overflow-wrap: anywhere; }
details.numbers { margin-top: .5rem; font-size: .9rem; }
details.numbers summary { cursor: pointer; color: var(--accent); padding: .25rem 0; }
.chart-empty { color: var(--muted); margin: .5rem 0; }
footer.foot { margin: 3rem 0 1.5rem; color: var(--muted); font-size: .85rem; }
`;

export const SCRIPT = `
'use strict';
// Copy buttons start hidden: without this script the secret is still selectable text.
for (const button of document.querySelectorAll('button[data-copy]')) {
  const field = document.getElementById(button.dataset.copy);
  const status = document.getElementById(button.dataset.copy + '-status');
  if (!field) continue;
  button.hidden = false;
  button.addEventListener('click', async () => {
    let copied = false;
    try {
      await navigator.clipboard.writeText(field.value);
      copied = true;
    } catch {
      field.focus();
      field.select();
      copied = document.execCommand && document.execCommand('copy');
    }
    if (status) status.textContent = copied ? 'Copied to the clipboard.' : 'Could not copy: select the key and copy it yourself.';
  });
}
for (const field of document.querySelectorAll('input[data-select-on-focus]')) {
  field.addEventListener('focus', () => field.select());
}
// A table wider than the window scrolls sideways in its box: the box then takes the
// keyboard focus (arrow keys scroll it) and is named after its table (its caption, or
// the heading that names it). One that fits is no tab stop.
const tableBoxes = document.querySelectorAll('.table-wrap');
function markScrollingTables() {
  for (const box of tableBoxes) {
    if (box.scrollWidth > box.clientWidth + 1) {
      box.tabIndex = 0;
      box.setAttribute('role', 'region');
      const table = box.querySelector('table');
      const labelledBy = table && table.getAttribute('aria-labelledby');
      const namer = (table && table.caption) || (labelledBy && document.getElementById(labelledBy));
      box.setAttribute('aria-label', (namer && namer.textContent.trim()) || 'Table');
    } else if (box.hasAttribute('tabindex')) {
      box.removeAttribute('tabindex');
      box.removeAttribute('role');
      box.removeAttribute('aria-label');
    }
  }
}
if (tableBoxes.length > 0) {
  markScrollingTables();
  window.addEventListener('resize', markScrollingTables);
  for (const details of document.querySelectorAll('details')) details.addEventListener('toggle', markScrollingTables);
}
`;

const version = createHash('sha256').update(STYLESHEET).update(SCRIPT).digest('hex').slice(0, 10);
export const STYLESHEET_PATH = `/assets/dashboard.css?v=${version}`;
export const SCRIPT_PATH = `/assets/dashboard.js?v=${version}`;
