/**
 * Keeps the hidden class of Node's `process.nextTick` queue entries alive for the life of
 * the process, so that V8 does not fall back to its slow path for every `nextTick` (and a
 * proxy calls `nextTick` several times per request: streams, sockets, HTTP).
 *
 * Node builds each entry as an object literal that begins with computed keys
 * (`{ [async_id_symbol]: …, [trigger_async_id_symbol]: …, callback, args }`, with one more
 * field in newer releases). Such a literal gets its hidden classes (V8's "maps") by
 * transition from a shared root, and nothing but the objects themselves keeps those maps
 * alive. Entries live for one tick: when a full garbage collection finds none alive, the
 * maps die, the next entry gets new ones, and the inline caches that define its fields
 * meet another map. Soon (after one such loss, in some runs) they turn megamorphic for
 * good, and from then on every `nextTick` defines its entry's fields through V8's
 * runtime. A gateway, with a larger heap than a bare proxy, has full collections often
 * enough to get there under load: in the bench, 2 of 6 fresh processes did within
 * 170,000 requests and answered 9–15% fewer (bench/README.md, "The nextTick slow mode").
 *
 * Holding one real entry keeps its maps. It is taken with public API only: inside a
 * nextTick callback, `executionAsyncResource()` is that callback's entry. No async hook
 * is installed (one would turn on V8's promise hooks for the rest of the process). Call
 * it as early as possible: once the maps have been lost, holding the new ones comes too
 * late for caches already megamorphic. The CLI and the library's entry point call it
 * when they load; the gateway again (a no-op then).
 */
import { executionAsyncResource } from 'node:async_hooks';

let asked = false;
let kept: object | undefined;

/** Keeps, once per process, the next nextTick entry (taken in its own callback). */
export function keepTickObjectShape(): void {
  if (asked) return;
  asked = true;
  process.nextTick(keepOwnEntry);
}

function keepOwnEntry(): void {
  const entry = executionAsyncResource() as { callback?: unknown };
  // A Node that runs callbacks otherwise hands over another resource: nothing is kept.
  if (entry.callback === keepOwnEntry) kept = entry;
}

/** Whether an entry is held (for tests). */
export function tickObjectShapeKept(): boolean {
  return kept !== undefined;
}
