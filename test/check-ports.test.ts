/**
 * `keygate check` says which of serve's listeners would find its address taken (serve
 * refuses to start then), as a warning naming the port's field and the address: the port
 * may be held by the keygate the check runs beside before its restart, so the check does
 * not fail for it (exit 0). Only this machine's addresses are tried, each let go at once;
 * `--offline` tries none.
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './support/cli.js';
import { namedPorts } from './support/ports.js';
import { tempDir } from './support/temp.js';

const dir = tempDir('keygate-check-ports');

/** The upstream the profiles forward to, answering every request 200. */
const api = createHttpServer((_request, response) => response.end('ok'));
await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
afterAll(() => new Promise((resolve) => api.close(resolve)));
const UPSTREAM = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;

/** A port of 127.0.0.1 held by another listener, as another process (or a running keygate) holds it. */
async function occupiedPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  afterAll(() => new Promise((resolve) => server.close(resolve)));
  return { port: (server.address() as AddressInfo).port, server };
}

function profile(name: string, listen: { gateway: object; admin: object; dashboard: object }): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, stringify({ upstream: { url: UPSTREAM }, store: `sqlite:${path.join(dir, `${name}.db`)}`, listen: listen.gateway, admin: { listen: listen.admin }, dashboard: { listen: listen.dashboard } }));
  return file;
}

const inUse = (field: string, at: string, listener: string) =>
  `warning: ${field}: ${at} is in use, so keygate serve cannot open its ${listener} there while it is: if that is the keygate already serving this profile (a check before its restart), it is expected; else change ${field}, or stop what listens there`;

describe('keygate check: ports already in use', () => {
  it('warns of each listener whose address is taken, naming its field and the address, and passes (exit 0)', async () => {
    const gateway = await occupiedPort();
    const admin = await occupiedPort();
    const config = profile('taken', { gateway: { port: gateway.port }, admin: { port: admin.port }, dashboard: { port: 0 } });
    const human = await runCli(['check', '--config', config]);
    expect([human.code, human.stderr]).toEqual([0, '']);
    expect(human.stdout.split('\n').slice(0, 4)).toEqual([
      `${config}: ok (1 plan, 1 route)`,
      'serves: the gateway, the admin API and the dashboard',
      inUse('listen.port', `127.0.0.1:${gateway.port}`, 'gateway'),
      inUse('admin.listen.port', `127.0.0.1:${admin.port}`, 'admin API'),
    ]);
    // The backends' lines follow, as without a port taken.
    expect(human.stdout.split('\n').slice(4)).toEqual([`store: no database at ${path.join(dir, 'taken.db')} yet: keygate serve begins one there`, `upstream: ${UPSTREAM} answers (HEAD /: 200)`, '']);

    const json = await runCli(['--json', 'check', '--config', config]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, warnings: [inUse('listen.port', `127.0.0.1:${gateway.port}`, 'gateway'), inUse('admin.listen.port', `127.0.0.1:${admin.port}`, 'admin API')].map((line) => line.slice('warning: '.length)) });

    // The holders keep their ports: the check took nothing from them.
    expect([gateway.server.listening, admin.server.listening]).toEqual([true, true]);
  });

  it('finds a port taken on 127.0.0.1 for a listener on every address (0.0.0.0), as serve would', async () => {
    const gateway = await occupiedPort();
    const config = profile('wildcard', { gateway: { host: '0.0.0.0', port: gateway.port }, admin: { port: 0 }, dashboard: { port: 0 } });
    const human = await runCli(['check', '--config', config]);
    expect(human.code).toBe(0);
    expect(human.stdout.split('\n')[2]).toBe(inUse('listen.port', `0.0.0.0:${gateway.port}`, 'gateway'));
  });

  it('says nothing of free ports, of port 0, of an address that is not this machine\'s, nor with --offline, and leaves a free port free', async () => {
    // Outside the range ports listened on 0 come from: no other test file's server takes it meanwhile.
    const [free] = (await namedPorts(1)) as [number];
    const config = profile('free', { gateway: { port: free }, admin: { port: 0 }, dashboard: { port: 0 } });
    const human = await runCli(['check', '--config', config]);
    expect([human.code, human.stdout.split('\n')[2]]).toEqual([0, `store: no database at ${path.join(dir, 'free.db')} yet: keygate serve begins one there`]);
    // Let go: the port can be taken again at once.
    const again = createServer();
    await new Promise<void>((resolve, reject) => again.once('error', reject).listen(free, '127.0.0.1', resolve));
    await new Promise((resolve) => again.close(resolve));

    // 192.0.2.1 (TEST-NET-1) is no address of this machine: not tried (serve itself says it cannot listen there).
    const taken = await occupiedPort();
    const elsewhere = profile('elsewhere', { gateway: { host: '192.0.2.1', port: taken.port }, admin: { port: 0 }, dashboard: { port: 0 } });
    const remote = await runCli(['check', '--config', elsewhere]);
    expect([remote.code, remote.stdout.includes('warning:')]).toEqual([0, false]);

    const occupied = profile('offline', { gateway: { port: taken.port }, admin: { port: 0 }, dashboard: { port: 0 } });
    const offline = await runCli(['check', '--offline', '--config', occupied]);
    expect([offline.code, offline.stdout]).toEqual([0, `${occupied}: ok (1 plan, 1 route)\nserves: the gateway, the admin API and the dashboard\n`]);
  });
});
