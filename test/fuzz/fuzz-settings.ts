/**
 * fast-check's run settings for the fuzz suite. Each run draws a new seed (new inputs
 * every time the suite runs); a failure prints its seed and path, and
 *
 *   FUZZ_SEED=<seed> FUZZ_PATH=<path> npx vitest run test/fuzz/<file> -t '<test name>'
 *
 * replays exactly that counterexample (the path says which shrunk case; `-t` picks the
 * one property it belongs to, as a path only means something to its own property).
 */
import type { Parameters } from 'fast-check';

export function fuzzSettings<T>(settings: { numRuns: number }): Parameters<T> {
  const seed = process.env.FUZZ_SEED;
  const path = process.env.FUZZ_PATH;
  return {
    ...settings,
    ...(seed ? { seed: Number(seed) } : {}),
    ...(path ? { path, endOnFailure: true } : {}),
    // The counterexample's shrinking steps too, so the report says how it got there.
    verbose: 1,
  };
}
