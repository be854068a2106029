/**
 * Work on one thing (a form, named by its id) done one at a time in this process: a
 * second request for it waits until the first is answered, whatever that answer was.
 */
export function oneAtATimeBy(): <T>(key: string, work: () => Promise<T>) => Promise<T> {
  /** The last work queued for each key, settled (a failure is its requester's to see). */
  const last = new Map<string, Promise<void>>();
  return async (key, work) => {
    const before = last.get(key) ?? Promise.resolve();
    const result = before.then(work);
    const done = result.then(
      () => undefined,
      () => undefined,
    );
    last.set(key, done);
    try {
      return await result;
    } finally {
      if (last.get(key) === done) last.delete(key);
    }
  };
}
