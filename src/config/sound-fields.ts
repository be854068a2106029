/**
 * Which fields of a profile a check between its sections may read: those with no problem
 * of their own. zod runs an object's refinements only while none of its fields has failed
 * to parse, so a profile with one mistyped value had its checks between sections (a
 * route's meter against the plans, a port shared by two listeners) said only once that
 * value was fixed: a second round. Each such check names the fields it reads instead, and
 * runs whenever those are sound, whatever else is wrong, so that what it finds is never
 * only a consequence of a problem already reported.
 */
import type { z } from 'zod';

/** Every entry of a mapping of names (plans, meters) or of a list (routes), in a field path. */
export const EACH = Symbol('each');

/**
 * A field a check reads, as a path from the profile's top level: `['routes', EACH, 'cost',
 * 'meter']`. A path that ends in EACH reads the names of the entries (a list's length), not
 * what they hold.
 */
export type FieldPath = readonly (string | typeof EACH)[];

/** A problem as the schema has found it so far (paths relative to the profile). */
type FoundIssue = z.core.$ZodRawIssue;

/**
 * Whether a check reading `fields` must not run, given the problems found so far:
 * - a problem on the way to a field read, or at it, or inside it (a plan that is no mapping,
 *   a meter name that is no name, a meter's kind that is none of the kinds): the value read
 *   is not what the profile meant. Not so for a problem inside an entry of a path ending
 *   in EACH (a bad limit does not unmake meter `units`), nor for a refinement of a whole
 *   mapping on the way (a route's cost with both perRequest and perRecord): the fields
 *   read stand as written.
 * - a field of a name the schema does not know (`meterz`), in a mapping on the way to a
 *   field read that the mapping lacks: it may be that very field, misspelled, and the
 *   check would see the default instead (no meters) and report what follows from it.
 *   Where the mapping has the field read, the unknown one is something else, and the
 *   check runs (as it did before: a misspelled `apiAcess` beside a route's unknown meter,
 *   both said).
 */
export function unsoundRead(issues: readonly FoundIssue[], fields: readonly FieldPath[]): boolean {
  return issues.some((issue) => fields.some((read) => spoils(issue, read)));
}

function spoils(issue: FoundIssue, read: FieldPath): boolean {
  const at = issue.path ?? [];
  const shared = Math.min(at.length, read.length);
  for (let i = 0; i < shared; i++) if (read[i] !== EACH && read[i] !== at[i]) return false;
  const namesOnly = read[read.length - 1] === EACH;
  if (issue.code === 'unrecognized_keys') {
    // In a mapping on the way: spoiled if the next field read is missing there (or is any entry: no such mapping has unknown fields, but then none can be ruled out).
    if (at.length < read.length) {
      const next = read[at.length];
      const mapping = issue.input;
      return next === EACH || mapping === null || typeof mapping !== 'object' || !Object.hasOwn(mapping, next as string);
    }
    // In the value read (or inside one of the entries whose names are read).
    return !namesOnly;
  }
  // On the way, a refinement of a mapping as a whole ("give exactly one of perRequest or
  // perRecord") leaves the fields in it as written; one of the entries read is about them
  // ("at least one plan"), and a check of their names would say it again.
  if (at.length < read.length) return issue.continue !== true || read[at.length] === EACH;
  return at.length === read.length || !namesOnly;
}

/** A problem's params that say which fields the check that found it read. */
export function withReads(reads: readonly FieldPath[]): { reads: readonly FieldPath[] } {
  return { reads };
}

/** The fields read by the check between sections that found `issue`; undefined for a section's own problem. */
export function readsOf(issue: z.core.$ZodIssue): readonly FieldPath[] | undefined {
  return issue.code === 'custom' ? (issue.params as { reads?: readonly FieldPath[] } | undefined)?.reads : undefined;
}

/**
 * Whether a problem found between sections read one of `fields` (or a field inside one):
 * fields the file gives twice, whose value is either of the two.
 */
export function readAny(reads: readonly FieldPath[], fields: readonly (readonly PropertyKey[])[]): boolean {
  return unsoundRead(
    fields.map((at) => ({ code: 'custom', path: [...at], input: undefined, message: '' })),
    reads,
  );
}

/**
 * zod's `when` for a refinement of one mapping that reads `fields` of it (paths from that
 * mapping): it runs whenever they are sound, whatever else in the mapping is wrong (zod
 * would skip it for any field that failed to parse).
 */
export function whenSound(...fields: FieldPath[]): { when: (payload: z.core.ParsePayload) => boolean } {
  return { when: (payload) => !unsoundRead(payload.issues, fields) };
}
