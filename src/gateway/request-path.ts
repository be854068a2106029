/**
 * The path a request is judged by must be the path the upstream receives. Routes are
 * matched on the raw path, but URL parsing downstream turns `\` into `/` and resolves
 * `.`/`..` segments (also percent-encoded ones), so `/v1/projects/x\..\..\admin` would be
 * judged as one route and served as another. Any path that a URL parser would rewrite is
 * therefore refused, and so is one with `//`, which many servers merge.
 */

/** Characters or sequences after which a URL parser may rewrite the path. */
const MAYBE_REWRITTEN = /[\\%]|\/\./;
const BASE = 'http://keygate.invalid';

/** Whether `path` reaches the upstream byte for byte as it was matched. */
export function isCanonicalPath(path: string): boolean {
  if (!path.startsWith('/')) return false;
  // Kept by URL parsers, but merged by many servers (nginx by default): `/v1//admin` would
  // be judged as `/v1/*` and served as `/v1/admin`.
  if (path.includes('//')) return false;
  if (!MAYBE_REWRITTEN.test(path)) return true;
  try {
    return new URL(path, BASE).pathname === path;
  } catch {
    return false;
  }
}
