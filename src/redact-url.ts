/**
 * A URL as messages and logs may show it: apart from the store it is most used for
 * (store/open.ts), so that what judges a profile alone (config/servable.ts, `keygate
 * check`) loads no database driver to say a URL.
 */

/** A URL with its password replaced, for messages and logs (store, counters, upstream). */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    // Redis also takes it as a parameter (counters: redis://host?password=...).
    // Masked in the query as written: searchParams.set would encode every other parameter
    // anew (prefix=kg: shown as prefix=kg%3A). A name written encoded is masked that way.
    if (parsed.searchParams.has('password')) {
      parsed.search = parsed.search.replace(/([?&])password=[^&]*/g, '$1password=***');
      if (parsed.searchParams.getAll('password').some((value) => value !== '***')) parsed.searchParams.set('password', '***');
    }
    return parsed.toString();
  } catch {
    return url;
  }
}
