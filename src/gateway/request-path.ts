/**
 * The path a request is judged by must be the path the upstream receives. Routes are
 * matched on the raw path, but URL parsing downstream turns `\` into `/` and resolves
 * `.`/`..` segments (also percent-encoded ones), so `/v1/projects/x\..\..\admin` would be
 * judged as one route and served as another. Any path that a URL parser would rewrite is
 * therefore refused, and so is one with `//`, which many servers merge, and one with an
 * encoded `/`, `\` or control character, which servers that decode the path first read
 * as another path.
 */

import { METHODS } from 'node:http';
import { escapedByte } from './percent.js';
import { isHostValue } from '../host-value.js';

/** Characters or sequences after which a URL parser may rewrite the path. */
const MAYBE_REWRITTEN = /[\\%]|\/\./;
/**
 * Path parameters (`/admin;x/users`): servlet containers and some routers drop them,
 * so the path served is not the path judged.
 */
const PATH_PARAMETER = ';';
/** `;` as a byte: encoded (`%3B`), it is a path parameter to an upstream that decodes first. */
const SEMICOLON = 0x3b;
/** A `.` or `..` segment, which a decoded path would resolve. */
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;

const BASE = 'http://keygate.invalid';

/** Whether `path` reaches the upstream byte for byte as it was matched. */
export function isCanonicalPath(path: string): boolean {
  if (!path.startsWith('/')) return false;
  // Kept by URL parsers, but merged by many servers (nginx by default): `/v1//admin` would
  // be judged as `/v1/*` and served as `/v1/admin`.
  if (path.includes('//')) return false;
  if (path.includes(PATH_PARAMETER)) return false;
  if (!MAYBE_REWRITTEN.test(path)) return true;
  if (path.includes('%') && decodesToAnotherPath(path)) return false;
  try {
    return new URL(path, BASE).pathname === path;
  } catch {
    return false;
  }
}

/**
 * Whether `path`, decoded, could be read as another path than the one routes match (on
 * the path decoded once). What it must not decode to: `/` or `\` (URL parsers and
 * keygate's router leave `%2F` encoded, so `/v1/admin%2Fusers` matches `/v1/*`, but an
 * upstream that decodes the path before routing it — Flask/Werkzeug, some Go and PHP
 * routers, a proxy in between — serves `/v1/admin/users`); `;` (a path parameter to
 * such an upstream, refused as the literal `;` is); a control character (C0, DEL,
 * or C1 as UTF-8: a decoded NUL cuts a path short in C code); a dot segment; or an escape
 * of an ASCII character: a path encoded twice (`/v1/%2561dmin` is matched as
 * `/v1/%61dmin`, and served as `/v1/admin` by an upstream that decodes twice; `%252F`
 * likewise). A `%25` that decodes to no escape, or to one of a byte over 0x7F, is a plain
 * `%` (`/q/100%25`, `/q/%25off`, `/keywords/100%25Beef`): no route is written with those
 * bytes. One scan, and one of the `%`s left.
 */
function decodesToAnotherPath(path: string): boolean {
  let decoded = '';
  let previous = -1;
  for (let i = 0; i < path.length; i++) {
    const byte = escapedByte(path, i);
    if (byte === -1) {
      decoded += path[i];
      previous = -1;
      continue;
    }
    if (byte === 0x2f || byte === 0x5c || byte === SEMICOLON || byte < 0x20 || byte === 0x7f || (previous === 0xc2 && byte >= 0x80 && byte <= 0x9f)) return true;
    decoded += String.fromCharCode(byte);
    previous = byte;
    i += 2;
  }
  return DOT_SEGMENT.test(decoded) || hasAsciiEscape(decoded);
}

/**
 * An escape of an ASCII character, or of a C1 control character in UTF-8 (`%C2%85`): what
 * an upstream decoding twice would read as another path, or cut short.
 */
function hasAsciiEscape(text: string): boolean {
  for (let i = text.indexOf('%'); i !== -1; i = text.indexOf('%', i + 1)) {
    const byte = escapedByte(text, i);
    if (byte !== -1 && byte < 0x80) return true;
    if (byte === 0xc2) {
      const next = escapedByte(text, i + 3);
      if (next >= 0x80 && next <= 0x9f) return true;
    }
  }
  return false;
}

const SLASH = 0x2f;
/**
 * Everything the fragment check and isCanonicalPath look for (`#`, `\`, `%`, `;`, `/.`,
 * `//`) and a control character, anywhere in the target: a target that begins with `/`
 * and has none of them is judged by this one test, the usual case.
 */
const MAYBE_ODD_TARGET = /[#\\%;\x00-\x1f\x7f]|\/[./]/;
/**
 * A C0 control character or DEL, which no request line carries (Node's parser refuses
 * them before the gateway sees the request); a backend may hand the library or POST
 * /v1/check a target with one (`/v1/rows\r\nX-Injected: 1`), decoded or forged.
 */
export const CONTROL = /[\x00-\x1f\x7f]/;
/**
 * Anything but the visible ASCII characters (`!` to `~`), the only bytes Node's parser
 * takes in a request target: a space, a control character, or a character outside ASCII
 * is answered 400 before the gateway sees the request. So the gateway never judges one;
 * a backend may hand the library or POST /v1/check a target decoded (`/v1/ünïcode`,
 * `?q=a b`) or read by a more lenient server, which `requestChecker` refuses first.
 */
export const NOT_IN_REQUEST_LINE = /[^!-~]/;
/**
 * The methods Node's HTTP parser reads (`http.METHODS`), each in upper case, as they must
 * be sent: any other (`FOO`, or `get` in lower case) is answered 400 before the gateway
 * sees the request. A backend more lenient than Node may hand one to the library or POST
 * /v1/check, which `requestChecker` refuses first.
 */
const REQUEST_LINE_METHODS: ReadonlySet<string> = new Set(METHODS);

/** Whether `method` is one Node's parser reads in a request line, as it is written (case-sensitive). */
export function isRequestLineMethod(method: string): boolean {
  return REQUEST_LINE_METHODS.has(method);
}

/** The scheme and authority of an absolute-form target (`http://host:port`). */
const ABSOLUTE_FORM = /^https?:\/\/[^/?#]*/i;

/**
 * A request target as keygate judges and forwards it, or why it is refused before any
 * key is read; `url` is in origin form (but for an absolute form with `user:password@`,
 * refused as it is: the access log masks its userinfo). `authority` is the host (and
 * port) an absolute form names, which stands in for the Host header (RFC 9112 §3.2.2).
 */
export type Target = { ok: true; url: string; path: string; authority: string | undefined } | { ok: false; url: string; reason: 'bad_request' | 'no_route' };

/**
 * Checks a request target before the pipeline, for the gateway and the library alike:
 * the absolute form (`GET http://host/path`, which a server must accept) becomes its
 * path and query; a path a URL parser or the upstream could read as another path, and a
 * target with a control character in it, are `bad_request`; a path outside `basePath` is
 * `no_route`. With `caseSensitive` false (upstream.caseSensitivePaths) `basePath` is
 * compared ignoring case, as routes are matched then: `/V1/items` is under `/v1`, and
 * keeps its letters as sent (`url`, `path`).
 */
export function judgeTarget(rawUrl: string, basePath: string, caseSensitive = true): Target {
  let url = rawUrl;
  let authority: string | undefined;
  if (rawUrl.charCodeAt(0) !== SLASH) {
    const absolute = ABSOLUTE_FORM.exec(rawUrl);
    if (absolute) {
      authority = absolute[0].slice(absolute[0].indexOf('//') + 2);
      // `user:password@` in an absolute form is an error (RFC 9110 §4.2.4): it is no credential
      // keygate reads, and nothing an upstream should be asked about. Nor is a target without
      // a host (`http:///v1`, §4.2.1), or with one that Host could not carry.
      if (authority.includes('@') || !isHostValue(authority)) return { ok: false, url: rawUrl, reason: 'bad_request' };
      const rest = rawUrl.slice(absolute[0].length);
      url = rest.startsWith('/') ? rest : `/${rest}`;
    }
  }
  const plain = url.charCodeAt(0) === SLASH && !MAYBE_ODD_TARGET.test(url);
  if (!plain && CONTROL.test(url)) return { ok: false, url, reason: 'bad_request' };
  // No request target has a fragment (RFC 9112 §3.2): routes would match the path before
  // `#`, and an upstream read what follows as its own.
  if (!plain && url.includes('#')) return { ok: false, url, reason: 'bad_request' };
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  if (!plain && !isCanonicalPath(path)) return { ok: false, url, reason: 'bad_request' };
  if (basePath !== '' && !isUnder(path, basePath, caseSensitive)) return { ok: false, url, reason: 'no_route' };
  return { ok: true, url, path, authority };
}

/** Whether `path` is `basePath` or below it; with `caseSensitive` false, in any case of its letters. */
function isUnder(path: string, basePath: string, caseSensitive: boolean): boolean {
  const n = basePath.length;
  if (path.length < n || (path.length > n && path.charCodeAt(n) !== SLASH)) return false;
  if (path.startsWith(basePath)) return true;
  return !caseSensitive && path.slice(0, n).toLowerCase() === basePath.toLowerCase();
}

/** `basePath` as `judgeTarget` takes it: no trailing slash, '' for none. */
export function normalBasePath(basePath: string): string {
  return basePath.replace(/\/$/, '');
}
