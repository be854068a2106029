/**
 * fast-check's run settings for the fuzz suite. Each local run draws a new seed (new
 * inputs every time the suite runs); with CI=true the seed is fixed (CI_SEED), so that
 * a CI run is repeatable and fails only where keygate changed, unless FUZZ_SEED says
 * otherwise (FUZZ_SEED=random draws one there too). A failure prints its seed and path, and
 *
 *   FUZZ_SEED=<seed> FUZZ_PATH=<path> npx vitest run test/fuzz/<file> -t '<test name>'
 *
 * replays exactly that counterexample (the path says which shrunk case; `-t` picks the
 * one property it belongs to, as a path only means something to its own property).
 */
import type { Parameters } from 'fast-check';

/** The seed of CI runs (any number would do: it only has to stay the same). */
const CI_SEED = 20261205;

export function fuzzSettings<T>(settings: { numRuns: number }): Parameters<T> {
  const given = process.env.FUZZ_SEED;
  const seed = given === 'random' ? undefined : given || (process.env.CI === 'true' ? String(CI_SEED) : undefined);
  const path = process.env.FUZZ_PATH;
  return {
    ...settings,
    ...(seed ? { seed: Number(seed) } : {}),
    ...(path ? { path, endOnFailure: true } : {}),
    // The counterexample's shrinking steps too, so the report says how it got there.
    verbose: 1,
  };
}
