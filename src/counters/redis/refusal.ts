/**
 * A connection Redis refuses (WRONGPASS: a wrong password, or a user disabled or deleted;
 * NOAUTH: a password it asks and the URL does not give; NOPERM), said in the same words by
 * serve's log, the CLI's messages and /health/ready: it is not a Redis that cannot be
 * reached, and the fix is in the profile's counters URL or Redis's ACL, not the network.
 * No ioredis import here: the CLI's messages read these words without loading the client.
 */

/** What an operator fixes: the user and password in the counters URL, or the user's ACL. */
export const REFUSAL_FIX = "check the user and password in the profile's counters, and that Redis's ACL lets that user in: docs/scale-out.md#a-redis-user-for-keygate";

/** `Redis refuses the connection (WRONGPASS …)`, with Redis's own answer. */
export function refusedConnection(refusal: string): string {
  return `Redis refuses the connection (${refusal})`;
}
