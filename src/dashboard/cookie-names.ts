/**
 * The dashboard's cookies. A browser sends a host's cookies to every port of it, so a
 * member signed in to the dashboard sends them to the gateway too, on the same host:
 * the gateway never forwards them (src/gateway/forward.ts), or a session would end up
 * in the upstream's logs.
 */
export const DASHBOARD_COOKIES = {
  session: 'kg_session',
  /** The session's name with `dashboard.secureCookies` on. */
  secureSession: '__Host-kg_session',
  /** The CSRF secret of forms shown before sign-in. */
  form: 'kg_form',
  secureForm: '__Host-kg_form',
  /** A notice shown once after a redirect. */
  notice: 'kg_notice',
} as const;

const NAMES: ReadonlySet<string> = new Set(Object.values(DASHBOARD_COOKIES));

/** What all the names share: a Cookie header without it holds none of them (no parsing then). */
const MARK = 'kg_';

/** A Cookie header without the dashboard's cookies (the others as sent); undefined if none is left. */
export function withoutDashboardCookies(header: string): string | undefined {
  if (!header.includes(MARK)) return header;
  const pairs = header.split(';');
  const kept = pairs.filter((pair) => {
    const eq = pair.indexOf('=');
    return !NAMES.has((eq === -1 ? pair : pair.slice(0, eq)).trim());
  });
  // None of them: the header as sent, byte for byte.
  if (kept.length === pairs.length) return header;
  const joined = kept.map((pair) => pair.trim()).filter((pair) => pair !== '').join('; ');
  return joined === '' ? undefined : joined;
}
