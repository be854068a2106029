/**
 * docs/library.md's Fastify example, run as the page shows it: its TypeScript transpiled,
 * `'keygate'` the built package and `'fastify'` this repository's, in a process of its
 * own with a keygate.yaml beside it. The test adds only what the page leaves to the
 * reader: `rowsFor` (an answer the test lets out when it chooses) and `app.listen`.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { createKeygate, parseConfigText } from '../../src/index.js';
import { next, said, startedMessage } from '../support/example-child.js';
import { tempDir } from '../support/temp.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const DIST = pathToFileURL(path.join(ROOT, 'dist/index.js')).href;

/** The page's Fastify block, as a reader would copy it, made runnable by Node. */
function fastifyExample(): string {
  const block = /```ts\n(import Fastify from 'fastify';[^]*?)```/.exec(readFileSync(path.join(ROOT, 'docs/library.md'), 'utf8'));
  if (!block?.[1]?.includes("from 'keygate'")) throw new Error("docs/library.md has no longer a Fastify block importing 'keygate'");
  const fastify = pathToFileURL(createRequire(path.join(ROOT, 'package.json')).resolve('fastify')).href;
  const source = block[1].replace("from 'keygate'", `from '${DIST}'`).replace("from 'fastify'", `from '${fastify}'`);
  return ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
}

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
    writeFileSync(path.join(dir, 'keygate.yaml'), PROFILE);
    const script = path.join(dir, 'server.mjs');
    writeFileSync(script, fastifyExample() + HARNESS);
    const child = fork(script, [], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const exited = once(child, 'exit');
    let accountId: string;
    try {
      const started = await next(child, startedMessage);
      accountId = started.accountId;
      const url = `http://127.0.0.1:${started.port}/v1/rows`;
      const headers = { authorization: `Bearer ${started.secret}` };
      const rows = [{ accountId }, { accountId }];

      // One answered just before Ctrl-C (its charge not yet written out), one in flight when it comes.
      const first = fetch(url, { headers });
      await next(child, said('waiting'));
      child.send('answer');
      const firstAnswer = await first;
      expect({ status: firstAnswer.status, body: await firstAnswer.json() }).toEqual({ status: 200, body: rows });
      const inFlight = fetch(url, { headers });
      inFlight.catch(() => undefined); // cut off without the page's signal handler: the assertion below says so
      await next(child, said('waiting'));
      const closing = next(child, said('closing'));
      child.kill('SIGINT');
      await closing;
      child.send('answer');
      const answered = await inFlight;
      expect({ status: answered.status, body: await answered.json() }).toEqual({ status: 200, body: rows });
      const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
      expect({ code, signal }).toEqual({ code: 0, signal: null });
    } finally {
      child.kill();
    }

    // Two answers of two records, 5 credits each, written out by the gate's close before the process ended.
    const config = parseConfigText(PROFILE.replace('./data', path.join(dir, 'data')), 'keygate.yaml');
    const again = await createKeygate({ config, file: 'keygate.yaml', dir });
    try {
      const meters = await again.runtime.store.loadMeterUsage({ accountId });
      expect(meters.map((row) => [row.meter, row.used])).toEqual([['credits', 20]]);
    } finally {
      await again.close();
    }
  });
});
