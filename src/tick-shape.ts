/**
 * Keeps the hidden class of Node's `process.nextTick` queue entries alive for the life of
 * the process, so that V8 does not fall back to its slow path for every `nextTick` (and a
 * proxy calls `nextTick` several times per request: streams, sockets, HTTP).
 *
 * Node builds each entry as `{ [async_id_symbol]: …, [trigger_async_id_symbol]: …,
 * callback, args }`. An object literal that begins with a computed key gets its hidden
 * classes (V8's "maps") by transition from a shared root, and nothing but the objects
 * themselves keeps those maps alive. Entries live for one tick: when a full garbage
 * collection finds none alive, the maps die, the next entry gets new ones, and the inline
 * cache of nextTick's second field meets another map. After four it turns megamorphic for
 * good, and from then on every `nextTick` defines its entry's fields through V8's runtime.
 * A gateway, with a larger heap than a bare proxy, has full collections often enough to
 * get there in its first minute of load in most runs: it then answered 7–13% fewer
 * requests (bench/README.md, "The nextTick slow mode"). Holding one object of the same
 * shape keeps the maps, and the cache stays monomorphic.
 *
 * The two symbols are Node's own, read from an `AsyncResource` (public API), which carries
 * the same ones. If a Node release names or builds them otherwise, nothing is kept.
 */
import { AsyncResource } from 'node:async_hooks';

let kept: object | undefined;

/** Builds, once per process, the object that holds the shape of nextTick's queue entries. */
export function keepTickObjectShape(): void {
  if (kept !== undefined) return;
  const resource = new AsyncResource('keygate');
  const symbols = Object.getOwnPropertySymbols(resource);
  const asyncId = symbols.find((symbol) => symbol.description === 'async_id_symbol');
  const triggerAsyncId = symbols.find((symbol) => symbol.description === 'trigger_async_id_symbol');
  if (asyncId === undefined || triggerAsyncId === undefined) {
    kept = {};
    return;
  }
  const ids = resource as unknown as Record<symbol, number>;
  // The same keys in the same order, with values of the same kinds, as Node's literal.
  kept = { [asyncId]: ids[asyncId], [triggerAsyncId]: ids[triggerAsyncId], callback: keepTickObjectShape, args: undefined };
}
