/**
 * A key's end, to the second, is one second wherever it is printed: `keygate keys rotate`'s
 * "the old key works until …", `keys list` and `keys show`, and the refusal a serving
 * keygate's admin API (and the CLI) gives to rotating the replacement while the old key
 * still works ("which works until … UTC"). An end that falls mid-second is rounded up in
 * each (at the second shown the key has stopped), never down in one and up in another.
 */
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, spawnServe } from './support/cli.js';
import { tempDir } from './support/temp.js';

const ADMIN_TOKEN = 'kgadm_key-end-seconds-test-token';

const api = createHttpServer((_request, response) => response.end('{"ok":true}'));
await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
afterAll(() => new Promise((resolve) => api.close(resolve)));

describe('a rotated key\'s end, to the second', () => {
  it('is the same second in the CLI\'s rotation line, its keys list and show, and the serving keygate\'s refusal over HTTP, for an end mid-second', async () => {
    const dir = tempDir('key-end-seconds');
    const config = path.join(dir, 'keygate.yaml');
    writeFileSync(
      config,
      stringify({
        upstream: { url: `http://127.0.0.1:${(api.address() as AddressInfo).port}` },
        store: `sqlite:${path.join(dir, 'keygate.db')}`,
        listen: { port: 0 },
        admin: { listen: { port: 0 } },
        dashboard: { enabled: false },
      }),
    );
    const cli = (...args: string[]) => runCli(['--config', config, ...args]);
    const account = (JSON.parse((await cli('accounts', 'create', '--name', 'Acme', '--json')).stdout) as { id: string }).id;

    // An overlap from now ends with now's milliseconds: mid-second but once in a thousand runs, when another rotation is made.
    let rotated: { line: string; old: string; replacement: string; secret: string; endsAt: number } | undefined;
    for (let attempt = 0; rotated === undefined && attempt < 5; attempt++) {
      const made = JSON.parse((await cli('keys', 'create', '--account', account, '--name', `rolling ${attempt}`, '--json')).stdout) as { id: string; secret: string };
      const run = await cli('keys', 'rotate', made.id, '--overlap', '2h');
      expect([run.code, run.stderr]).toEqual([0, '']);
      const endsAt = Date.parse((JSON.parse((await cli('keys', 'show', made.id, '--json')).stdout) as { expiresAt: string }).expiresAt);
      const replacement = /→ (key_\w+);/.exec(run.stdout)?.[1] as string;
      if (endsAt % 1000 !== 0) rotated = { line: run.stdout.split('\n')[0] as string, old: made.id, replacement, secret: made.secret, endsAt };
    }
    if (rotated === undefined) throw new Error('no rotation ended mid-second in 5 tries');
    const { line, old, replacement, secret, endsAt } = rotated;

    // The second the key has stopped by: rounded up.
    const second = new Date(Math.ceil(endsAt / 1000) * 1000).toISOString().replace('T', ' ').slice(0, 19);
    expect(line).toBe(`rotated ${old} → ${replacement}; the old key works until ${second}Z`);
    expect((await cli('keys', 'show', old)).stdout).toMatch(new RegExp(`^expires +${second}Z$`, 'm'));
    expect((await cli('keys', 'list', '--account', account)).stdout.split('\n').find((row) => row.startsWith(`${old} `))).toContain(` ${second}Z `);

    const serve = spawnServe(config, { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN });
    try {
      const started = JSON.parse(await serve.logged('keygate is serving')) as { gateway: string; admin: string };
      // The old key still works through the gateway during its overlap.
      expect((await fetch(`${started.gateway}/v1/anything`, { headers: { authorization: `Bearer ${secret}` } })).status).toBe(200);
      // Rotating its replacement before it ends is refused, naming the same second.
      const refused = await fetch(`${started.admin}/v1/keys/${replacement}/rotate`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: '{}' });
      const detail = ((await refused.json()) as { detail: string }).detail;
      expect([refused.status, /which works until (\S+ \S+) UTC/.exec(detail)?.[1]]).toEqual([409, second]);
    } finally {
      serve.child.kill('SIGTERM');
      await serve.exited();
    }
    // The CLI's own refusal says it so too.
    const again = await cli('keys', 'rotate', replacement);
    expect([again.code, /which works until (\S+ \S+) UTC/.exec(again.stderr)?.[1]]).toEqual([1, second]);
  });
});
