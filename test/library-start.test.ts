/**
 * What an app that embeds keygate loads: the in-process checks on the embedded default
 * (SQLite, memory counters) need neither the listeners (Fastify, the admin API, the
 * dashboard) nor the drivers of the scale-out backends (pg, ioredis), which took most of
 * the second that `import('keygate')` cost.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDir } from './support/temp.js';

const PRELOAD = path.resolve(import.meta.dirname, 'support/module-trace.mjs');
const CHILD = path.resolve(import.meta.dirname, 'support/library-child.mjs');
const NOT_LOADED = ['fastify', '@fastify/swagger', '@fastify/cookie', '@fastify/csrf-protection', 'undici', 'prom-client', 'pg', 'ioredis'];

describe('what the library loads', () => {
  it('checks a request on SQLite and memory counters without loading the listeners or the scale-out drivers', async () => {
    const dir = tempDir('library-start');
    const trace = path.join(dir, 'trace.txt');
    writeFileSync(trace, '');
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', PRELOAD, CHILD, dir], {
      env: { ...process.env, KEYGATE_MODULE_TRACE: trace },
      timeout: 60_000,
    });
    // The embedded app worked: its key was admitted.
    expect(JSON.parse(stdout.trim().split('\n').at(-1) ?? '')).toEqual({ allowed: true });
    const urls = readFileSync(trace, 'utf8').split('\n').filter(Boolean);
    const packages = new Set(urls.flatMap((url) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1] ?? []));
    // The trace saw the store it used (else the assertion below could not fail).
    expect(packages).toContain('better-sqlite3');
    expect(packages).toContain('kysely');
    expect([...packages].filter((name) => NOT_LOADED.includes(name))).toEqual([]);
  });
});
