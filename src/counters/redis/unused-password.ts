/**
 * A password in the counters URL that Redis does not ask for: Redis refuses the AUTH
 * ("no password is set", or since Redis 6 "called without any password configured for
 * the default user") and every command works all the same. `keygate check` says so on
 * its counters line; serve, the library and the CLI commands say it once as a log line.
 * No ioredis import here: `keygate check` reads these words without loading the client.
 */
import type { Redis } from 'ioredis';

/** Redis's answer to AUTH where its default user asks no password (Redis 6 and later, and before). */
export const NO_PASSWORD_ASKED = /without any password configured|no password is set/;

/** What keygate says of such a password: it connects, and the password does nothing. */
export const UNUSED_PASSWORD = "it asks no password, so the one in the profile's counters is not used";

type AuthCallback = (error?: Error | null, result?: 'OK') => void;

/**
 * Takes that answer to the AUTH the client sends as it connects, and calls `heard` instead.
 * ioredis has no option for it: it sends the URL's password with the client's own `auth`
 * (before any other command, on every connection) and, on that answer, writes a plain-text
 * `[WARN] …` line to stderr with console.warn, outside keygate's JSON log. Answered here as
 * accepted, it goes on as it would have (the connection is used, without a password); any
 * other refusal (WRONGPASS) reaches it unchanged.
 */
export function hearUnusedPassword(client: Redis, heard: () => void): void {
  const send = client.auth.bind(client) as (...args: unknown[]) => Promise<'OK'>;
  const auth = (...args: unknown[]): Promise<'OK'> => {
    const callback = typeof args.at(-1) === 'function' ? (args.pop() as AuthCallback) : undefined;
    const answered = send(...args).catch((error: unknown) => {
      if (!(error instanceof Error) || !NO_PASSWORD_ASKED.test(error.message)) throw error;
      heard();
      return 'OK' as const;
    });
    if (callback) answered.then((result) => callback(null, result), (error: Error) => callback(error));
    return answered;
  };
  client.auth = auth as unknown as Redis['auth'];
}
