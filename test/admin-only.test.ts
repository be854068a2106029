/**
 * `keygate serve` with `gateway: false`: the admin API alone (and the dashboard), for a
 * backend that checks its requests over HTTP (POST /v1/check and its settle) and has no
 * upstream for a gateway to forward to. The real command, a real SQLite file, real
 * sockets: no gateway port is opened, checks answer in the profile's envelope, /health
 * and a SIGHUP reload work, and a profile that says neither upstream.url nor
 * gateway: false is still refused.
 */
import { connect } from 'node:net';
import path from 'node:path';
import { existsSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { runCli, spawnServe, startFailure } from './support/cli.js';
import { namedPort } from './support/ports.js';
import { tempDir } from './support/temp.js';

const ADMIN_TOKEN = 'admin-only-token-0123456789';

/** Whether something accepts connections on 127.0.0.1:`port`: the error code if refused. */
function connectOutcome(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });
}

describe('keygate serve with gateway: false', () => {
  const dir = tempDir('admin-only');
  /** An admin-API-only profile: the gateway's port named (to see that nothing listens there), the others any free one. */
  const profile = (gatewayPort: number, message: string, extra: Record<string, unknown> = {}) =>
    stringify({
      name: 'rows-api',
      gateway: false,
      listen: { port: gatewayPort },
      admin: { listen: { port: 0 } },
      dashboard: { listen: { port: 0 } },
      store: `sqlite:${path.join(dir, 'keygate.db')}`,
      keys: { prefix: { live: 'rk_live_' } },
      errors: { envelope: 'error', reasons: { missing_key: { message } } },
      plans: { scale: { meters: { credits: { limit: 100 } } } },
      routes: [{ method: 'GET', path: '/v1/rows', cost: { meter: 'credits', perRequest: 10 } }],
      ...extra,
    });

  it('serves the admin API and the dashboard, opens no gateway port, answers checks in the profile\'s envelope, and reloads on SIGHUP', async () => {
    const gatewayPort = await namedPort();
    const file = path.join(dir, 'keygate.yaml');
    writeFileSync(file, profile(gatewayPort, 'Send your key'));
    const { child, logged } = spawnServe(file, { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN });
    try {
      // The gateway's port, set but unused: said once as it starts (a warning, not a refusal).
      expect(JSON.parse(await logged('runs no gateway'))).toMatchObject({
        level: 40,
        fields: ['listen.port'],
        msg: 'gateway: false runs no gateway, so listen.port has no effect (it applies once the gateway is on again: remove it, or keep it for then)',
      });
      const started = JSON.parse(await logged('keygate is serving')) as Record<string, unknown>;
      expect(started).toMatchObject({ msg: 'keygate is serving the admin API and the dashboard, no gateway (gateway: false)', gateway: false, status: 'ok' });
      expect(started).not.toHaveProperty('upstream');
      const admin = started.admin as string;
      const dashboard = started.dashboard as string;
      // Nothing listens where the gateway would.
      expect(await connectOutcome(gatewayPort)).toBe('ECONNREFUSED');

      expect([(await fetch(`${admin}/health`)).status, (await fetch(`${admin}/health/ready`)).status]).toEqual([200, 200]);
      expect(((await (await fetch(`${admin}/health`)).json()) as { status: string }).status).toBe('ok');
      expect((await fetch(`${dashboard}/sign-in`)).status).toBe(200);

      const call = async (route: string, body: unknown) => {
        const response = await fetch(`${admin}${route}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
        return { status: response.status, body: (await response.json()) as Record<string, any> };
      };
      const account = await call('/v1/accounts', { name: 'Acme' });
      const { secret } = (await call('/v1/keys', { accountId: account.body.id, name: 'backend' })).body as { secret: string };

      const allowed = await call('/v1/check', { method: 'GET', url: '/v1/rows?page=2', headers: { authorization: `Bearer ${secret}` } });
      expect(allowed.status).toBe(200);
      expect(allowed.body).toMatchObject({ allowed: true, url: '/v1/rows?page=2', identity: { account: { id: account.body.id, name: 'Acme' } } });
      expect(await call(`/v1/check/${allowed.body.settle as string}/settle`, { status: 200 })).toEqual({ status: 200, body: { id: allowed.body.settle, status: 200, charged: true } });
      const usage = (await (await fetch(`${admin}/v1/accounts/${account.body.id as string}/usage`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { meters: { credits: { usage: number } } };
      expect(usage.meters.credits.usage).toBe(10);

      const denied = async () => (await call('/v1/check', { method: 'GET', url: '/v1/rows', headers: {} })).body;
      const first = await denied();
      expect(first).toMatchObject({ allowed: false, reason: 'missing_key', error: { status: 401 } });
      expect(JSON.parse(first.error.body as string)).toEqual({ error: 'Send your key' });

      // A reload changes what checks answer, as it changes the gateway's answers.
      writeFileSync(file, profile(gatewayPort, 'Key required'));
      child.kill('SIGHUP');
      expect(JSON.parse(await logged('profile reloaded')).changed).toEqual(['errors']);
      // Said again after a reload, as at the start.
      expect(JSON.parse(await logged('runs no gateway', 1)).fields).toEqual(['listen.port']);
      expect(JSON.parse((await denied()).error.body as string)).toEqual({ error: 'Key required' });
      // A profile that turns the gateway back on without an upstream: refused, the one in use stays.
      writeFileSync(file, profile(gatewayPort, 'Gateway back', { gateway: true }));
      child.kill('SIGHUP');
      expect(JSON.parse(await logged('profile not reloaded'))).toMatchObject({
        msg: `profile not reloaded, the one in use stays: ${file}: cannot be served without upstream.url, or gateway: false`,
        problems: [expect.stringMatching(/^upstream\.url: required to serve the gateway, .* say gateway: false instead/)],
      });
      expect(JSON.parse((await denied()).error.body as string)).toEqual({ error: 'Key required' });

      child.kill('SIGTERM');
      expect(await new Promise<number | null>((resolve) => child.once('exit', resolve))).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('refuses to start without a usable admin token as a bad profile (exit code 2), naming its variable and admin.tokenEnv, before it writes anything, and refuses --port (no gateway to move)', async () => {
    const file = path.join(dir, 'no-token.yaml');
    // A store of its own, in a folder of its own: a refused start makes neither.
    const data = path.join(dir, 'no-token-data');
    writeFileSync(file, profile(0, 'Send your key', { store: `sqlite:${path.join(data, 'keygate.db')}` }));
    const unset = startFailure(await runCli(['serve', '--config', file], { env: { KEYGATE_ADMIN_TOKEN: '' } }));
    expect(unset).toEqual({
      code: 2,
      msg: `keygate could not start: ${file}: cannot be served with gateway: false without a usable admin token in KEYGATE_ADMIN_TOKEN`,
      problems: [
        "admin.tokenEnv: gateway: false serves the admin API alone, and a backend's POST /v1/check needs the admin token (in KEYGATE_ADMIN_TOKEN, the variable admin.tokenEnv names), but KEYGATE_ADMIN_TOKEN is not set; set it to at least 16 random characters, e.g. openssl rand -base64 24",
      ],
      stderr: '',
    });
    const short = startFailure(await runCli(['serve', '--config', file], { env: { KEYGATE_ADMIN_TOKEN: 'short' } }));
    expect([short.code, short.problems]).toEqual([
      2,
      [
        "admin.tokenEnv: gateway: false serves the admin API alone, and a backend's POST /v1/check needs the admin token (in KEYGATE_ADMIN_TOKEN, the variable admin.tokenEnv names), but KEYGATE_ADMIN_TOKEN is 5 characters long; use at least 16 random ones, e.g. openssl rand -base64 24",
      ],
    ]);
    // Refused before the store was opened: no SQLite file made, nor migrated, nor its folder.
    expect(existsSync(data)).toBe(false);
    const port = startFailure(await runCli(['serve', '--config', file, '--port', '9000'], { env: { KEYGATE_ADMIN_TOKEN: ADMIN_TOKEN } }));
    expect(port).toEqual({ code: 1, msg: `keygate could not start: --port sets the gateway's port, and ${file} runs no gateway (gateway: false): leave it out (--admin-port sets the admin API's)`, stderr: '' });
  });

  it('check warns of the gateway\'s fields a gateway: false profile sets, naming each (not those left at their defaults, nor what checks use too), in --json\'s warnings too', async () => {
    const file = path.join(dir, 'gateway-fields.yaml');
    writeFileSync(
      file,
      [
        'gateway: false',
        // Its default host, written out: sets nothing, so nothing to say of it.
        'listen: {host: 127.0.0.1, port: 9443, maxConnections: 100}',
        // caseSensitivePaths judges POST /v1/check's targets: used, not named.
        'upstream: {timeout: 5s, connections: 16, caseSensitivePaths: false}',
        'identityHeaders: {prefix: X-Rows-}',
        'basePath: /v1',
        'routes: [{path: /v1/rows}]',
      ].join('\n'),
    );
    const warning =
      'gateway: false runs no gateway, so listen.port, listen.maxConnections, upstream.timeout, upstream.connections and identityHeaders.prefix have no effect (they apply once the gateway is on again: remove them, or keep them for then)';
    const human = await runCli(['check', '--offline', '--config', file]);
    expect([human.code, human.stdout]).toEqual([0, `${file}: ok (1 plan, 1 route)\nserves: the admin API and the dashboard, no gateway (gateway: false); keygate serve requires the admin token (KEYGATE_ADMIN_TOKEN)\nwarning: ${warning}\n`]);
    const json = await runCli(['--json', 'check', '--offline', '--config', file]);
    expect([json.code, (JSON.parse(json.stdout) as { warnings?: string[] }).warnings]).toEqual([0, [warning]]);
    // The same fields with the gateway on: each in use, nothing to say.
    writeFileSync(file, 'upstream: {url: "http://127.0.0.1:4000", timeout: 5s, connections: 16}\nlisten: {port: 9443, maxConnections: 100}\nidentityHeaders: {prefix: X-Rows-}\n');
    expect((await runCli(['check', '--offline', '--config', file])).stdout).not.toContain('warning:');
  });

  it('check says how serve would serve a profile: gateway and admin API, admin API alone, or not at all and why', async () => {
    const write = (name: string, text: string) => {
      const file = path.join(dir, name);
      writeFileSync(file, text);
      return file;
    };
    const gateway = write('gateway.yaml', 'upstream: {url: "http://127.0.0.1:4000"}\n');
    const adminOnly = write('admin-only.yaml', 'gateway: false\ndashboard: {enabled: false}\nadmin: {tokenEnv: ROWS_ADMIN_TOKEN}\n');
    const library = write('library.yaml', 'plans: {free: {}}\n');
    const json = async (file: string) => {
      const r = await runCli(['--json', 'check', '--offline', '--config', file]);
      return [r.code, (JSON.parse(r.stdout) as { serve: unknown }).serve];
    };
    expect(await json(gateway)).toEqual([0, { servable: true, gateway: true, listeners: ['gateway', 'admin', 'dashboard'] }]);
    expect(await json(adminOnly)).toEqual([0, { servable: true, gateway: false, listeners: ['admin'] }]);
    expect(await json(library)).toEqual([
      0,
      { servable: false, reason: 'no upstream.url for the gateway to forward to, and no gateway: false (a profile for keygate as a library)', fields: ['upstream.url', 'gateway'] },
    ]);
    const human = async (file: string) => (await runCli(['check', '--offline', '--config', file])).stdout;
    expect(await human(gateway)).toBe(`${gateway}: ok (1 plan, 1 route)\nserves: the gateway, the admin API and the dashboard\n`);
    expect(await human(adminOnly)).toBe(`${adminOnly}: ok (1 plan, 1 route)\nserves: the admin API, no gateway (gateway: false); keygate serve requires the admin token (ROWS_ADMIN_TOKEN)\n`);
    expect(await human(library)).toBe(
      `${library}: ok (1 plan, 1 route)\nnot servable by keygate serve: no upstream.url for the gateway to forward to, and no gateway: false (a profile for keygate as a library); set upstream.url, or gateway: false to serve the admin API alone\n`,
    );
  });
});
