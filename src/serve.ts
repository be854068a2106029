/**
 * `keygate serve`: the gateway, the admin API and the dashboard, each on its own
 * listener, over one runtime (with `gateway: false`, the admin API and the dashboard
 * only). Closing drains in-flight requests, then flushes usage.
 */
import dns from 'node:dns';
import { createServer } from 'node:net';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { loadConfigFile, type LoadedConfig } from './config/load.js';
import { ConfigError } from './config/config-error.js';
import type { Config } from './config/schema.js';
import { createRuntime, RELOADABLE, type Runtime, type RuntimeOptions } from './runtime.js';
import { profileDigest } from './config/profile-digest.js';
import { buildGateway } from './gateway/gateway.js';
import { buildAdmin } from './admin/admin.js';
import { beyondLoopbackWarnings } from './dashboard/host-names.js';
import { buildDashboard } from './dashboard/dashboard.js';
import { createMetrics } from './metrics.js';
import { capConnections, defaultGatewayCap, openFilesLimit } from './connection-cap.js';
import { closeKeptAliveByBlankLines } from './idle-connections.js';
import { redactUrl } from './store/open.js';
import { answerInFlight, betweenRequests, requestBeingRead } from './http-internals.js';
import { createLog, droppedLogLines, releaseStandardOutput, withProcess, type Log } from './log.js';
import { KEYGATE_VERSION } from './build-info.js';
import { startUpstream, UPSTREAM_PROBE_MS } from './spawned-upstream.js';
import { upstreamFailureHint } from './upstream-failure.js';
import { checkHealth, type Health } from './operations/health.js';
import { LISTEN_PROBLEMS, tryListeners, where as listenAt, type ListenError } from './operations/listen-ports.js';
import { describeListeners, HOST_FIELD, listenSettings, PORT_FIELD, servingPlan, upstreamAddress, type ListenerKind } from './config/servable.js';
import { unusedFields } from './config/unused-fields.js';

export interface ServeOptions extends RuntimeOptions {
  /** Override listener ports (0 = any free port), e.g. for tests. */
  ports?: { gateway?: number; admin?: number; dashboard?: number };
  /** What to tell a user whose port is taken, where the profile is not theirs to change (the demo's). */
  portHint?: string;
  /**
   * The command-line flags that set each listener's port instead of the profile (`keygate
   * serve`'s): named beside the profile's field when a port is taken, since a second
   * process on one host shares the profile and moves its ports with them.
   */
  portFlags?: { gateway: string; admin: string; dashboard: string };
  /** Admin token (or several, comma-separated); default: the environment variable the profile names. */
  adminToken?: string;
  /** Where a caller finds `adminToken`, as the admin API's refusals say it (the demo's banner); default, the variable the profile names. */
  adminTokenFrom?: string;
  /** Read-only admin token (or several); default: the environment variable `admin.readTokenEnv` names. */
  adminReadToken?: string;
  /** How long closing waits for in-flight requests before cutting connections (default: the profile's `shutdown.drainTimeout`). */
  drainTimeoutMs?: number;
  /** The admin API's POST /v1/check: how long a check waits for its settle before it is released (default 10 minutes), and how many wait at most (50,000). */
  check?: { settleTimeoutMs?: number; maxPending?: number };
}

/**
 * How long a client may take to send a whole request, headers and body, before it is
 * answered 408 and its connection closed (Fastify's default is no limit: a client could
 * hold a connection by sending a body a byte a minute). The gateway allows uploads
 * Node's own default of 5 minutes; the admin API and the dashboard take small bodies.
 * Each listener's `requestTimeout` in the profile overrides these.
 */
const REQUEST_TIMEOUT_MS = { gateway: 300_000, admin: 30_000, dashboard: 30_000 } as const;
/** How often Node looks for requests past their time, at most (its own default is 30 s). */
const REQUEST_CHECK_INTERVAL_MS = 5_000;

/** How long a connection that has not sent a byte is left alone once a drain begins. */
const UNUSED_GRACE_MS = 1_000;
/** How long a drain reads the rest of a request it has already answered, at most. */
const LINGER_MS = 2_000;

/** One Fastify app and its open connections (those accepted on every address it listens on). */
interface Listener {
  app: FastifyInstance;
  kind: 'gateway' | 'admin' | 'dashboard';
  connections: Set<Socket>;
}

/**
 * Stops accepting, lets in-flight requests finish, and cuts whatever is left after `ms`.
 *
 * Node's `server.close()` closes the keep-alive connections idle at that moment and
 * waits for every other one to close; the listeners answer requests that arrive
 * meanwhile with a 503 and `Connection: close`. Left to Node, several kinds of connection
 * held a stop to the timeout: one whose answer was on its way (its client keeps it open
 * for the next request), one with pipelined requests queued behind that answer, and a
 * spare one that never carried a request (browsers, client pools and load balancers open
 * them ahead of need). And Node's close destroyed a connection whose last answer had been
 * ended but was still being written: a big answer to a slow reader lost its tail.
 *
 * So here, a connection is closed once it is idle: no answer being written on it and no
 * request half read (Node's HTTP parser knows: `betweenRequests`). One with an answer in
 * flight is looked at again when that answer is sent (and again after each answer
 * pipelined behind it). One that has read part of a request is left alone: the request
 * is answered (with the 503 once it is whole) and the connection looked at again. One
 * whose request was answered before its body was in (a 401 on an upload) is looked at
 * again once Node has read the rest of the body and dropped it, or closed if that takes
 * longer than LINGER_MS. A client that stops sending half-way through a request not yet
 * answered, or stops reading an answer, holds the stop to `ms`. One that has sent
 * nothing a second into the drain is closed (a request already on its way has arrived
 * by then, and gets its 503). Closing is `destroySoon()`: queued bytes go out first,
 * and the client's own FIN is not awaited (Node's HTTP sockets allow half-open connections, so `end()`
 * alone left a client that never closes its side holding the stop). A request sent on a
 * keep-alive connection just as it is closed finds it closed, as with any server's idle
 * timeout; most HTTP clients (browsers, undici's fetch, curl) send such a request again
 * on a new connection, Node's own `http.Agent` does not.
 */
async function drain({ app, connections, kind }: Listener, ms: number, log: Log): Promise<void> {
  const timer = setTimeout(() => {
    if (connections.size > 0) log.warn({ listener: kind, cut: connections.size, drainTimeoutMs: ms }, `drain timeout reached: cut ${connections.size} ${kind} connection(s) still open (a request whose answer was cut is logged as 499, as one whose client left: outcome forwarded where it waited on the upstream)`);
    for (const socket of connections) socket.destroy();
  }, ms);
  const watched = new WeakSet<ServerResponse | IncomingMessage>();
  /**
   * Closes the connection if it is idle, or looks at it again once its answer is sent.
   * `idle`: the connections between requests, when the caller has already asked.
   */
  const closeWhenIdle = (socket: Socket, idle?: Set<Socket | undefined>) => {
    const answer = answerInFlight(socket);
    if (answer) {
      if (watched.has(answer)) return;
      watched.add(answer);
      answer.once('close', () => closeWhenIdle(socket));
      return;
    }
    // A request answered before its body was in (a 401 on an upload): Node reads the rest
    // and drops it, so that the client, still sending, is not reset before it has read
    // the answer. The connection is looked at again once that is done, or closed after
    // LINGER_MS if the rest is slow to come (as nginx's lingering close does).
    const reading = requestBeingRead(socket);
    if (reading && !reading.complete) {
      if (watched.has(reading)) return;
      watched.add(reading);
      const linger = setTimeout(() => socket.destroySoon(), LINGER_MS);
      reading.once('end', () => {
        clearTimeout(linger);
        closeWhenIdle(socket);
      });
      socket.once('close', () => clearTimeout(linger));
      return;
    }
    // Asked only here: an answer in flight settles it without walking every connection.
    const between = idle ?? betweenRequests(app.server);
    if (between ? between.has(socket) : socket.bytesRead > 0) socket.destroySoon();
  };
  // What `server.close()` calls (Node 20): idle ones are closed gracefully instead of destroyed.
  app.server.closeIdleConnections = () => {
    const idle = betweenRequests(app.server);
    for (const socket of connections) closeWhenIdle(socket, idle);
  };
  // A request that was half received when the drain began: closed once it is answered.
  app.server.on('request', (request: IncomingMessage) => closeWhenIdle(request.socket));
  const spare = setTimeout(() => {
    // Run after the event loop's next I/O phase: a request that arrived while the process
    // was stalled past the grace (a long GC pause, a busy host) is read before we look.
    setImmediate(() => {
      for (const socket of connections) if (socket.bytesRead === 0) socket.destroy();
    });
  }, UNUSED_GRACE_MS);
  try {
    await app.close();
  } finally {
    clearTimeout(timer);
    clearTimeout(spare);
  }
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

/**
 * Listens on `host`, and when it is `localhost` on each address it resolves to (127.0.0.1
 * and ::1, say), as Fastify does. Fastify opens a server of its own for each further
 * address, which `drain` cannot see: so keygate resolves `localhost` itself, gives
 * Fastify the first address, and accepts connections on the others with plain TCP
 * servers that hand each socket to Fastify's HTTP server. Those connections are then
 * that server's: its requests, its timeouts, its `closeIdleConnections`, and `drain`'s
 * watch; closing it also closes the extra servers, and waits for their connections.
 */
async function listenOnEach(app: FastifyInstance, host: string, port: number, log: Runtime['log'], each: (server: NetServer) => void): Promise<AddressInfo> {
  const [first = host, ...others] = host === 'localhost' ? await resolveAll(host) : [host];
  each(app.server);
  await app.listen({ host: first, port });
  const address = app.server.address() as AddressInfo;
  const extras: NetServer[] = [];
  for (const other of others) {
    // The socket options of Node's own HTTP server, so these connections behave as its own.
    const extra = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => app.server.emit('connection', socket));
    each(extra);
    try {
      await new Promise<void>((resolve, reject) => extra.once('error', reject).listen(address.port, other, resolve));
      extra.on('error', (error) => log.error({ err: error, address: other }, 'listener error'));
      extras.push(extra);
    } catch (error) {
      // As Fastify does: the first address is enough to serve.
      log.warn({ err: error, address: other }, `not listening on ${other} (${host} resolves to it too)`);
    }
  }
  if (extras.length > 0) closeWithServer(app.server, extras);
  return address;
}

/** Every address a host name resolves to, without duplicates, in the resolver's order. */
function resolveAll(host: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    // `dns.lookup` looked up at call time, not bound at import, so tests can stand in for it.
    dns.lookup(host, { all: true }, (error, addresses) => (error ? reject(error) : resolve([...new Set(addresses.map((a) => a.address))])));
  });
}

/** Makes closing `server` also close `extras`, and call back only once they are all closed. */
function closeWithServer(server: Server, extras: NetServer[]): void {
  const close = server.close.bind(server);
  server.close = ((done?: (error?: Error) => void) => {
    const closed = extras.map((extra) => new Promise<void>((resolve) => extra.close(() => resolve())));
    return close((error?: Error) => void Promise.all(closed).then(() => done?.(error)));
  }) as Server['close'];
}

/** The shortest admin token keygate accepts. */
const MIN_ADMIN_TOKEN_LENGTH = 16;

/**
 * The admin tokens the variable holds: one, or several separated by commas while one
 * replaces another (`new,old`: scripts move to the new one, then the old is dropped).
 * None when it is unset, or when any of them is short enough to guess (it guards every
 * account and key): the admin API is then locked, and the log says why; or, where it is
 * `required` (no gateway), keygate does not start: the error `required` makes of why is thrown.
 */
function adminTokensOf(
  value: string | undefined,
  tokenEnv: string,
  log: Log,
  kind: 'admin' | 'read-only' = 'admin',
  adminUsable = false,
  required?: (why: string) => Error,
): { tokens: string[]; refused?: string } {
  const tokens = (value ?? '').split(',').map((token) => token.trim()).filter((token) => token !== '');
  // What a bad token shuts: the whole admin API, or (read-only tokens, which are optional) only those.
  const locked = kind === 'admin' ? 'admin API locked' : 'read-only admin tokens refused';
  // What still answers: a refused admin token leaves reads with a read-only one (judged next); a
  // refused read-only token leaves the admin token, if it is usable; else only the open paths.
  const still =
    kind === 'admin'
      ? '/health, /health/ready and /openapi.json still answer, and reads with a read-only token if one is set'
      : adminUsable
        ? 'the admin token still works'
        : '/health, /health/ready and /openapi.json still answer';
  if (tokens.length === 0) {
    if (required) throw required(`${tokenEnv} is not set; set it to at least ${MIN_ADMIN_TOKEN_LENGTH} random characters, e.g. openssl rand -base64 24`);
    if (kind === 'admin') log.warn(`admin token not set: set ${tokenEnv} to make changes through the admin API (without it, only /health, /health/ready and /openapi.json answer, and reads with a read-only token if one is set)`);
    return { tokens: [] };
  }
  /** How the log names the token at `index`. */
  const which = (index: number) => (tokens.length === 1 ? tokenEnv : `token ${index + 1} of the ${tokens.length} in ${tokenEnv}`);
  const spaced = tokens.findIndex((token) => /\s/.test(token));
  // curl sends "é" as two UTF-8 bytes, Node's fetch as one Latin-1 byte: no client could count on matching it.
  const nonAscii = tokens.findIndex((token) => /[^\x21-\x7e]/.test(token));
  const short = tokens.findIndex((token) => token.length < MIN_ADMIN_TOKEN_LENGTH);
  const length = short === -1 ? 0 : (tokens[short] as string).length;
  const refused =
    spaced !== -1
      ? `${which(spaced)} has a space in it, and "Authorization: Bearer <token>" cannot carry one`
      : nonAscii !== -1
        ? `${which(nonAscii)} has a character other than printable ASCII, which HTTP clients send as different bytes; use ASCII only, e.g. openssl rand -base64 24`
        : short !== -1
        ? `${which(short)} is ${length} character${length === 1 ? '' : 's'} long; use at least ${MIN_ADMIN_TOKEN_LENGTH} random ones, e.g. openssl rand -base64 24`
        : undefined;
  if (refused === undefined) return { tokens };
  if (required) throw required(refused);
  log.error(`${locked}: ${refused} (${still})`);
  return { tokens: [], refused };
}

export interface RunningKeygate {
  runtime: Runtime;
  /** Undefined with `gateway: false` (no gateway listener is opened). */
  gatewayUrl: string | undefined;
  adminUrl: string;
  dashboardUrl: string | undefined;
  /**
   * Reads the profile again (or takes `next`) and puts it into effect without a restart
   * (`Runtime.reload`; `keygate serve` does this on SIGHUP). Logs what changed, or why
   * nothing did, and answers the changed fields; rejects with the reason when the profile
   * cannot be read or has changes only a restart applies (the profile in use stays).
   */
  reload(next?: LoadedConfig): Promise<string[]>;
  /**
   * Stops: /health/ready answers 503 at once; after `shutdown.readinessDelay` (serving as
   * before meanwhile, but closing each gateway connection after its next forwarded or
   * built-in answer) the listeners close, answers in flight finish, usage is written.
   * `why` (a signal's name, say) is logged. With `startedJustNow` (a stop asked while
   * keygate started: it was in no load balancer yet) the readiness delay is skipped, and
   * the log says why.
   */
  close(why?: string, options?: { startedJustNow?: boolean }): Promise<void>;
  /** Cuts a readiness delay under way short (a second signal); false if there is none to cut. */
  hurry(): boolean;
}

/** The profile fields that set each listener's connection cap (its port's and host's: PORT_FIELD, HOST_FIELD, config/servable.ts). */
const MAX_CONNECTIONS_FIELD = { gateway: 'listen.maxConnections', admin: 'admin.listen.maxConnections', dashboard: 'dashboard.listen.maxConnections' } as const;

/**
 * Why a listener cannot listen where the profile says, naming the listener, and what moves
 * it: the profile's field, unless the port was the caller's (the demo's --port, serve's
 * --admin-port): given, even as the profile's own number, the profile would not move it.
 * Another error is answered as it is.
 */
function listenRefusal(error: unknown, kind: ListenerKind, host: string, port: number, options: ServeOptions): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  const problem = code === undefined ? undefined : LISTEN_PROBLEMS[code];
  if (problem === undefined) return error;
  const given = options.ports?.[kind] !== undefined;
  const flag = options.portFlags?.[kind];
  // A second process may take another port; a port this user may not listen on is no matter of a second process.
  const secondProcess = flag === undefined || code !== 'EADDRINUSE' ? '' : ` (or, for a second process serving the same profile on this host, start it with ${flag} <port>)`;
  const profileRemedy = `change ${PORT_FIELD[kind]} in the profile${secondProcess}`;
  const remedy = problem.field === 'host' ? `change ${HOST_FIELD[kind]} in the profile` : (options.portHint ?? (given ? 'choose another port' : profileRemedy));
  return Object.assign(new Error(`the ${kind} cannot listen on ${listenAt(host, port, error as ListenError)}: ${problem.why}; ${remedy}`), { code });
}

/**
 * Each listener's address taken, held until all are, and let go, before the store is
 * opened: a port another process holds, one of keygate's own listeners holds (a host name
 * that is another's address, a flag given another's port), an address not this machine's
 * or a port this user may not take refuses the start, as the listener itself would, before
 * a new SQLite file is made and migrated. The listeners still answer for a port taken in
 * the moment between.
 */
async function tryListening(config: Config, listeners: readonly ListenerKind[], options: ServeOptions): Promise<void> {
  const where = listenSettings(config);
  // Held until all are tried, as the listeners hold them: two of ours on one address are told from another process.
  const [refused] = await tryListeners(
    listeners.map((kind) => ({ listener: kind, host: where[kind].host, port: options.ports?.[kind] ?? where[kind].port })),
    { firstOnly: true },
  );
  if (refused === undefined) return;
  const { listener, host, port, error, sharedWith } = refused;
  if (sharedWith === undefined) throw listenRefusal(error, listener, host, port, options);
  // Each port as it was set: the profile's field, or serve's flag (which the profile would not move).
  const setBy = (kind: ListenerKind) => (options.ports?.[kind] === undefined ? PORT_FIELD[kind] : (options.portFlags?.[kind] ?? 'the port given'));
  throw Object.assign(
    new Error(`the ${listener} cannot listen on ${listenAt(host, port, error)}: the ${sharedWith} listens there (${setBy(sharedWith)} ${port}, on ${HOST_FIELD[sharedWith]} ${where[sharedWith].host || '""'}); give each listener a port of its own (${setBy(listener)})`),
    { code: error.code },
  );
}

/**
 * What serving needs of a profile beyond the schema (config/servable.ts): `upstream.url`,
 * where the gateway forwards, or `gateway: false`, and an upstream.url that is not one of
 * keygate's own listeners (on the ports given, where given). The schema takes a profile
 * with neither, for the library, which forwards nothing; serve refuses one as it refuses a
 * bad profile, naming the fields, before it opens anything. Answers the listeners to open.
 */
function requireServable({ config, file }: LoadedConfig, options: ServeOptions): ListenerKind[] {
  const plan = servingPlan(config, options);
  if (!plan.servable) throw new ConfigError(file, plan.problems, plan.headline);
  return plan.listeners;
}

export async function serve(loaded: LoadedConfig, options: ServeOptions = {}): Promise<RunningKeygate> {
  const listeners = requireServable(loaded, options);
  const { config } = loaded;
  /** With `gateway: false`, undefined: nothing is forwarded. */
  const upstreamUrl = config.gateway ? config.upstream.url : undefined;
  /** The gateway's request lines go here as they are: each names its process in its `reqId`. */
  const requestLog = options.log ?? createLog({ level: config.log.level, bufferSize: config.log.bufferSize });
  // Every other line says which process wrote it, as the start line does (bound once: nothing per line).
  const log = withProcess(requestLog);
  /** serve's own log (on standard output) is ended as it stops, after its last line; a caller's is left alone. */
  const endLog = options.log === undefined ? () => releaseStandardOutput(requestLog) : async () => true;
  // Without a token the admin listener still serves /health and /openapi.json; but without a
  // gateway the admin API is what keygate is for (POST /v1/check takes the admin token only).
  // Refused as a bad profile is (exit code 2), naming the variable and the field that names it,
  // before anything is started or written (the store's file and its migrations).
  let adminWithoutGateway: ReturnType<typeof adminTokensOf> | undefined;
  if (upstreamUrl === undefined) {
    const required = (why: string) => noGatewayWithoutToken(loaded.file, config.admin.tokenEnv, why);
    try {
      adminWithoutGateway = adminTokensOf(options.adminToken ?? (options.env ?? process.env)[config.admin.tokenEnv], config.admin.tokenEnv, log, 'admin', false, required);
    } catch (error) {
      void endLog();
      throw error;
    }
  }
  // Before the store is opened (a SQLite file made and migrated) or an upstream started: a
  // port another process holds fails the start with nothing left behind.
  try {
    await tryListening(config, listeners, options);
  } catch (error) {
    void endLog();
    throw error;
  }
  const upstream = config.upstream.spawn
    ? await startUpstream(loaded, log).catch((error: unknown) => {
        void endLog();
        throw error;
      })
    : undefined;
  // Port 0 in upstream.url: the one keygate chose for the command it started is forwarded to.
  const withUpstream = (next: LoadedConfig): LoadedConfig =>
    upstream === undefined || next.config.upstream.url !== config.upstream.url ? next : { ...next, config: { ...next.config, upstream: { ...next.config.upstream, url: upstream.url } } };
  let rt: Runtime;
  try {
    rt = await createRuntime(withUpstream(loaded), { ...options, log });
  } catch (error) {
    upstream?.stop();
    void endLog();
    throw error;
  }
  sayUnusedFields(config, log);
  if (upstream) {
    rt.upstreamDown = upstream.down;
    rt.upstreamNextStartInMs = upstream.nextStartInMs;
  }
  /** The digest of the profile in effect (what a reload can change): on the start line, each reload's, and /metrics. */
  let digest = profileDigest(rt.config, RELOADABLE);
  const metrics = createMetrics({
    storeLookups: rt.storeLookups,
    keyCache: rt.keyCache,
    profileDigest: () => digest,
    blocksStarted: rt.blockStarts.byWindow,
    addressBlocks: rt.addressBlocks,
    ...(rt.counters.roundTrips ? { roundTrips: rt.counters.roundTrips } : {}),
    ...(rt.counters.heldUnits ? { heldUnits: rt.counters.heldUnits.bind(rt.counters) } : {}),
    ...(upstream ? { spawnedUpstream: upstream } : {}),
    // Standard output's, whichever log this process writes: one not on it drops nothing.
    logLinesDropped: droppedLogLines,
  });
  const servers: Listener[] = [];
  /** Starts a listener as its part of the profile says (`port`: the caller's override). */
  const listen = async (app: FastifyInstance, kind: keyof typeof REQUEST_TIMEOUT_MS, at: Config['listen'], port = at.port) => {
    const requestTimeout = at.requestTimeout ?? REQUEST_TIMEOUT_MS[kind];
    app.server.requestTimeout = requestTimeout;
    // Node swaps the two if the headers' limit is the longer one.
    app.server.headersTimeout = Math.min(app.server.headersTimeout, requestTimeout);
    // Read by Node when the server starts listening.
    (app.server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.max(50, Math.min(REQUEST_CHECK_INTERVAL_MS, requestTimeout / 4));
    // Read by Node for each answer (`Keep-Alive: timeout=N`) and each idle connection.
    app.server.keepAliveTimeout = at.keepAliveTimeout;
    // Blank lines between requests would otherwise hold a connection open without end.
    closeKeptAliveByBlankLines(app.server);
    servers.push({ app, kind, connections: openConnections(app.server) });
    const maxConnections = at.maxConnections ?? (kind === 'gateway' ? defaultGatewayCap(openFilesLimit(), config.upstream.connections) : undefined);
    const cap = maxConnections === undefined ? () => {} : capConnections(kind, MAX_CONNECTIONS_FIELD[kind], maxConnections, log, metrics.connectionDropped);
    let address: AddressInfo;
    try {
      address = await listenOnEach(app, at.host, port, log, cap);
    } catch (error) {
      throw listenRefusal(error, kind, at.host, port, options);
    }
    return `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  };

  try {
    // Judged at the start without a gateway (refused there without a usable token).
    const admin = adminWithoutGateway ?? adminTokensOf(options.adminToken ?? rt.env[config.admin.tokenEnv], config.admin.tokenEnv, log, 'admin');
    const read = adminTokensOf(options.adminReadToken ?? rt.env[config.admin.readTokenEnv], config.admin.readTokenEnv, log, 'read-only', admin.tokens.length > 0);
    rt.adminTokens = [...admin.tokens, ...read.tokens];

    let gatewayUrl: string | undefined;
    if (upstreamUrl !== undefined) {
      gatewayUrl = await listen(await buildGateway(rt, { metrics, requestLog }), 'gateway', config.listen, options.ports?.gateway);
      rt.listening.gateway = gatewayUrl;
    }
    const adminOptions = { tokens: admin.tokens, readTokens: read.tokens, metrics, ...(admin.refused ? { lockedBecause: admin.refused } : {}), ...(options.adminTokenFrom !== undefined ? { tokenFrom: options.adminTokenFrom } : {}), ...(options.check ? { check: options.check } : {}) };
    const adminUrl = await listen(await buildAdmin(rt, adminOptions), 'admin', config.admin.listen, options.ports?.admin);
    rt.listening.admin = adminUrl;

    let dashboardUrl: string | undefined;
    const dashboard = config.dashboard.enabled ? await buildDashboard(rt) : undefined;
    if (dashboard) {
      dashboardUrl = await listen(dashboard, 'dashboard', config.dashboard.listen, options.ports?.dashboard);
      rt.listening.dashboard = dashboardUrl;
      for (const warning of beyondLoopbackWarnings(config.dashboard)) log.warn({ host: config.dashboard.listen.host }, warning);
    }

    // A process that starts without a backend (a mistyped Redis URL) serves in its failure
    // mode; the line an operator waits for after a deploy says so, not only /health/ready.
    // The store answered moments ago (the migrations were checked): not pinged again.
    const health = await checkHealth(rt, 'ok');
    const started = health.status === 'ok' ? log.info.bind(log) : log.warn.bind(log);
    started(
      {
        profile: config.name,
        // Which release, and which profile: what to compare across processes (a rolling upgrade, a missed SIGHUP).
        version: KEYGATE_VERSION,
        digest,
        gateway: gatewayUrl ?? false,
        admin: adminUrl,
        dashboard: dashboardUrl,
        ...(upstreamUrl === undefined ? {} : { upstream: redactUrl(upstream?.url ?? upstreamUrl) }),
        store: redactUrl(config.store),
        counters: redactUrl(config.counters),
        status: health.status,
        ...(health.reason === undefined ? {} : { reason: health.reason }),
      },
      servingMessage(health, upstreamUrl === undefined ? listeners : undefined),
    );
    // After the listeners, not awaited: readiness is not delayed. One spawned here has been started (it listens), and is tried as well.
    if (upstreamUrl !== undefined) void warnIfUpstreamDown(upstream?.url ?? upstreamUrl, log, () => rt.stopping);
    // Likewise Redis's user: one whose ACL leaves out keygate's keys answers PING, and the start says "ok".
    if (config.counters !== 'memory' && health.status === 'ok') void warnIfRedisRefusesUse(config.counters, config.counterFailure, log, () => rt.stopping);
    // After the listeners are up: with a million keys the look takes about a second, and it is only a warning.
    void rt.warnOfKeysOutsideFormat();

    let closing: Promise<void> | undefined;
    /** Ends the readiness delay early, while it lasts. */
    let endDelay: (() => void) | undefined;
    const reloadFrom = async (next: LoadedConfig | undefined) => {
      try {
        if (closing) throw new Error('keygate is stopping');
        const profile = next ?? loadConfigFile(loaded.file);
        requireServable(profile, options);
        const changed = await rt.reload(withGivenPorts(withUpstream(profile), rt.config, options.ports));
        digest = profileDigest(rt.config, RELOADABLE);
        metrics.reload('applied');
        if (changed.length === 0) log.info({ file: loaded.file, digest }, 'profile reloaded: nothing changed');
        else log.info({ file: loaded.file, changed, digest }, `profile reloaded: ${changed.join(', ')} changed`);
        // The profile as read, not the one in use: a reload that only reorders routes keeps the
        // one in use, whose routes[i] would name another route than the file's.
        sayUnusedFields(profile.config, log);
        return changed;
      } catch (error) {
        // A profile that does not validate: its problems as a list, as a failed start gives
        // them (a log reader need not split a message of many lines), the message in one line.
        const { why, fields } = error instanceof ConfigError ? { why: error.summary, fields: { problems: error.problems } } : { why: error instanceof Error ? error.message : String(error), fields: {} };
        const message = `profile not reloaded, the one in use stays: ${why}`;
        // Refused on purpose while stopping (not counted: no profile was judged); otherwise the profile is wrong.
        if (closing) log.warn(fields, message);
        else {
          log.error(fields, message);
          metrics.reload('refused');
        }
        throw error;
      }
    };
    return {
      runtime: rt,
      gatewayUrl,
      adminUrl,
      dashboardUrl,
      reload: reloadFrom,
      close(why, { startedJustNow = false } = {}) {
        closing ??= (async () => {
          // Out of the load balancer first (readiness 503, still serving), then stop
          // accepting, let in-flight requests finish, and write usage out.
          rt.stopping = true;
          const stopStarted = performance.now();
          // The upstream it started serves the drain; one that exits now is not started again.
          upstream?.stopRestarting();
          const { readinessDelay, drainTimeout } = rt.config.shutdown;
          const ms = options.drainTimeoutMs ?? drainTimeout;
          const signal = why === undefined ? '' : ` (${why})`;
          if (readinessDelay > 0 && startedJustNow) {
            const open = servers.reduce((n, s) => n + s.connections.size, 0);
            log.info({ openConnections: open }, `keygate stopping${signal}, asked while it started: no readiness delay (it was in no load balancer yet): closing the listeners`);
          } else if (readinessDelay > 0) {
            log.info({ readinessDelayMs: readinessDelay }, `keygate stopping${signal}: /health/ready answers 503; serving ${readinessDelay / 1000} s more before closing the listeners (a second signal cuts it short)`);
            const cutShort = await new Promise<boolean>((resolve) => {
              const timer = setTimeout(() => resolve(false), readinessDelay);
              endDelay = () => {
                clearTimeout(timer);
                resolve(true);
              };
            });
            endDelay = undefined;
            const open = servers.reduce((n, s) => n + s.connections.size, 0);
            log.info({ openConnections: open }, `${cutShort ? 'readiness delay cut short' : 'readiness delay over'}: closing the listeners (${open} connection(s) open)`);
          } else {
            // What the drain has to finish: a stop's length follows from it.
            const open = servers.reduce((n, s) => n + s.connections.size, 0);
            log.info({ openConnections: open }, `keygate stopping${signal}: closing the listeners`);
          }
          // The gateway (and the dashboard) first: the admin API's /health/ready and
          // /metrics answer while their answers in flight finish. One deadline for all.
          const deadline = Date.now() + ms;
          await Promise.allSettled(servers.filter((s) => s.kind !== 'admin').map((s) => drain(s, ms, log)));
          await Promise.allSettled(servers.filter((s) => s.kind === 'admin').map((s) => drain(s, Math.max(0, deadline - Date.now()), log)));
          await rt.close();
          upstream?.stop();
          // From the signal: to set a grace period (Kubernetes, systemd) from what stops take.
          log.info({ ms: Math.round(performance.now() - stopStarted) }, 'keygate stopped');
          await endLog();
        })();
        return closing;
      },
      hurry() {
        if (!endDelay) return false;
        endDelay();
        endDelay = undefined;
        return true;
      },
    };
  } catch (error) {
    await Promise.allSettled(servers.map((s) => s.app.close()));
    await rt.close();
    upstream?.stop();
    void endLog();
    throw error;
  }
}

/**
 * A profile read again for a reload, with the listen ports of the running one where a port
 * was given in place of the profile's (`serve --port`): the profile's are not in use, so a
 * change to them is no change that needs a restart.
 */
function withGivenPorts(next: LoadedConfig, running: Config, ports: ServeOptions['ports']): LoadedConfig {
  if (ports === undefined) return next;
  const { listen, admin, dashboard } = next.config;
  return {
    ...next,
    config: {
      ...next.config,
      listen: ports.gateway === undefined ? listen : { ...listen, port: running.listen.port },
      admin: ports.admin === undefined ? admin : { ...admin, listen: { ...admin.listen, port: running.admin.listen.port } },
      dashboard: ports.dashboard === undefined ? dashboard : { ...dashboard, listen: { ...dashboard.listen, port: running.dashboard.listen.port } },
    },
  };
}


/**
 * The start line: "keygate is serving" (without a gateway, what it serves instead), and when
 * the process starts unready or degraded, why.
 */
function servingMessage(health: Health, withoutGateway?: readonly ListenerKind[]): string {
  const serving = withoutGateway === undefined ? 'keygate is serving' : `keygate is serving ${describeListeners(withoutGateway)}, no gateway (gateway: false)`;
  if (health.status === 'ok') return serving;
  if (health.status === 'degraded') return `${serving}, but degraded: ${health.reason}`;
  return `${serving}, but not ready: ${health.reason}; /health/ready answers 503 until it is`;
}

/**
 * The fields the profile sets that set nothing (config/unused-fields.ts), one warning for
 * each group, at start and after each reload as the route table's gaps are: valid, so
 * serving goes on.
 */
function sayUnusedFields(config: Config, log: Log): void {
  for (const unused of unusedFields(config)) log.warn({ fields: unused.fields }, unused.warning);
}

/** Why serve refuses to start without a gateway and without a usable admin token: it is then what keygate is used with. */
function noGatewayWithoutToken(file: string, tokenEnv: string, why: string): ConfigError {
  return new ConfigError(
    file,
    [{ field: 'admin.tokenEnv', message: `gateway: false serves the admin API alone, and a backend's POST /v1/check needs the admin token (in ${tokenEnv}, the variable admin.tokenEnv names), but ${why}` }],
    `cannot be served with gateway: false without a usable admin token in ${tokenEnv}`,
  );
}

/**
 * Says at start-up when Redis answers but refuses what serve asks of the profile's user (an
 * ACL without keygate's keys, scripts or channel; a read-only replica), in `keygate check`'s
 * words: otherwise the start says "ok", `/health/ready` answers 200, and the first sign is
 * the first counted request's 503 (counterFailure: closed), or, with counterFailure: open,
 * limits each process enforces alone and a "degraded" readiness. Not awaited, and nothing
 * when Redis takes it or cannot be reached (the counters say that themselves).
 */
async function warnIfRedisRefusesUse(countersUrl: string, counterFailure: 'open' | 'closed', log: Log, stopping: () => boolean): Promise<void> {
  const { reachRedis, REACH_DEADLINE_MS } = await import('./operations/reach.js');
  const reached = await reachRedis(countersUrl, REACH_DEADLINE_MS);
  if (reached.ok || reached.answersPing !== true || stopping()) return;
  // As the counters meet an admission Redis answers with an error (RedisCounters.withoutRedis, checkHealth's verdict).
  const then =
    counterFailure === 'open'
      ? 'requests with a rate limit, block policy or cost will be admitted on per-process limits (counterFailure: open) from the first one on, and /health/ready say "degraded" from then'
      : 'requests with a rate limit, block policy or cost will be refused (service_unavailable) from the first one on, and /health/ready answer 503 from then';
  log.warn({ counters: reached.at }, `counters: ${reached.problem}; ${then}`);
}

/**
 * Says at start-up when the upstream cannot be reached (not started yet, another port, the
 * wrong scheme), after one HEAD / as `keygate check` asks it, with the hint the gateway's
 * `upstream request failed` warning gives (upstreamFailureHint): otherwise the first sign
 * is a client's 502 after "status ok". Nothing when it answers, whatever it answers. Not
 * awaited: readiness is not delayed, and serving goes on (it may come later).
 */
async function warnIfUpstreamDown(upstreamUrl: string, log: Log, stopping: () => boolean): Promise<void> {
  const { askUpstream } = await import('./operations/reach.js');
  const answer = await askUpstream(upstreamUrl, UPSTREAM_PROBE_MS, 'keygate-serve');
  // A stop begun meanwhile: the answer no longer matters, and "keygate stopped" stays the last line.
  if (answer.answered || stopping()) return;
  const { host, port } = upstreamAddress(new URL(upstreamUrl));
  const { error, connected } = answer;
  const upstream = redactUrl(upstreamUrl);
  const code = error?.code;
  const hint = error === undefined ? undefined : upstreamFailureHint(upstreamUrl, code, error.message);
  const fields = { upstream, ...(error === undefined ? {} : { error: { message: error.message, code } }), ...(hint === undefined ? {} : { hint }) };
  if (error === undefined && connected) {
    log.warn(fields, `the upstream at ${host}:${port} took the connection but gave no answer to HEAD / within ${UPSTREAM_PROBE_MS / 1000} s (checked once, at start-up): check upstream.url is the API's own port and that the upstream is not stuck; requests may be answered upstream_timeout`);
  } else if (!connected) {
    // Refused, no such host, or no connection within the time: the words of before, the hint beside them.
    log.warn(fields, `the upstream accepts no connections at ${host}:${port} (checked once, at start-up)${hint === undefined ? (error === undefined ? '' : `: ${error.message}`) : `: ${hint}`}; requests are answered upstream_unavailable until it does`);
  } else {
    // Connected, then the TLS handshake or the HTTP answer failed: what that says about upstream.url.
    log.warn(fields, `the upstream at ${host}:${port} took the connection but could not be asked (checked once, at start-up): ${hint ?? (error as Error).message}; requests are answered upstream_unavailable until it can`);
  }
}
