/** Waiting on a backend no longer than a deadline (Redis admissions, key lookups in the store). */

/** Raised when a backend did not answer in time. */
export class DeadlineError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} did not answer within ${ms} ms`);
    this.name = 'DeadlineError';
  }
}

export interface DeadlineOptions<T> {
  /** What is waited on, for the error's message (default "Redis"). */
  what?: string;
  /** Given a result that arrives after the deadline, to undo what it reserved (or keep what it found). */
  onLate?: (value: T) => void;
}

/**
 * Resolves with `work`, or rejects with DeadlineError after `ms`. The rejection waits
 * one more turn of the event loop, so a reply that arrived while the process was busy
 * (a long GC pause, a starved CPU) is read first instead of being taken for a timeout.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, options: DeadlineOptions<T> = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    let expired = false;
    let settled = false;
    const timer = setTimeout(
      () =>
        setImmediate(() => {
          if (settled) return;
          expired = true;
          reject(new DeadlineError(options.what ?? 'Redis', ms));
        }),
      ms,
    );
    work.then(
      (value) => {
        settled = true;
        clearTimeout(timer);
        if (expired) options.onLate?.(value);
        else resolve(value);
      },
      (error: unknown) => {
        settled = true;
        clearTimeout(timer);
        if (!expired) reject(error);
      },
    );
  });
}
