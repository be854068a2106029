/**
 * docs/library.md's Express example, run as the page shows it: its TypeScript transpiled,
 * `'keygate'` the built package and `'express'` this repository's (a devDependency), in a
 * process of its own with a keygate.yaml beside it. The test adds only what the page leaves
 * to the reader: `rowsFor` (rows the test lets out when it chooses) and the port (any free one).
 */
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createKeygate, parseConfigText } from '../../src/index.js';
import { ctrlCMidLoad, DIST, libraryExample, next, said, startExample, usedAfterRestart } from '../support/example-child.js';
import { tempDir } from '../support/temp.js';

/**
 * What the test adds: `rowsFor` answers three rows when the test says so (after telling it
 * the handler is waiting), the server says when a client's connection closes and when its
 * stop begins (the page's signal handler closes it), and the example sends its demo key.
 */
const HARNESS = `
import { createAccount as createAccountForTest, createKey as createKeyForTest } from '${DIST}';
const waiting = [];
async function rowsFor(accountId) {
  process.send('waiting');
  await new Promise((resolve) => waiting.push(resolve));
  return [{ accountId }, { accountId }, { accountId }];
}
server.on('connection', (socket) => { const port = socket.remotePort; socket.on('close', () => process.send({ closed: port })); });
const closeServer = server.close.bind(server);
server.close = (...args) => { process.send('closing'); return closeServer(...args); };
// The test's channel does not keep the example up: it ends when its own handles are closed.
process.channel.unref();
process.on('message', (message) => { if (message === 'answer') waiting.shift()(); });
const account = await createAccountForTest(gate.runtime, { name: 'Acme' }, 'test');
const { secret } = await createKeyForTest(gate.runtime, { accountId: account.id, name: 'k' }, 'test');
if (!server.listening) await new Promise((resolve) => server.once('listening', resolve));
process.send({ secret, accountId: account.id, port: server.address().port });
`;

/** 5 credits a record; 4 records reserved, so that an answer settled without its count (20) is told from one with it (15). */
const PROFILE = `store: sqlite:./data/keygate.db
gateway: false
log: { level: warn }
plans:
  pro:
    rateLimits: [{ limit: 100, window: 1m }]
    meters: { credits: { limit: 1000 } }
routes:
  - { path: /v1/rows, cost: { meter: credits, perRecord: 5, reserveRecords: 4 } }
builtins:
  - { path: /v1/account, contentType: application/json, body: { id: '{{account.id}}' } }
`;

/** The profile's own refusal of a request without a key, as `check` renders it (another store: the example holds its own). */
async function refusalWithoutKey(dir: string): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  mkdirSync(path.join(dir, 'expected'));
  const config = parseConfigText(PROFILE.replace('./data', path.join(dir, 'expected')), 'keygate.yaml');
  const gate = await createKeygate({ config, file: 'keygate.yaml', dir });
  try {
    const result = await gate.check({ method: 'GET', url: '/v1/rows', headers: { host: 'x' } });
    if (result.allowed) throw new Error('a request without a key was admitted');
    return { status: result.error.status, headers: result.error.headers, body: result.error.body };
  } finally {
    await gate.close();
  }
}

/** The credits the example's store holds for the account, read after the example ended (a restart). */
async function storedCredits(dir: string, accountId: string): Promise<number | undefined> {
  return new Map(await usedAfterRestart(dir, PROFILE, accountId)).get('credits');
}

/** The page's Express block, with the test's harness, started in `dir`. */
const startExpress = (dir: string) => startExample(dir, PROFILE, libraryExample("import express from 'express';", ['express'], "app.listen(3000, '127.0.0.1')") + HARNESS, 'server.mjs');

describe("docs/library.md's Express example", () => {
  const refusalDir = tempDir('library-express-refusal');
  const loadDir = tempDir('library-express');

  it("answers a request without a key with the profile's 401 as check renders it, and a built-in endpoint with keygate's answer, their Content-Type untouched by Express", async () => {
    const dir = refusalDir;
    const expected = await refusalWithoutKey(dir);
    const { child, exited, started } = await startExpress(dir);
    const { accountId } = started;
    try {
      const refused = await fetch(`http://127.0.0.1:${started.port}/v1/rows`);
      const body = await refused.text();
      expect({ status: refused.status, body }).toEqual({ status: expected.status, body: expected.body });
      expect(expected.headers['content-type']).toBe('application/problem+json');
      for (const [name, value] of Object.entries(expected.headers)) expect([name, refused.headers.get(name)]).toEqual([name, value]);
      expect(JSON.parse(body)).toMatchObject({ status: 401, code: 'missing_key' });
      const builtin = await fetch(`http://127.0.0.1:${started.port}/v1/account`, { headers: { authorization: `Bearer ${started.secret}` } });
      expect({ status: builtin.status, type: builtin.headers.get('content-type'), body: await builtin.json() }).toEqual({ status: 200, type: 'application/json', body: { id: accountId } });
      expect(builtin.headers.get('ratelimit-policy')).toBe('"100-per-1m";q=100;w=60');
      child.kill('SIGINT');
      const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
      expect({ code, signal }).toEqual({ code: 0, signal: null });
    } finally {
      child.kill();
    }
    expect(await storedCredits(dir, accountId)).toBeUndefined();
  });

  it('charges an answer per record, as its handler counted them, nothing for a client gone before its answer, and loses no charge on Ctrl-C (SIGINT) mid-load', async () => {
    const dir = loadDir;
    const example = await startExpress(dir);
    const { child, started } = example;
    const { accountId } = started;
    try {
      const url = `http://127.0.0.1:${started.port}/v1/rows`;
      const headers = { authorization: `Bearer ${started.secret}` };
      const rows = [{ accountId }, { accountId }, { accountId }];

      // An answer of three records: the data, and the RateLimit fields keygate gave.
      const first = fetch(url, { headers });
      await next(child, said('waiting'));
      child.send('answer');
      const firstAnswer = await first;
      expect({ status: firstAnswer.status, body: await firstAnswer.json() }).toEqual({ status: 200, body: rows });
      expect(firstAnswer.headers.get('ratelimit-policy')).toBe('"100-per-1m";q=100;w=60');

      // A client that hangs up while the handler still works on its answer.
      const socket = connect(started.port, '127.0.0.1');
      socket.write(`GET /v1/rows HTTP/1.1\r\nHost: x\r\nAuthorization: ${headers.authorization}\r\n\r\n`);
      await next(child, said('waiting'));
      const port = socket.localPort;
      const closed = next(child, (message): message is { closed: number } => typeof message === 'object' && message !== null && (message as { closed?: unknown }).closed === port);
      socket.destroy();
      await closed;
      child.send('answer');

      // One answered just before Ctrl-C (its charge not yet written out), one in flight when it comes.
      const { first: second, inFlight, ended } = await ctrlCMidLoad(example, url, headers);
      expect(second.status).toBe(200);
      expect({ status: inFlight.status, body: await inFlight.json() }).toEqual({ status: 200, body: rows });
      expect(ended).toEqual({ code: 0, signal: null });
    } finally {
      child.kill();
    }

    // Three answers of three records, 5 credits each (not the 4 reserved), none for the client
    // that went away: written out by gate.close() before the process ended.
    expect(await storedCredits(dir, accountId)).toBe(45);
  });
});
