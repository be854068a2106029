/**
 * `keygate serve`: the gateway, the admin API and the dashboard, each on its own
 * listener, over one runtime. Closing drains in-flight requests, then flushes usage.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { Server, ServerResponse } from 'node:http';
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

/** How long a connection that has not sent a byte is left alone once a drain begins. */
const UNUSED_GRACE_MS = 1_000;

/**
 * Stops accepting, lets in-flight requests finish, and cuts whatever is left after `ms`.
 *
 * Node's `server.close()` closes the keep-alive connections idle at that moment and
 * waits for every other one to close; Fastify answers requests that arrive meanwhile
 * with a 503 and `Connection: close`. Left to Node, two kinds of connection held a stop
 * to the timeout: one whose answer was on its way (its client keeps it open for the next
 * request), and a spare one that never carried a request (browsers, client pools and
 * load balancers open them ahead of need). And Node's close destroyed a connection whose
 * last answer had been ended but was still being written: a big answer to a slow reader
 * lost its tail. So here a connection between requests is ended (`end()`: queued bytes
 * go out first), one with an answer in flight is ended once that answer is sent, and one
 * that has sent nothing a second into the drain is closed (a request already on its way
 * has arrived by then, and gets its 503). A request sent on a keep-alive connection just
 * as it is ended finds it closed, as with any server's idle timeout; HTTP clients send
 * such a request again on a new connection.
 */
async function drain(app: FastifyInstance, connections: Set<Socket>, ms: number): Promise<void> {
  const timer = setTimeout(() => app.server.closeAllConnections(), ms);
  // What `server.close()` calls (Node 20): ended gracefully instead of destroyed.
  app.server.closeIdleConnections = () => {
    for (const socket of connections) if (socket.bytesRead > 0) endIfIdle(socket);
  };
  // A pipelined request may be next on the connection: then it is not ended here.
  for (const socket of connections) answerInFlight(socket)?.once('close', () => endIfIdle(socket));
  const spare = setTimeout(() => {
    for (const socket of connections) if (socket.bytesRead === 0) socket.destroy();
  }, UNUSED_GRACE_MS);
  try {
    await app.close();
  } finally {
    clearTimeout(timer);
    clearTimeout(spare);
  }
}

/**
 * The response being written on a connection, if any. Node keeps it on the socket as
 * `_httpMessage` (and clears it once the response is handed over in full) and exposes
 * nothing public for it.
 */
function answerInFlight(socket: Socket): ServerResponse | undefined {
  return (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined;
}

/** Ends the connection (queued bytes go out first) unless an answer is being written on it. */
function endIfIdle(socket: Socket): void {
  if (!answerInFlight(socket)) socket.end();
}

/** The listener's open connections, kept up to date (per connection, nothing per request). */
function openConnections(server: Server): Set<Socket> {
  const open = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  return open;
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
  const servers: { app: FastifyInstance; connections: Set<Socket> }[] = [];
  const listen = async (app: FastifyInstance, host: string, port: number) => {
    servers.push({ app, connections: openConnections(app.server) });
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
          await Promise.allSettled(servers.map((s) => drain(s.app, s.connections, options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS)));
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
