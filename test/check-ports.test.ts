/**
 * `keygate check` says which of serve's listeners it could not open (serve refuses to
 * start then), as a warning naming the field and the address, with the reason in words:
 * a port taken (perhaps by the keygate the check runs beside, before its restart), an
 * address or a host name not this machine's, a port this user may not listen on. Each
 * may be expected where serve runs, so the check does not fail for it (exit 0). Each
 * listener is tried as serve listens (no host: Node's default, `::`), let go at once;
 * `--offline` tries none. Two of keygate's own listeners on one address are a mistake
 * in the profile: check and serve both refuse it, naming both fields; where only a lookup
 * (or serve's flags) tells, each address is held until all are tried, so check and serve
 * name the other listener, not "another process".
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, startFailure } from './support/cli.js';
import { namedPorts } from './support/ports.js';
import { tempDir } from './support/temp.js';

const dir = tempDir('keygate-check-ports');

/** The upstream the profiles forward to, answering every request 200. */
const api = createHttpServer((_request, response) => response.end('ok'));
await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
afterAll(() => new Promise((resolve) => api.close(resolve)));
const UPSTREAM = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;

/**
 * Whether this machine keeps port 1 from a user without privileges: Linux below
 * net.ipv4.ip_unprivileged_port_start (1024 by default; 0 in many containers, where any
 * user may take any port); macOS since 10.14 keeps none.
 */
function portOneIsPrivileged(): boolean {
  if (process.platform === 'darwin') return false;
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim()) > 1;
  } catch {
    return true;
  }
}

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

  it('says nothing of free ports, of port 0, nor with --offline, and leaves a free port free', async () => {
    // Outside the range ports listened on 0 come from: no other test file's server takes it meanwhile.
    const [free] = (await namedPorts(1)) as [number];
    const config = profile('free', { gateway: { port: free }, admin: { port: 0 }, dashboard: { port: 0 } });
    const human = await runCli(['check', '--config', config]);
    expect([human.code, human.stdout.split('\n')[2]]).toEqual([0, `store: no database at ${path.join(dir, 'free.db')} yet: keygate serve begins one there`]);
    // Let go: the port can be taken again at once.
    const again = createServer();
    await new Promise<void>((resolve, reject) => again.once('error', reject).listen(free, '127.0.0.1', resolve));
    await new Promise((resolve) => again.close(resolve));

    const taken = await occupiedPort();
    const occupied = profile('offline', { gateway: { port: taken.port }, admin: { port: 0 }, dashboard: { port: 0 } });
    const offline = await runCli(['check', '--offline', '--config', occupied]);
    expect([offline.code, offline.stdout]).toEqual([0, `${occupied}: ok (1 plan, 1 route)\nserves: the gateway, the admin API and the dashboard\n`]);
  });

  it('tries a listener with no host where serve listens, every address (::, IPv6 ones too), not only 0.0.0.0', async () => {
    // A port held on ::1 only: 0.0.0.0 is free, `::` (serve's bind for no host) is not.
    const [port] = (await namedPorts(1)) as [number];
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(port, '::1', resolve));
    afterAll(() => new Promise((resolve) => holder.close(resolve)));
    const config = profile('no-host', { gateway: { host: '', port }, admin: { port: 0 }, dashboard: { port: 0 } });
    const human = await runCli(['check', '--config', config]);
    expect([human.code, human.stdout.split('\n')[2]]).toEqual([0, inUse('listen.port', `[::]:${port}`, 'gateway')]);
    // serve says it too.
    const serve = await runCli(['serve', '--config', config]);
    expect(startFailure(serve).msg).toBe(`keygate could not start: the gateway cannot listen on [::]:${port}: another process is using that port; change listen.port in the profile (or, for a second process serving the same profile on this host, start it with --port <port>)`);
  });

  it('says in words why a listener cannot be opened for another reason than a port in use: an address or a name not this machine\'s, a port this user may not listen on', async () => {
    // 192.0.2.1 (TEST-NET-1) is no address of this machine; a name under .invalid resolves nowhere.
    const elsewhere = profile('elsewhere', { gateway: { host: '192.0.2.1', port: 0 }, admin: { host: 'no-such-host.invalid', port: 0 }, dashboard: { port: 0 } });
    const remote = await runCli(['check', '--config', elsewhere]);
    expect([remote.code, ...remote.stdout.split('\n').slice(2, 4)]).toEqual([
      0,
      'warning: listen.host: 192.0.2.1 is no address of this machine (no network interface has it), so keygate serve cannot open its gateway there (192.0.2.1:0): if the profile is for another machine, it is expected; else change listen.host',
      // ENOTFOUND where a resolver answers that the name is not known; EAI_AGAIN where none answers (no network).
      expect.stringMatching(
        /^warning: admin\.listen\.host: no-such-host\.invalid (?:is no host name known here \(ENOTFOUND\)|could not be looked up \(EAI_AGAIN\)), so keygate serve cannot open its admin API there: if the name is known only where serve runs, it is expected; else change admin\.listen\.host$/,
      ),
    ]);
    // serve refuses the first, in the same words.
    expect(startFailure(await runCli(['serve', '--config', elsewhere])).msg).toBe(
      'keygate could not start: the gateway cannot listen on 192.0.2.1:0: that address belongs to no network interface of this machine; change listen.host in the profile',
    );

    // A port under 1024, as a user other than root (nobody; root may listen there).
    const root = process.getuid?.() === 0;
    const as = root ? { uid: 65_534 } : {};
    // nobody reads the profile, and may begin the store there (as check asks of the folder).
    if (root) chmodSync(dir, 0o777);
    const low = profile('privileged', { gateway: { port: 0 }, admin: { port: 0 }, dashboard: { port: 1 } });
    const denied = await runCli(['check', '--config', low], as);
    // A machine that lets every user take port 1 (a container, say): serve could open it, and check says nothing of it.
    if (!portOneIsPrivileged()) {
      expect([denied.code, denied.stdout]).toEqual([0, expect.not.stringContaining('dashboard.listen')]);
      return;
    }
    expect([denied.code, denied.stdout.split('\n')[2]]).toEqual([
      0,
      'warning: dashboard.listen.port: this user may not listen on port 1 (ports under 1024 need privileges), so keygate serve cannot open its dashboard there (127.0.0.1:1) when run as this user: if serve runs as another user, or with the capability to (CAP_NET_BIND_SERVICE), it is expected; else change dashboard.listen.port to 1024 or above',
    ]);
    expect(startFailure(await runCli(['serve', '--config', low], as)).msg).toBe(
      'keygate could not start: the dashboard cannot listen on 127.0.0.1:1: this process may not listen on that port (ports under 1024 need privileges); change dashboard.listen.port in the profile',
    );
  });
});

describe('two of keygate\'s own listeners on one address', () => {
  it('is refused by check and serve alike, naming both fields, where the hosts are written apart (localhost and 127.0.0.1)', async () => {
    const [port] = (await namedPorts(1)) as [number];
    const config = profile('own-clash', { gateway: { host: 'localhost', port }, admin: { host: '127.0.0.1', port }, dashboard: { port: 0 } });
    const problem = `admin.listen.port: port ${port} is the gateway's too (listen.port), and admin.listen.host 127.0.0.1 and listen.host localhost (127.0.0.1, and ::1 on most systems) overlap: each listener needs a port of its own`;
    const check = await runCli(['check', '--config', config]);
    expect([check.code, check.stdout, check.stderr]).toEqual([2, '', `${config}: invalid configuration\n  - ${problem}\n`]);
    // serve listened on localhost, then refused the admin API, blaming "another process"; now it refuses the profile before it opens anything.
    const serve = await runCli(['serve', '--config', config]);
    expect(startFailure(serve)).toEqual({ code: 2, msg: `keygate could not start: ${config}: invalid configuration: ${problem}`, problems: [problem], stderr: '' });
  });

  it('is told from another process where a host name is the other\'s address (check warns, serve refuses naming both) or serve\'s flag gives one the other\'s port, before a store is made', async () => {
    // This machine's name, and the address it resolves to: the profile cannot tell they are one.
    const name = hostname();
    const { address } = await lookup(name);
    const [port, other] = (await namedPorts(2)) as [number, number];
    const config = profile('own-name', { gateway: { host: address, port }, admin: { host: name, port }, dashboard: { port: 0 } });
    const human = await runCli(['check', '--config', config]);
    expect([human.code, human.stdout.split('\n')[2]]).toEqual([
      0,
      `warning: admin.listen.port: ${name} (${address}):${port} is where keygate serve opens its gateway (listen.port, and listen.host is that address too), so keygate serve cannot open its admin API there: give each listener a port of its own`,
    ]);
    const named = await runCli(['serve', '--config', config]);
    expect(startFailure(named)).toEqual({
      code: 1,
      msg: `keygate could not start: the admin cannot listen on ${name} (${address}):${port}: the gateway listens there (listen.port ${port}, on listen.host ${address}); give each listener a port of its own (admin.listen.port)`,
      stderr: '',
    });

    // serve --port on the admin API's port (the profile's own are apart): refused before the SQLite file is made.
    const flagged = profile('own-flag', { gateway: { port }, admin: { port: other }, dashboard: { port: 0 } });
    const serve = await runCli(['serve', '--config', flagged, '--port', String(other)]);
    expect(startFailure(serve)).toEqual({
      code: 1,
      msg: `keygate could not start: the admin cannot listen on 127.0.0.1:${other}: the gateway listens there (--port ${other}, on listen.host 127.0.0.1); give each listener a port of its own (admin.listen.port)`,
      stderr: '',
    });
    expect(existsSync(path.join(dir, 'own-flag.db'))).toBe(false);
  });
});
