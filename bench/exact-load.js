/**
 * A fixed number of requests to a case, for the scripts that count per request
 * (bench/cpu.js, bench/syscalls.js). Apart from common.js, which every server child
 * loads: they need no load generator.
 */
import autocannon from 'autocannon';
import { REQUEST_PATH } from './common.js';

/**
 * `n` requests over `connections` keep-alive connections, sent by autocannon as in
 * `npm run bench`; every answer must be a 200. (An undici pool in this process could not
 * keep the bare proxy saturated on a fast host, and a proxy below saturation spends more
 * CPU per request: that flattered keygate.) `proxy.info.secret` is the case's key, if any.
 */
export async function sendRequests(id, proxy, n, connections) {
  const authorization = `Bearer ${proxy.info.secret ?? `kg_live_${'x'.repeat(30)}`}`;
  // autocannon refuses more connections than requests.
  const result = await autocannon({ url: `${proxy.info.url}${REQUEST_PATH}`, connections: Math.min(connections, n), pipelining: 1, amount: n, headers: { authorization }, timeout: 10 });
  // `errors` counts the timeouts too.
  const failed = result.errors + result.non2xx;
  if (failed > 0) throw new Error(`(${id}) ${failed} of ${n} requests failed or were not answered 200`);
}
