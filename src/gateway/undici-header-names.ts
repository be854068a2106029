/**
 * Tells undici that the header names keygate adds to every forwarded request are valid.
 *
 * undici checks each request header's name on every request: one in its table of common
 * names (`headerNameLowerCasedRecord`, internal to undici's lib/core/constants.js) is
 * taken as it is; any other is lower-cased, looked up again and matched against the
 * token grammar. keygate's own names (the identity headers, X-Forwarded-*) are the same
 * on every request, so they are checked here once, at start-up, and entered in that
 * table, each as its own lower-case form: the very answer undici would compute. Values
 * are still checked by undici per request, as are all the client's headers.
 *
 * In the bench this saves ≈7,700 of ≈173,000 instructions per forwarded request
 * (`node bench/instructions.js c`). The table is not public API: if an undici release
 * moves or reshapes it, nothing is entered and every request is checked in full again
 * (only slower), which `knownToUndici` lets a test see.
 */
import { createRequire } from 'node:module';

/** RFC 9110 token characters, lower case only (the table maps lower-case names to themselves). */
const LOWER_CASE_TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

type NameTable = Record<string, string | undefined>;

let table: NameTable | null | undefined;

/** undici's table of names it takes unchecked, if it is where and what it has been. */
function undiciNameTable(): NameTable | null {
  if (table !== undefined) return table;
  table = null;
  try {
    const constants = createRequire(import.meta.url)('undici/lib/core/constants.js') as { headerNameLowerCasedRecord?: unknown };
    const candidate = constants.headerNameLowerCasedRecord as NameTable | undefined;
    // The shape it has had since undici 6: a common name maps to its lower-case form.
    if (typeof candidate === 'object' && candidate !== null && candidate['content-type'] === 'content-type' && candidate['Content-Type'] === 'content-type') table = candidate;
  } catch {
    // Not there in this undici: every name is checked per request, as for any client header.
  }
  return table;
}

/**
 * Enters `names` in undici's table, where each is a lower-case token; a name that is not
 * (none of keygate's can be: the identity prefix is checked by the config schema) is
 * left to undici's check per request. Returns the names entered.
 */
export function declareHeaderNames(names: Iterable<string>): string[] {
  const known = undiciNameTable();
  if (!known) return [];
  const entered: string[] = [];
  for (const name of names) {
    if (!LOWER_CASE_TOKEN.test(name)) continue;
    if (known[name] === undefined) known[name] = name;
    if (known[name] === name) entered.push(name);
  }
  return entered;
}

/** Whether undici takes `name` without checking it per request (for tests). */
export function knownToUndici(name: string): boolean {
  return undiciNameTable()?.[name] === name;
}
