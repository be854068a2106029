/**
 * Starting keygate for a test: a profile object, a real SQLite file in a temp folder
 * (unless the profile names another store), every listener on a free loopback port.
 */
import path from 'node:path';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { parseConfigObject } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { serve, type RunningKeygate, type ServeOptions } from '../../src/serve.js';
import { createLog } from '../../src/log.js';
import { buildDemoUpstream } from '../../src/demo/upstream.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/** Every log line keygate wrote, as text, for asserting that secrets never appear. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  }
  get text(): string {
    return this.lines.join('\n');
  }
}

export interface TestKeygate extends RunningKeygate {
  /** Always one: startKeygate runs a gateway (a profile with `gateway: false` is served with serve() itself). */
  gatewayUrl: string;
  logs: LogCapture;
  /** fetch against the gateway. */
  call(pathAndQuery: string, init?: RequestInit): Promise<Response>;
  /** fetch against the admin API with the admin token. */
  admin(pathAndQuery: string, init?: RequestInit): Promise<Response>;
}

export async function startKeygate(profile: ConfigInput, options: { dir: string } & ServeOptions): Promise<TestKeygate> {
  const config = parseConfigObject({
    store: `sqlite:${path.join(options.dir, 'keygate.db')}`,
    ...profile,
    dashboard: { enabled: false, ...(profile.dashboard ?? {}) },
  });
  const logs = new LogCapture();
  const running = await serve(
    { config, file: 'test profile', dir: options.dir },
    {
      log: createLog({ level: 'info', destination: logs }),
      adminToken: ADMIN_TOKEN,
      ...options,
      ports: { gateway: 0, admin: 0, dashboard: 0, ...options.ports },
    },
  );
  const { gatewayUrl } = running;
  if (gatewayUrl === undefined) {
    await running.close();
    throw new Error('startKeygate runs a gateway: serve a profile with gateway: false with serve() itself');
  }
  return {
    ...running,
    gatewayUrl,
    logs,
    call: (p, init) => fetch(`${running.gatewayUrl}${p}`, init),
    admin: (p, init) =>
      fetch(`${running.adminUrl}${p}`, {
        ...init,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(init?.body ? { 'content-type': 'application/json' } : {}), ...(init?.headers as Record<string, string>) },
      }),
  };
}

export async function startDemoUpstream(): Promise<{ url: string; close(): Promise<void> }> {
  const app = buildDemoUpstream();
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
}
