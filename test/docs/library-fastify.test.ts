/**
 * docs/library.md's Fastify example, run as the page shows it: its TypeScript transpiled,
 * `'keygate'` the built package and `'fastify'` this repository's, in a process of its
 * own with a keygate.yaml beside it. The test adds only what the page leaves to the
 * reader: `rowsFor` (an answer the test lets out when it chooses) and `app.listen`.
 */
import { describe, expect, it } from 'vitest';
import { ctrlCMidLoad, DIST, libraryExample, startExample, usedAfterRestart } from '../support/example-child.js';
import { tempDir } from '../support/temp.js';

/**
 * What the test adds: `rowsFor` answers two rows when the test says so (after telling it
 * the handler is waiting), the app says when its stop begins, and listens on a free port.
 */
const HARNESS = `
import { createAccount, createKey } from '${DIST}';
const waiting = [];
async function rowsFor(accountId) {
  process.send('waiting');
  await new Promise((resolve) => waiting.push(resolve));
  return [{ accountId }, { accountId }];
}
app.addHook('preClose', (done) => { process.send('closing'); done(); });
// The test's channel does not keep the example up: it ends when its own handles are closed.
process.channel.unref();
process.on('message', (message) => { if (message === 'answer') waiting.shift()(); });
const account = await createAccount(gate.runtime, { name: 'Acme' }, 'test');
const { secret } = await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test');
await app.listen({ port: 0, host: '127.0.0.1' });
process.send({ secret, accountId: account.id, port: app.server.address().port });
`;

const PROFILE = `store: sqlite:./data/keygate.db
gateway: false
log: { level: warn }
plans:
  pro:
    meters: { credits: { limit: 100 } }
routes:
  - { path: /v1/rows, cost: { meter: credits, perRecord: 5 } }
`;

describe("docs/library.md's Fastify example", () => {
  const dir = tempDir('library-fastify-doc');

  it('stops on Ctrl-C (SIGINT) mid-load without losing a charge: the answer in flight is sent, and every record answered is charged after a restart', async () => {
    const example = await startExample(dir, PROFILE, libraryExample("import Fastify from 'fastify';", ['fastify']) + HARNESS, 'server.mjs');
    const { accountId, port, secret } = example.started;
    try {
      const rows = [{ accountId }, { accountId }];
      const { first, inFlight, ended } = await ctrlCMidLoad(example, `http://127.0.0.1:${port}/v1/rows`, { authorization: `Bearer ${secret}` });
      expect({ status: first.status, body: await first.json() }).toEqual({ status: 200, body: rows });
      expect({ status: inFlight.status, body: await inFlight.json() }).toEqual({ status: 200, body: rows });
      expect(ended).toEqual({ code: 0, signal: null });
    } finally {
      example.child.kill();
    }

    // Two answers of two records, 5 credits each, written out by the gate's close before the process ended.
    expect(await usedAfterRestart(dir, PROFILE, accountId)).toEqual([['credits', 20]]);
  });
});
