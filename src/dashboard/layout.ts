/**
 * The page shell: document head, the header with navigation and sign-out, the one-shot
 * notice, and the page body. Every HTML answer goes through `sendPage`, which also sets
 * `Cache-Control: no-store` (pages show account data, some show a secret once).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SCRIPT_PATH, STYLESHEET_PATH } from './assets.js';
import { csrfField, takeNotice, type Dashboard, type Notice } from './context.js';
import { html, raw, type Html } from './html.js';

export interface PageOptions {
  /** The page's own name; the document title adds the API's (`title` in the profile). */
  title: string;
  body: Html;
  status?: number;
  /** Shown above the body (in addition to any notice carried by a redirect). */
  notice?: Notice;
}

interface NavItem {
  href: string;
  label: string;
}

function navItems(request: FastifyRequest): NavItem[] {
  const viewer = request.viewer;
  if (!viewer) return [];
  const items: NavItem[] = [];
  if (viewer.account) items.push({ href: '/keys', label: 'API keys' }, { href: '/usage', label: 'Usage' });
  if (viewer.member.role === 'operator') items.push({ href: '/accounts', label: 'Accounts' }, { href: '/audit', label: 'Audit log' }, { href: '/address-blocks', label: 'Address blocks' });
  return items;
}

function isCurrent(path: string, href: string): boolean {
  return path === href || path.startsWith(`${href}/`);
}

/** Where a confirmation page's form goes, its CSRF field, and where Cancel leads. */
export interface ConfirmationTarget {
  action: string;
  cancel: string;
  form: Html;
}

/**
 * A confirmation page's heading, the question it asks, taking the focus as the page opens
 * (autofocus, no script needed), as other forms focus their first field: a keyboard or
 * screen-reader user starts at the question, not at the top of the page, with the form a
 * Tab away. Not the confirm button itself: Enter would then do what the page asks unread.
 */
export function confirmationHeading(question: Html): Html {
  return html`<h1 tabindex="-1" autofocus>${question}</h1>`;
}

/** A confirmation page's form: the irreversible action's button, and Cancel. */
export function confirmationForm(target: ConfirmationTarget, label: string): Html {
  return html`<form method="post" action="${target.action}" class="actions">
  ${target.form}
  <button type="submit" class="danger">${label}</button>
  <a class="button secondary" href="${target.cancel}">Cancel</a>
</form>`;
}

export function noticeBox(notice: Notice | undefined): Html {
  if (!notice) return html``;
  // Errors interrupt (alert); confirmations are announced politely (status).
  const role = notice.kind === 'error' ? 'alert' : 'status';
  return html`<div class="notice ${notice.kind}" role="${role}"><p>${noticeText(notice)}</p></div>`;
}

/** A notice's words, its `code` parts in <code>; a part not found (in order) is left as text. */
function noticeText({ text, code = [] }: Notice): Html[] {
  const parts: Html[] = [];
  let from = 0;
  for (const literal of code) {
    const at = literal === '' ? -1 : text.indexOf(literal, from);
    if (at === -1) continue;
    parts.push(html`${text.slice(from, at)}<code>${literal}</code>`);
    from = at + literal.length;
  }
  parts.push(html`${text.slice(from)}`);
  return parts;
}

function header(dash: Dashboard, request: FastifyRequest): Html {
  const viewer = request.viewer;
  const path = request.url.split('?')[0] ?? '/';
  const items = navItems(request);
  const who = viewer
    ? html`<div class="who">
        <span>${viewer.member.email}${viewer.account ? html` · ${viewer.account.name}` : ''}${viewer.member.role === 'operator' ? ' · operator' : ''}</span>
        <a href="/password"${isCurrent(path, '/password') ? html` aria-current="page"` : ''}>Change password</a>
        <form method="post" action="/sign-out">${csrfField(request)}<button type="submit" class="linklike">Sign out</button></form>
      </div>`
    : html``;
  return html`<header class="top">
  <div class="wrap">
    <a class="brand" href="/">${dash.rt.config.title}</a>
    ${items.length > 0
      ? html`<nav aria-label="Main"><ul>${items.map(
          (item) => html`<li><a href="${item.href}"${isCurrent(path, item.href) ? html` aria-current="page"` : ''}>${item.label}</a></li>`,
        )}</ul></nav>`
      : html`<span></span>`}
    ${who}
  </div>
</header>`;
}

/** Notices go right under the page's heading, where the eye lands after reading it. */
function withNotices(body: Html, notices: Html): Html {
  const end = body.value.indexOf('</h1>');
  if (end === -1) return raw(notices.value + body.value);
  const at = end + '</h1>'.length;
  return raw(body.value.slice(0, at) + notices.value + body.value.slice(at));
}

export function renderDocument(dash: Dashboard, request: FastifyRequest, options: PageOptions & { carried?: Notice }): Html {
  const body = withNotices(options.body, html`${noticeBox(options.carried)}${noticeBox(options.notice)}`);
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${options.title} · ${dash.rt.config.title}</title>
<link rel="stylesheet" href="${STYLESHEET_PATH}">
<script src="${SCRIPT_PATH}" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
${header(dash, request)}
<main id="main" class="wrap" tabindex="-1">
${body}
<footer class="foot">${dash.rt.config.title} · API keys and usage</footer>
</main>
</body>
</html>
`;
}

export function sendPage(dash: Dashboard, request: FastifyRequest, reply: FastifyReply, options: PageOptions): FastifyReply {
  const carried = takeNotice(dash, request, reply);
  const page = renderDocument(dash, request, { ...options, ...(carried ? { carried } : {}) });
  return reply
    .code(options.status ?? 200)
    .header('cache-control', 'no-store')
    .type('text/html; charset=utf-8')
    .send(page.value);
}
