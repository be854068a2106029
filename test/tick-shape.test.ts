/**
 * nextTick's queue entries lose their hidden class at every full garbage collection that
 * finds none alive; after four, V8 defines every later entry's fields through its runtime
 * (src/tick-shape.ts). keepTickObjectShape holds the class. Checked in a child process with
 * V8's own view of nextTick's inline caches (`%DebugPrint`, needs --allow-natives-syntax),
 * against the same run without it, which shows the slow path is still there to avoid.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const CHILD = fileURLToPath(new URL('./support/tick-shape-child.mjs', import.meta.url));

/** The states of the inline caches that define nextTick's entry fields, after the child's run. */
function entryFieldCaches(mode: 'keep' | 'library' | 'none'): string[] {
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', '--expose-gc', CHILD, mode], { encoding: 'utf8', timeout: 30_000 });
  return [...out.matchAll(/slot #\d+ DefineKeyedOwnPropertyInLiteral (\w+)/g)].map((match) => match[1] as string);
}

describe('the shape of nextTick queue entries', () => {
  it('is kept through full collections: every field of the entry is defined by a monomorphic cache', () => {
    const caches = entryFieldCaches('keep');
    expect(caches.length).toBeGreaterThanOrEqual(4);
    expect(new Set(caches)).toEqual(new Set(['MONOMORPHIC']));
  });

  it('is kept by loading keygate as a library, before any gateway is built', () => {
    expect(new Set(entryFieldCaches('library'))).toEqual(new Set(['MONOMORPHIC']));
  });

  it('is lost without it: the caches turn megamorphic (what the gateway avoids)', () => {
    // Should this fail on a newer Node, its nextTick no longer loses the shape, and
    // src/tick-shape.ts (with this test) can go.
    const caches = entryFieldCaches('none');
    expect(caches.length).toBeGreaterThanOrEqual(4);
    expect(caches).toContain('MEGAMORPHIC');
  });
});
