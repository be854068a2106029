/**
 * PostgreSQL and Redis for the scale-out tests, from KEYGATE_TEST_POSTGRES_URL and
 * KEYGATE_TEST_REDIS_URL (defaults: the local servers). Without CI a missing server
 * skips those tests with a printed reason; with CI=true it fails them.
 */
import { connect } from 'node:net';

export const POSTGRES_URL = process.env.KEYGATE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env.KEYGATE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.setTimeout(2_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Whether the service can be used. In CI an unreachable service throws (the suite
 * fails); elsewhere it prints why the tests are skipped and returns false.
 */
export async function serviceAvailable(name: 'PostgreSQL' | 'Redis', url: string): Promise<boolean> {
  if (await reachable(url)) return true;
  if (IN_CI) throw new Error(`${name} is not reachable at ${url}, and CI=true requires it`);
  console.warn(`[skip] ${name} is not reachable at ${url}: its tests are skipped (set CI=true to make this a failure)`);
  return false;
}
