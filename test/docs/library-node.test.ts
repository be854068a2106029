/**
 * docs/library.md's first example (keygate in a node:http server), run as the page shows it:
 * its TypeScript transpiled, `'keygate'` the built package, in a process of its own with a
 * keygate.yaml beside it. Only the port (any free one) and `reportsFor` (an answer the test
 * lets out when it chooses) are the test's.
 */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ctrlCMidLoad, DIST, libraryExample, next, said, startExample, usedAfterRestart } from '../support/example-child.js';
import { tempDir } from '../support/temp.js';

/**
 * What the test adds: `reportsFor` answers when the test says so (after telling it the
 * handler is waiting), the server says when a client's connection closes, and `stop` ends
 * the example as its own page says to (server.close(), gate.close()).
 */
const HARNESS = `
import { createAccount, createKey } from '${DIST}';
const waiting = [];
async function reportsFor(accountId) {
  process.send('waiting');
  await new Promise((resolve) => waiting.push(resolve));
  return [{ accountId }];
}
server.on('connection', (socket) => { const port = socket.remotePort; socket.on('close', () => process.send({ closed: port })); });
// Says when the example begins its stop (its signal handler closes the server).
const closeServer = server.close.bind(server);
server.close = (...args) => { process.send('closing'); return closeServer(...args); };
// The test's channel does not keep the example up: it ends when its own handles are closed.
process.channel.unref();
process.on('message', (message) => {
  if (message === 'answer') waiting.shift()();
  if (message === 'stop') { server.close(); void gate.close().then(() => process.disconnect()); }
});
const account = await createAccount(gate.runtime, { name: 'Acme' }, 'test');
const { secret } = await createKey(gate.runtime, { accountId: account.id, name: 'k' }, 'test');
if (!server.listening) await new Promise((resolve) => server.once('listening', resolve));
process.send({ secret, accountId: account.id, port: server.address().port });
`;

const PROFILE = `store: sqlite:./data/keygate.db
gateway: false
log: { level: warn }
plans:
  pro:
    meters: { credits: { limit: 100 } }
routes:
  - { path: /reports, cost: { meter: credits, perRequest: 10 } }
`;

describe("docs/library.md's node:http example", () => {
  const dir = tempDir('library-node');

  it('charges an answered request, and nothing for one whose client went away before its answer (as the gateway gives it back)', async () => {
    const example = await startExample(dir, PROFILE, libraryExample('', [], ".listen(3000, '127.0.0.1')") + HARNESS, 'server.mjs');
    const { child, exited } = example;
    const { accountId, port, secret } = example.started;
    try {
      const answering = fetch(`http://127.0.0.1:${port}/reports`, { headers: { authorization: `Bearer ${secret}` } });
      await next(child, said('waiting'));
      child.send('answer');
      const answered = await answering;
      expect({ status: answered.status, body: await answered.json() }).toEqual({ status: 200, body: [{ accountId }] });

      // A client that hangs up while the handler still works on its answer.
      const socket = connect(port, '127.0.0.1');
      socket.write(`GET /reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${secret}\r\n\r\n`);
      await next(child, said('waiting'));
      const local = socket.localPort;
      const closed = next(child, (message): message is { closed: number } => typeof message === 'object' && message !== null && (message as { closed?: unknown }).closed === local);
      socket.destroy();
      await closed;
      child.send('answer');
      child.send('stop');
      await exited;
    } finally {
      child.kill();
    }

    // close() waited for both settles and wrote the balance out: the answered request's 10 credits only.
    expect(await usedAfterRestart(dir, PROFILE, accountId)).toEqual([['credits', 10]]);
  });

  it('stops on Ctrl-C (SIGINT) mid-load without losing a charge: the answer in flight is sent, and every answered request is charged after a restart', async () => {
    const example = await startExample(dir, PROFILE, libraryExample('', [], ".listen(3000, '127.0.0.1')") + HARNESS, 'server-sigint.mjs');
    const { accountId, port, secret } = example.started;
    try {
      const { first, inFlight, ended } = await ctrlCMidLoad(example, `http://127.0.0.1:${port}/reports`, { authorization: `Bearer ${secret}` });
      expect(first.status).toBe(200);
      expect({ status: inFlight.status, body: await inFlight.json() }).toEqual({ status: 200, body: [{ accountId }] });
      expect(ended).toEqual({ code: 0, signal: null });
    } finally {
      example.child.kill();
    }

    // Both answers charged: 10 credits each, written out by gate.close() before the process ended.
    expect(await usedAfterRestart(dir, PROFILE, accountId)).toEqual([['credits', 20]]);
  });
});
