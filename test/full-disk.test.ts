/**
 * A SQLite store whose disk fills up while keygate serves: changes are refused with a
 * clear 503 (admin API, dashboard) or error (CLI) naming the cause, readiness says so until
 * a write goes through again, and the gateway goes on serving keys meanwhile.
 *
 * The disk is a real one that fills: a small tmpfs mounted on a temporary folder, filled
 * with a file until the kernel answers ENOSPC, so SQLite meets the SQLITE_FULL a full disk
 * gives it, in keygate's own connection and in a CLI process alike. Mounting needs root:
 * the tests run as root in CI (`bash .ci/run` on Debian), where it works. Not chmod (root
 * writes through it), nor PRAGMA max_page_count (a limit of one connection, which keygate's
 * would need a test-only way in to set). Where mount is refused (not root, or a container
 * without the right) the tests are skipped with the reason printed, CI or not: the right to
 * mount is the host's, not a service the project installs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey } from '../src/operations/keys.js';
import { runCli } from './support/cli.js';
import { dashboardProfile, newAccount, startDashboard, type DashboardFixture } from './dashboard/support.js';
import { addMember, Visitor } from './dashboard/visitor.js';
import { fill, mountSmallDisk } from './support/small-disk.js';

const MEMBER = 'ada@acme.example';

const disk = mountSmallDisk();

describe.skipIf(disk === undefined)('a SQLite store whose disk is full', () => {
  const disk_ = disk as string;
  const file = path.join(disk_, 'keygate.db');
  const profileDir = mkdtempSync(path.join(tmpdir(), 'full-disk-profile-'));
  let fixture: DashboardFixture;
  let accountId: string;
  let cachedSecret: string;
  let uncachedSecret: string;
  let member: Visitor;
  let filler: string | undefined;
  /** API requests answered 200 (each costs one unit), to find in the store afterwards. */
  let served = 0;

  const admin = (p: string, body?: unknown) => fixture.keygate.admin(p, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) });
  const call = async (secret: string) => {
    const response = await fixture.keygate.call('/v1/projects', { headers: { authorization: `Bearer ${secret}` } });
    if (response.status === 200) served += 1;
    return response.status;
  };
  const readiness = async () => {
    const response = await fetch(`${fixture.keygate.adminUrl}/health/ready`);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const storedUnits = async () => (await fixture.keygate.runtime.store.loadMeterUsage({ accountId })).reduce((sum, row) => sum + row.used, 0);

  beforeAll(async () => {
    fixture = await startDashboard(disk_, (profile) => ({ ...profile, store: `sqlite:${file}` }));
    const rt = fixture.keygate.runtime;
    accountId = await newAccount(fixture, 'Acme Analytics');
    cachedSecret = (await createKey(rt, { accountId, name: 'production' }, 'test')).secret;
    uncachedSecret = (await createKey(rt, { accountId, name: 'staging' }, 'test')).secret;
    expect(await call(cachedSecret)).toBe(200);
    await addMember(rt, MEMBER, accountId, 'member');
    member = await Visitor.signedIn(fixture.dashboardUrl, MEMBER, '/keys/new');
    // Everything counted so far is written before the disk fills.
    await rt.flush();
    expect((await readiness()).status).toBe(200);
    filler = fill(disk_);
  });

  afterAll(async () => {
    if (filler) rmSync(filler, { force: true });
    await fixture?.close();
    execFileSync('umount', [disk_]);
    rmSync(disk_, { recursive: true, force: true });
    rmSync(profileDir, { recursive: true, force: true });
  });

  it('answers admin API changes 503 with Retry-After and the cause, says it once in the log with the file, and readiness turns 503', async () => {
    for (const [what, response] of [
      ['create an account', await admin('/v1/accounts', { name: 'Globex' })],
      ['create a key', await admin('/v1/keys', { accountId, name: 'ci' })],
    ] as const) {
      expect({ status: response.status, retryAfter: response.headers.get('retry-after'), type: response.headers.get('content-type'), body: await response.json() }, what).toEqual({
        status: 503,
        retryAfter: '5',
        type: 'application/problem+json; charset=utf-8',
        body: {
          type: 'about:blank',
          title: 'Service Unavailable',
          status: 503,
          detail: 'The database could not be written: disk full (free space on the disk it is on); this change was not saved, or only in part: check before sending it again once /health/ready answers 200.',
        },
      });
    }
    // As the OpenAPI document says every change may answer (a client generated from it expects it).
    const doc = (await (await fetch(`${fixture.keygate.adminUrl}/openapi.json`)).json()) as { paths: Record<string, Record<string, { responses: Record<string, { description: string; headers?: object; content?: object }> }>> };
    for (const [route, operations] of Object.entries(doc.paths)) {
      for (const [method, { responses }] of Object.entries(operations)) {
        if (method === 'get') continue;
        expect(responses['503'], `${method} ${route}`).toMatchObject({ description: expect.stringContaining('the database could not be written: disk full'), headers: { 'Retry-After': expect.anything() }, content: { 'application/problem+json': expect.anything() } });
      }
    }
    // Nothing half made shows: no account, no key.
    expect(((await (await admin('/v1/accounts')).json()) as { name: string }[]).map((a) => a.name)).toEqual(['Acme Analytics']);
    expect(((await (await admin(`/v1/keys?accountId=${accountId}`)).json()) as { name: string }[]).map((k) => k.name)).toEqual(['production', 'staging']);

    const ready = await readiness();
    expect(ready).toEqual({
      status: 503,
      body: expect.objectContaining({ status: 'unavailable', store: 'unwritable', counters: 'ok', reason: expect.stringMatching(/^the store \(sqlite\) refuses writes since \S+: the database could not be written: disk full$/) }),
    });
    expect(await (await admin('/metrics')).text()).toContain('keygate_backend_up{backend="store"} 0');

    const lines = fixture.keygate.logs.lines.map((line) => JSON.parse(line) as { level: number; msg: string; store?: string; code?: string });
    const said = lines.filter((line) => line.msg.startsWith('the database could not be written'));
    expect(said).toEqual([expect.objectContaining({ level: 50, store: file, code: 'SQLITE_FULL', msg: expect.stringContaining('disk full: changes are refused with 503 and /health/ready answers 503') })]);
    // Each refused change is a line of its own (a warning), without a stack.
    expect(lines.filter((line) => line.msg === 'admin API could not save a change: the database could not be written: disk full')).toHaveLength(2);
    expect(lines.filter((line) => line.msg === 'admin API error')).toEqual([]);
  });

  it('goes on serving API requests, with a cached key and with one looked up in the store, though usage cannot be written', async () => {
    for (let i = 0; i < 3; i++) expect(await call(cachedSecret)).toBe(200);
    expect(await call(uncachedSecret)).toBe(200);
    // A flush or two has met the full disk meanwhile (every second): still served.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await call(cachedSecret)).toBe(200);
    expect((await readiness()).status).toBe(503);
  });

  it('shows the dashboard\'s own page saying the change was not saved (503), not an error', async () => {
    const form = await member.get('/keys/new');
    expect(form.status).toBe(200);
    const formId = /name="form_id" value="([^"]+)"/.exec(form.html)?.[1] as string;
    const answer = await member.post('/keys', [['name', 'while full'], ['scope', '*'], ['mode', 'live'], ['expiry', 'never'], ['form_id', formId]]);
    expect({ status: answer.status, heading: answer.heading, alert: answer.alert }).toEqual({
      status: 503,
      heading: 'Your change was not saved',
      alert: 'The dashboard cannot save anything right now. Try again later.',
    });
    expect(answer.html).toContain('<link rel="stylesheet"');
    expect(answer.html).not.toMatch(/SQLITE|disk full|\bat \S+\.js/);
  });

  it('has the CLI say the cause with the file, and exit 1', async () => {
    const profile = path.join(profileDir, 'keygate.yaml');
    writeFileSync(profile, stringify({ ...dashboardProfile('http://127.0.0.1:9'), store: `sqlite:${file}` }));
    const result = await runCli(['accounts', 'create', '--name', 'Initech', '--config', profile]);
    expect(result).toEqual({
      code: 1,
      stdout: '',
      stderr: `error: the database ${file} could not be written: disk full (SQLITE_FULL); free space on the disk it is on. This change was not saved, or only in part: check before running the command again\n`,
    });
  });

  it('is ready again within seconds of space being freed, saves changes, and writes the usage counted meanwhile', { timeout: 30_000 }, async () => {
    rmSync(filler as string);
    filler = undefined;
    await expect.poll(async () => (await readiness()).status, { timeout: 15_000, interval: 250 }).toBe(200);
    expect((await readiness()).body).toEqual(expect.objectContaining({ status: 'ok', store: 'ok' }));
    expect(fixture.keygate.logs.text).toContain('the store takes writes again');
    expect((await admin('/v1/accounts', { name: 'Globex' })).status).toBe(201);
    // Every request served while the disk was full is counted in the store, none lost.
    await expect.poll(storedUnits, { timeout: 10_000, interval: 200 }).toBe(served);
    // No secret reached the log.
    for (const secret of [cachedSecret, uncachedSecret]) expect(fixture.keygate.logs.text).not.toContain(secret);
  });
});
