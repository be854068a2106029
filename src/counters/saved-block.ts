/**
 * A rate-limit block as the store keeps it (`limit_state`, kind `block`): the same JSON
 * from both backends, so a store's blocks mean the same to memory and to Redis counters.
 */
import { z } from 'zod';

/** JSON has no -Infinity: a subject never blocked has `lastBlockEnd: null`. */
export const SavedBlock = z.object({
  /** Refusals (ms) that count toward the next block. */
  violations: z.array(z.number()),
  /** When the block ends (ms; 0 or past: none in force). */
  blockedUntil: z.number(),
  /** How many blocks in a row (0 = none yet): the next one lasts duration·factor^level. */
  level: z.number().int(),
  lastBlockEnd: z.number().nullable(),
});

export type SavedBlock = z.infer<typeof SavedBlock>;

/** The block a row's `state` holds, or undefined when it is not one (not JSON, or written by something else). */
export function readSavedBlock(state: string): SavedBlock | undefined {
  let value: unknown;
  try {
    value = JSON.parse(state);
  } catch {
    return undefined;
  }
  const parsed = SavedBlock.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}
