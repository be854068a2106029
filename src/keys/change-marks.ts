/**
 * Key and account changes, marked in a PostgreSQL store as well as sent on Redis: a
 * process that missed a change's message learns of it from the store within a second
 * and drops its key cache, so a revocation holds everywhere even where Redis could not
 * carry it. Two marks, each a fresh random value per change:
 *
 * - `keys_changed`, at every change: read by the processes that hear no messages now
 *   (their Redis subscription is down, or memory counters, which hear none);
 * - `keys_changed_untold`, at a change whose message Redis did not take: read by every
 *   process, since none heard it.
 *
 * A SQLite store needs neither: every process sees another's write to the file at its
 * next request (`Store.changedElsewhere`).
 */
import { randomUUID } from 'node:crypto';
import type { Store } from '../store/store.js';

const CHANGED = 'keys_changed';
const UNTOLD = 'keys_changed_untold';
/** How often a serving process reads the marks: a missed change holds at most this long (plus the read). */
export const CHANGE_WATCH_INTERVAL_MS = 1_000;

/** Marks a change saved in `store`; `told`: Redis took its message. */
export async function markChange(store: Store, told: boolean): Promise<void> {
  const mark = randomUUID();
  await store.putSetting(CHANGED, mark);
  if (!told) await store.putSetting(UNTOLD, mark);
}

export interface ChangeWatch {
  stop(): void;
}

export interface ChangeWatchOptions {
  store: Store;
  /** Whether this process hears the other processes' messages now. */
  hearsOthers: () => boolean;
  /** A change this process did not hear of: its key cache must go. */
  onMissed: (why: 'untold' | 'not listening') => void;
  intervalMs?: number;
}

/**
 * Reads the marks now (what they say is known: this process's cache holds nothing
 * older), then every `intervalMs`. A store that does not answer is asked again at the
 * next tick; meanwhile cached keys keep working, as they do through any store outage.
 */
export async function watchChanges({ store, hearsOthers, onMissed, intervalMs = CHANGE_WATCH_INTERVAL_MS }: ChangeWatchOptions): Promise<ChangeWatch> {
  const read = () => Promise.all([store.getSetting(CHANGED), store.getSetting(UNTOLD)]);
  let [changed, untold] = await read();
  let reading = false;
  const timer = setInterval(() => {
    if (reading) return;
    reading = true;
    // Taken before the read: a subscription that drops while it runs may have missed a change the read finds.
    const heard = hearsOthers();
    read()
      .then(([nowChanged, nowUntold]) => {
        if (nowUntold !== untold) onMissed('untold');
        else if (nowChanged !== changed && !(heard && hearsOthers())) onMissed('not listening');
        [changed, untold] = [nowChanged, nowUntold];
      })
      .catch(() => undefined)
      .finally(() => {
        reading = false;
      });
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
