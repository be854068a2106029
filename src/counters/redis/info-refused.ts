/**
 * A Redis user whose ACL leaves out INFO (the @dangerous category holds it): ioredis's ready
 * check asks INFO on every connection, to wait while Redis is still loading its data, and on
 * NOPERM writes `Skipping the ready check because INFO command fails …` to stderr with
 * console.warn, a plain-text line beside keygate's JSON log at each reconnection. ioredis
 * has no option to keep the check and drop the line (`enableReadyCheck: false` would drop
 * the check too, and with it NOAUTH and LOADING found before the client says it is ready).
 */
import type { Redis } from 'ioredis';

/** Redis's answer to a command the user's ACL does not allow. */
const NOT_PERMITTED = /^NOPERM\b/;

type InfoCallback = (error: Error | null, result?: string) => void;

/**
 * Takes NOPERM from the ready check's INFO (the only INFO sent with a callback alone) and
 * calls `heard` with it instead. Answered as an empty INFO, the check goes on as ioredis
 * would have after its line (the connection is ready: no `loading` field to wait on); any
 * other answer (NOAUTH, LOADING's fields) reaches it unchanged, and INFO asked any other
 * way is left alone.
 */
export function hearInfoRefused(client: Redis, heard: (refusal: string) => void): void {
  const send = client.info.bind(client) as (...args: unknown[]) => Promise<string>;
  const info = (...args: unknown[]): Promise<string> => {
    if (args.length !== 1 || typeof args[0] !== 'function') return send(...args);
    const callback = args[0] as InfoCallback;
    const answered = send().catch((error: unknown) => {
      if (!(error instanceof Error) || !NOT_PERMITTED.test(error.message)) throw error;
      heard(error.message);
      return '';
    });
    answered.then(
      (result) => callback(null, result),
      (error: Error) => callback(error),
    );
    return answered;
  };
  client.info = info as unknown as Redis['info'];
}
