/**
 * Keys the API issued before keygate without a prefix (`keys.imported` with no prefix: bare
 * 40-hex tokens): out of every log line a real request writes, wherever the key is in it.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeygate, type TestKeygate } from './support/keygate.js';
import { startTestUpstream, type TestUpstream } from './support/upstream.js';
import { tempDir } from './support/temp.js';

describe('bare imported keys (keys.imported without a prefix) in the logs', () => {
  let upstream: TestUpstream;
  let kg: TestKeygate;
  const key = randomBytes(20).toString('hex');

  beforeAll(async () => {
    upstream = await startTestUpstream();
    kg = await startKeygate(
      {
        upstream: { url: upstream.url },
        keys: { prefix: { live: 'sk_live_' }, imported: { prefix: {}, alphabet: 'hex', length: 40 } },
        auth: { credentials: [{ in: 'header', name: 'Authorization', scheme: 'Bearer' }] },
        log: { level: 'debug', requests: true },
      },
      { dir: tempDir('bare-imported-keys') },
    );
  });

  afterAll(async () => {
    await kg?.close();
    await upstream?.close();
  });

  it('hides a bare key in a path, a query and a bad URL, also split by an escape of one of its characters, and logs no Referer', async () => {
    const escaped = (at: number) => `${key.slice(0, at)}%${key.charCodeAt(at).toString(16).toUpperCase()}${key.slice(at + 1)}`;
    const targets: [string, string][] = [
      [`/v1/x/${key}`, '/v1/x/[REDACTED]'],
      [`/v1/x?q=${key}`, '/v1/x?q=[REDACTED]'],
      [`/v1/x/${key}%zz`, '/v1/x/[REDACTED]%zz'],
      // Before the part scrub hides by itself (38 of 40), and past it.
      [`/v1/x/${escaped(20)}`, '/v1/x/[REDACTED]'],
      [`/v1/x/${escaped(38)}/y`, '/v1/x/[REDACTED]/y'],
    ];
    for (const [target] of targets) await (await kg.call(target, { headers: { referer: `https://example.com/${key}`, authorization: `Bearer ${key}` } })).text();
    await kg.runtime.flush();
    const logged = kg.logs.lines.map((line) => JSON.parse(line) as { msg?: string; target?: string }).filter((line) => line.msg === 'request').map((line) => line.target);
    expect(logged).toEqual(targets.map(([, shown]) => shown));
    for (const part of [key, key.slice(0, 12), key.slice(-12)]) expect(kg.logs.text).not.toContain(part);
  });
});
