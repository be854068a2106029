/**
 * `keygate serve`: the gateway, the admin API and the dashboard, each on its own
 * listener, over one runtime. Closing drains in-flight requests, then flushes usage.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { LoadedConfig } from './config/load.js';
import { createRuntime, type Runtime, type RuntimeOptions } from './runtime.js';
import { buildGateway } from './gateway/gateway.js';
import { buildAdmin } from './admin/admin.js';
import { buildDashboard } from './dashboard/dashboard.js';
import { createMetrics } from './metrics.js';
import { redactUrl } from './store/open.js';

export interface ServeOptions extends RuntimeOptions {
  /** Override listener ports (0 = any free port), e.g. for tests. */
  ports?: { gateway?: number; admin?: number; dashboard?: number };
  /** Admin token; default: the environment variable the profile names. */
  adminToken?: string;
  /** How long closing waits for in-flight requests before cutting connections (default 10 s). */
  drainTimeoutMs?: number;
}

const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;

/** How often a drain closes the connections that have nothing in flight. */
const DRAIN_SWEEP_MS = 100;

/**
 * Stops accepting, lets in-flight requests finish, and cuts whatever is left after `ms`.
 * Node's `server.close()` ends only the keep-alive connections idle at that moment: one
 * whose answer was still on its way, or that never carried a request, would hold the
 * drain to its timeout. So they are closed as soon as they have nothing in flight.
 */
async function drain(app: FastifyInstance, closeUnused: () => void, ms: number): Promise<void> {
  const timer = setTimeout(() => app.server.closeAllConnections(), ms);
  const sweep = setInterval(() => {
    app.server.closeIdleConnections();
    closeUnused();
  }, DRAIN_SWEEP_MS);
  try {
    const closed = app.close();
    closeUnused();
    await closed;
  } finally {
    clearTimeout(timer);
    clearInterval(sweep);
  }
}

/**
 * Connections that have not sent a byte yet: the spare ones browsers, HTTP client pools
 * and load balancers open ahead of need (`closeIdleConnections` leaves them alone). The
 * returned function closes those open now; a client takes a closed spare connection as a
 * reason to open another, as with any idle keep-alive one.
 */
function unusedConnections(server: Server): () => void {
  const open = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  return () => {
    for (const socket of open) if (socket.bytesRead === 0) socket.destroy();
  };
}

export interface RunningKeygate {
  runtime: Runtime;
  gatewayUrl: string;
  adminUrl: string;
  dashboardUrl: string | undefined;
  close(): Promise<void>;
}

export async function serve(loaded: LoadedConfig, options: ServeOptions = {}): Promise<RunningKeygate> {
  const { config } = loaded;
  const upstream = config.upstream.spawn ? await startUpstream(loaded) : undefined;
  let rt: Runtime;
  try {
    rt = await createRuntime(loaded, options);
  } catch (error) {
    upstream?.kill('SIGTERM');
    throw error;
  }
  const { log } = rt;
  const metrics = createMetrics();
  const servers: { app: FastifyInstance; closeUnused: () => void }[] = [];
  const listen = async (app: FastifyInstance, host: string, port: number) => {
    servers.push({ app, closeUnused: unusedConnections(app.server) });
    await app.listen({ host, port });
    const address = app.server.address() as AddressInfo;
    return `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  };

  try {
    const gatewayUrl = await listen(await buildGateway(rt, { metrics }), config.listen.host, options.ports?.gateway ?? config.listen.port);
    rt.listening.gateway = gatewayUrl;

    // Without a token the admin listener still serves /health and /openapi.json.
    const adminToken = options.adminToken ?? rt.env[config.admin.tokenEnv];
    if (!adminToken) log.warn(`admin API locked: set ${config.admin.tokenEnv} to use it (/health still answers)`);
    const adminUrl = await listen(await buildAdmin(rt, { token: adminToken, metrics }), config.admin.listen.host, options.ports?.admin ?? config.admin.listen.port);
    rt.listening.admin = adminUrl;

    let dashboardUrl: string | undefined;
    const dashboard = config.dashboard.enabled ? await buildDashboard(rt) : undefined;
    if (dashboard) {
      dashboardUrl = await listen(dashboard, config.dashboard.listen.host, options.ports?.dashboard ?? config.dashboard.listen.port);
      rt.listening.dashboard = dashboardUrl;
    }

    log.info(
      { profile: config.name, gateway: gatewayUrl, admin: adminUrl, dashboard: dashboardUrl, upstream: redactUrl(config.upstream.url), store: redactUrl(config.store), counters: redactUrl(config.counters) },
      'keygate is serving',
    );

    let closing: Promise<void> | undefined;
    return {
      runtime: rt,
      gatewayUrl,
      adminUrl,
      dashboardUrl,
      close() {
        closing ??= (async () => {
          // Stop accepting, let in-flight requests finish, then write usage out.
          await Promise.allSettled(servers.map((s) => drain(s.app, s.closeUnused, options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS)));
          await rt.close();
          upstream?.kill('SIGTERM');
          log.info('keygate stopped');
        })();
        return closing;
      },
    };
  } catch (error) {
    await Promise.allSettled(servers.map((s) => s.app.close()));
    await rt.close();
    upstream?.kill('SIGTERM');
    throw error;
  }
}

/** Starts the profile's own upstream (examples, demos) and waits until it accepts connections. */
async function startUpstream(loaded: LoadedConfig): Promise<ChildProcess> {
  const [command, ...args] = loaded.config.upstream.spawn as [string, ...string[]];
  const child = spawn(command === 'node' ? process.execPath : command, args, { cwd: loaded.dir, stdio: ['ignore', 'inherit', 'inherit'] });
  const url = new URL(loaded.config.upstream.url);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const deadline = Date.now() + 15_000;
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  while (Date.now() < deadline && !exited) {
    if (await canConnect(url.hostname, port)) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGTERM');
  throw new Error(`upstream.spawn: "${loaded.config.upstream.spawn?.join(' ')}" did not start listening on ${url.host} within 15 s`);
}

/** Whether something accepts TCP connections at host:port. */
export function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
