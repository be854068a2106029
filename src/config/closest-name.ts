/**
 * "Did you mean": the known name a mistyped one most likely meant, for refusals that name
 * something the profile does not have (a field, a meter). Only names keygate knows are
 * offered, never the value typed: a suggestion cannot echo a secret pasted in the wrong place.
 *
 * @example
 *   didYouMean('unit', ['units', 'credits']) // → ' (did you mean "units"?)'
 */
import { distance as editDistance } from 'fastest-levenshtein';

/**
 * The known name a mistyped one most likely meant: differing only in case, or a few edits
 * away (two at most, and fewer than half its letters: `zz` is no typo of `in`).
 */
export function closestName(name: string, known: Iterable<string>): string | undefined {
  const most = Math.min(2, Math.floor(name.length / 2));
  let best: { name: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = candidate.toLowerCase() === name.toLowerCase() ? 0 : editDistance(name, candidate);
    if (distance <= most && (!best || distance < best.distance)) best = { name: candidate, distance };
  }
  return best?.name;
}

/** ` (did you mean "<name>"?)` for the known name `name` most likely meant, or '' where none is near. */
export function didYouMean(name: string, known: Iterable<string>): string {
  return meant(closestName(name, known));
}

/** ` (did you mean "<near>"?)`, or '' where none is near: for a refusal that carries the name found (closestName) to word it. */
export function meant(near: string | undefined): string {
  return near === undefined ? '' : ` (did you mean "${near}"?)`;
}
