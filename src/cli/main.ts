/**
 * The `keygate` command. Every subcommand works on the store named in the profile
 * (`--config`, default ./keygate.yaml): human output by default, `--json` for scripts.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigError, UNREADABLE } from '../config/config-error.js';
import type { LoadedConfig } from '../config/load.js';
import { parseDuration, unitlessNumberHint } from '../config/duration.js';
import type { Runtime } from '../runtime.js';
import { createKeyHasher } from '../keys/hash.js';
import { createKeyFormat, type KeyFormat } from '../keys/format.js';
import type { AccountPatch, AccountRecord, KeyRecord, Page, Store } from '../store/store.js';
import type { Config } from '../config/schema.js';
import type { RunningKeygate } from '../serve.js';
import { takeSighup } from './early-sighup.js';
import { KeygateCommand } from './parse-errors.js';
import { StoreWriteError } from '../store/write-refusal.js';
import { CountersRefusedError, CountersUnavailableError } from '../counters/counters.js';
import { REFUSAL_FIX, refusedConnection } from '../counters/redis/refusal.js';
import { auditEventOut } from '../operations/audit.js';
import { blockText, meterAllowance, planOut, windowText } from '../operations/plans.js';
import { cursorOf, placeOf } from '../operations/cursor.js';
import { inDateRange, OperationError, ordinal, outsideDateRange } from '../operations/errors.js';
import type { AccountChange } from '../operations/accounts.js';
import { effectiveLimitsOut } from '../limits/overrides.js';
import { accountLimitOptions, flagAt, inFlags, keyLimitOptions, keyWindowsInFlags, keyWindowsOption, limitsOptions } from './limit-flags.js';
import { keyWindowsText } from '../limits/key-windows.js';
import { keepWindowNames } from '../limits/limit-specs.js';
import type { MeterBalance, PlannedCall } from '../operations/forecast.js';
import type { Log } from '../log.js';
import { fields, keyEnd, keyMoment, table, until, when } from './format.js';
import { beyondLoopbackWarnings } from '../dashboard/host-names.js';
import { KEYGATE_VERSION } from '../build-info.js';
import { orList } from '../list-words.js';

/**
 * What the commands work with (the profile, the store, the runtime, the operations, the
 * log): most of the CLI's start-up time. Loaded once a command is to run (the preAction
 * hook in buildCli), never for --help, --version or a mistyped command, which need none
 * of it. `serve` and `demo` load the server themselves.
 */
let ops: typeof import('./operations.js');

/**
 * What the commands on the profile alone work with (profile.ts): all that `check`,
 * `schema` and `plans list` load: no store, no database driver (`ops` re-exports it for the rest).
 */
let profileOps: typeof import('./profile.js');

/** Commands that read the profile and nothing else: they load `profileOps`, not `ops`. */
const PROFILE_ONLY = new Set(['check', 'schema', 'plans list']);

const CLI_ACTOR = 'cli';

interface GlobalOptions {
  config: string;
  json?: boolean;
}

/**
 * `value` with --json, else `human()`. A command's `value` is the admin API's answer body
 * for the same operation (built by the same serializers: accountOut, keyOut, memberOut, …),
 * so that a script can use either.
 */
function print(json: boolean | undefined, value: unknown, human: () => string): void {
  process.stdout.write(`${json ? JSON.stringify(value, null, 2) : human()}\n`);
}

/**
 * What a delete prints with --json, the same for every one: the admin API answers its
 * deletes 204 with no body, which a script piping stdout to a JSON parser could not read.
 */
function deletedJson(id: string) {
  return { id, deleted: true };
}

interface PageOptions {
  limit?: string;
  after?: string;
}

/** `--limit`'s text as a number of rows (1 to 10000, in digits: not `0x10`, `1e1` or ` 5`, as the admin API's), or undefined without one. */
function limitOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const limit = Number(text);
  if (!/^[0-9]{1,5}$/.test(text) || limit < 1 || limit > 10_000) throw new OperationError('invalid', '--limit: expected a whole number from 1 to 10000');
  return limit;
}

/** Adds `--limit` and `--after` to a list command (see pageOf and pageEnd). */
function paged(command: Command): Command {
  return command
    .option('--limit <n>', 'at most this many (1 to 10000); when more follow, stderr names the next page\'s --after (with --json, as a line {"next":{"after":"<cursor>"}}); stdout stays the list')
    .option('--after <cursor>', 'continue after the place an earlier --limit gave');
}

/** `--limit` and `--after` as a store page, reading one row more to know whether more follow. */
function pageOf(opts: PageOptions): Page {
  const limit = limitOf(opts.limit);
  return { ...(limit !== undefined ? { limit: limit + 1 } : {}), ...(opts.after !== undefined ? { after: placeOf(opts.after) } : {}) };
}

/**
 * The page `pageOf` asked for; when more follow, stderr says how to get them: stdout stays
 * the list scripts parse, as the admin API's body stays one beside its Link header. With
 * `json`, a line of its own, `{"next":{"after":…}}`, as a failure's `{"error":…}` is.
 */
function pageEnd<T extends { id: string }>(
  rows: T[],
  opts: PageOptions,
  json: boolean | undefined,
  placeOfRow: (row: T) => { createdAt: number; id: string } = (row) => row as T & { createdAt: number },
): T[] {
  const limit = limitOf(opts.limit);
  if (limit === undefined || rows.length <= limit) return rows;
  const page = rows.slice(0, limit);
  const after = cursorOf(placeOfRow(page[page.length - 1] as T));
  process.stderr.write(json ? `${JSON.stringify({ next: { after } })}\n` : `more follow: add --after ${after}\n`);
  return page;
}

/** Whether the account's keys reach the API, and if not why, in the gateway's order: its plan's switch, the account's, the plan's expiry. */
function apiAccessOf(account: AccountRecord, config: Config, now: number): string {
  const plan = config.plans[account.planId];
  if (!plan) return 'off (unknown plan)';
  if (!plan.apiAccess) return 'off (plan)';
  if (!account.apiAccess) return 'off';
  return ops.apiEnabledOf(account, config.plans, now) ? 'on' : 'off (plan expired)';
}

/** The limits an account's keys are held to, for people: each marked where it is the account's own. */
function limitsShown(account: AccountRecord, config: Config): { rateLimits: string; meterLimits: string } {
  const effective = effectiveLimitsOut(ops.accountPlan(account, config.plans));
  const ownWindows = account.limits?.rateLimits != null;
  const windows = effective.rateLimits.length === 0 ? 'none' : effective.rateLimits.map(windowText).join(', ');
  const meters = Object.entries(effective.meters).map(([meter, limit]) => `${meter} ${limit}${account.limits?.meters[meter] !== undefined ? " (the account's own)" : ''}`);
  return { rateLimits: `${windows}${ownWindows ? " (the account's own)" : ' (as the plan)'}`, meterLimits: meters.length === 0 ? 'none' : meters.join(', ') };
}

/** `--scopes a, b,c` as a list. */
function scopeList(text: string): string[] {
  return text
    .split(',')
    .map((scope) => scope.trim())
    .filter(Boolean);
}

async function withRuntime<T>(command: Command, fn: (rt: Runtime, options: GlobalOptions) => Promise<T>): Promise<T> {
  const options = command.optsWithGlobals<GlobalOptions>();
  const loaded = ops.loadConfigFile(options.config);
  checkDatabaseExists(loaded.config.store, commandName(command));
  // Keep CLI output clean: only warnings and errors from the runtime, on stderr, so that
  // `--json` output on stdout stays parseable whatever happens.
  return storeTroubleExplained(loaded.config.store, async () => {
    const rt = await ops.createRuntime(loaded, { log: ops.createLog({ level: 'warn', destination: ops.terminalDestination() }), use: 'command' });
    try {
      return await fn(rt, options);
    } catch (error) {
      // A key's secret pasted where an id goes (`keys revoke sk_live_…`) is not printed back
      // into a terminal's scrollback or a CI log, as the admin API does not send it back.
      if (error instanceof Error) error.message = ops.withoutKeys(rt.keyFormat, error.message);
      throw error;
    } finally {
      await rt.close();
    }
  });
}

/**
 * `work` on the profile's store, SQLite's bare "database is locked" (another process held
 * the write lock past the wait: a sqlite3 shell inside a transaction, say) and a write it
 * refused (a full disk) said with the file and what they mean for the change. Its writes
 * are not one transaction (a key, then its audit entry), so the change is said to be
 * possibly made.
 */
async function storeTroubleExplained<T>(store: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof StoreWriteError) {
      throw new Error(
        `the database ${ops.sqliteFile(store) ?? ops.redactUrl(store)} could not be written: ${error.why} (${error.code}); ${error.fix}. This change was not saved, or only in part: check before running the command again`,
      );
    }
    if (!ops.isBusyError(error)) throw error;
    throw new Error(
      `the database ${ops.sqliteFile(store) ?? store} is busy: another process has held its write lock for more than ${ops.BUSY_TIMEOUT_MS / 1000} s (a sqlite3 shell inside a transaction, a long job); try again once it lets go. This change may or may not have been made: check before running the command again`,
    );
  }
}

/** Commands that may begin a database: the first account, the first operator. */
const BEGINS_DATABASE = new Set(['accounts create', 'members invite']);

/** `keys list`, `audit`: a command as it is typed. */
function commandName(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * A command run where the profile's SQLite file is not (a relative `store` is read from
 * the working directory: run from elsewhere) would make a new, empty database there and
 * answer from it, "(none)" where the keys are: refused, but for a command that begins a
 * database, which says it made one. `serve`, `demo` and `migrate` make it as well.
 */
function checkDatabaseExists(store: string, command: string): void {
  const file = ops.sqliteFile(store);
  if (file === undefined || existsSync(file)) return;
  const relative = !path.isAbsolute(store.slice('sqlite:'.length));
  const where = relative ? ` (store "${store}" is read from the working directory, ${process.cwd()})` : '';
  if (BEGINS_DATABASE.has(command)) {
    // Where a relative store lands is worth a word; an absolute one is where it was asked for.
    if (relative) process.stderr.write(`note: no database at ${file}${where}: starting a new one\n`);
    return;
  }
  throw new Error(`no database at ${file}${where}: run this where keygate serve runs${relative ? ', give store an absolute path' : ''}, or begin one with keygate migrate`);
}

/**
 * The store alone, migrated as `serve` would (SQLite by itself, PostgreSQL refused until
 * `keygate migrate`), for commands that must run where a runtime would refuse to start.
 */
async function withStoreOnly(command: Command, fn: (store: Store, config: Config, options: GlobalOptions) => Promise<void>): Promise<void> {
  const options = command.optsWithGlobals<GlobalOptions>();
  const { config } = ops.loadConfigFile(options.config);
  checkDatabaseExists(config.store, commandName(command));
  const store = ops.openStore(config.store);
  try {
    await storeTroubleExplained(config.store, async () => {
      await ops.reachStore(store, config.store);
      await ops.migrateOrRefuse(store, true, options.config);
      await fn(store, config, options);
    });
  } finally {
    await store.close();
  }
}

/**
 * `2027-01-31` (midnight UTC), `2027-01-31T12:00:00Z` (or with an offset), or a duration
 * from now such as `30d`. Anything else is refused, as the admin API refuses it: no
 * guessing at `01/02/2027` or a date that does not exist.
 */
function parseWhen(text: string, now: number, flag: string): number {
  const duration = parseDuration(text);
  const isDate = duration === undefined && (ops.z.iso.date().safeParse(text).success || ops.z.iso.datetime({ offset: true }).safeParse(text).success);
  if (duration !== undefined || isDate) {
    const at = duration !== undefined ? now + duration : Date.parse(text);
    // A year 0000 (a typing mistake) or a duration past 9999: no date any page or table shows.
    if (!inDateRange(at)) throw new OperationError('invalid', outsideDateRange(flag));
    return at;
  }
  // What was typed is not repeated (a key pasted here would land in a terminal's scrollback or a CI log): what it lacks is said.
  // A time without its offset could be any time zone's.
  const hint = /^\d+(?:\.\d+)?$/.test(text)
    ? ': a number of days is written with d, as 30d'
    : /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(?:\.\d+)?)?$/.test(text)
      ? ': a time needs its offset, as 2027-01-31T12:00:00Z for UTC'
      : '';
  throw new OperationError('invalid', `${flag}: expected a date (2027-01-31, or 2027-01-31T12:00:00Z) or a duration (30d)${hint}`);
}

/** `on` or `off` (true/false, yes/no) for `flag`; `accepted` names every word it takes, for the refusal. */
function onOff(text: string, flag: string, accepted = ['on', 'off']): boolean {
  if (['on', 'true', 'yes'].includes(text)) return true;
  if (['off', 'false', 'no'].includes(text)) return false;
  throw new OperationError('invalid', `${flag} takes ${orList(accepted)}`);
}

/** The settings `accounts create` and `accounts update` both take, as typed. */
interface AccountSettingOptions {
  apiAccess?: string;
  overage?: string;
  planExpires?: string;
}

/** Adds --api-access, --overage and --plan-expires; `defaults`: what each is when left out, for the help (create's). */
function accountSettingOptions(command: Command, defaults?: { apiAccess: string; overage: string; planExpires: string }): Command {
  const left = (value: string | undefined) => (value === undefined ? '' : ` (default: ${value})`);
  return command
    .option('--api-access <on|off>', `the operator's API access switch${left(defaults?.apiAccess)}`)
    .option('--overage <on|off|plan>', `per-account overage, or follow the plan${left(defaults?.overage)}`)
    .option('--plan-expires <date|duration|never>', `when the plan stops${left(defaults?.planExpires)}`);
}

/** The settings given, as an account's fields; those left out are not there. */
function accountSettings(opts: AccountSettingOptions, now: number): Pick<AccountPatch, 'apiAccess' | 'overage' | 'planExpiresAt'> {
  return {
    ...(opts.apiAccess !== undefined ? { apiAccess: onOff(opts.apiAccess, '--api-access') } : {}),
    ...(opts.overage !== undefined ? { overage: opts.overage === 'plan' ? null : onOff(opts.overage, '--overage', ['on', 'off', 'plan']) } : {}),
    ...(opts.planExpires !== undefined ? { planExpiresAt: opts.planExpires === 'never' ? null : parseWhen(opts.planExpires, now, '--plan-expires') } : {}),
  };
}

/**
 * A past date ends the plan now (on purpose, or a mistyped year): said on stderr, as the
 * admin API's Keygate-Warning says it (stdout stays the account), with --json as a line
 * `{"warning": "…"}`.
 */
/**
 * What `accounts update` says when the account already had what it was given (nothing
 * written, nothing audited): what it already uses, where the change only gave limits back to the plan.
 */
function unchangedText(id: string, change: AccountChange): string {
  const { limits, ...fields } = change;
  const meters = Object.keys(limits?.meters ?? {});
  const onlyBackToPlan =
    Object.keys(fields).length === 0 && limits !== undefined && (limits === null || (limits.rateLimits !== undefined ? limits.rateLimits === null : true) && Object.values(limits.meters ?? {}).every((limit) => limit === null));
  if (!onlyBackToPlan) return `account ${id} already is as given; nothing changed`;
  const uses = limits === null ? ['limits'] : [...(limits.rateLimits === null ? ['rate limits'] : []), ...(meters.length > 0 ? [`${meters.length === 1 ? 'limit' : 'limits'} of ${meters.join(', ')}`] : [])];
  return `account ${id} already uses its plan's ${uses.join(' and ')}; nothing changed`;
}

function warnOfPastPlanExpiry(json: boolean | undefined, account: AccountRecord, now: number): void {
  warn(json, ops.pastPlanExpiryWarning(account, now));
}

/** A key just made on an account whose keys are refused for now: said on stderr (the key is made; exit 0). */
async function warnOfRefusedKey(json: boolean | undefined, rt: Runtime, accountId: string): Promise<void> {
  warn(json, ops.refusedKeyWarning(await ops.getAccount(rt, accountId), rt.config.plans, rt.clock()));
}

/** On stderr, never in the output a script reads: `{"warning": …}` under --json. */
function warn(json: boolean | undefined, warning: string | undefined): void {
  if (warning !== undefined) process.stderr.write(json ? `${JSON.stringify({ warning })}\n` : `warning: ${warning}\n`);
}

/**
 * An operation's refusal of a value typed into an option, told in the option without the
 * value (its `withoutValue` wording, where it has one for `field`): a key pasted into the
 * wrong option would stay in a terminal's scrollback or a CI log. `option` names the
 * option, for a list (forecast's calls) by the place `withoutValue` gives.
 */
function inOption(error: unknown, field: string, option: string | ((index: number) => string)): unknown {
  if (!(error instanceof OperationError) || error.withoutValue?.field !== field) return error;
  const { index, message } = error.withoutValue;
  return new OperationError(error.kind, `${typeof option === 'string' ? option : option(index ?? 0)}: ${message}`);
}

/** `POST /v1/backlinks/summary x3 records=100` → a planned call. */
export function parseCallSpec(spec: string, flag = '--call'): PlannedCall {
  const parts = spec.trim().split(/\s+/);
  const [method, path, ...rest] = parts;
  if (!method || !path?.startsWith('/')) throw new OperationError('invalid', `${flag}: expected "METHOD /path [xN] [records=N]"`);
  const call: PlannedCall = { method, path, count: 1 };
  for (const part of rest) {
    const count = /^x(\d+)$/.exec(part);
    const records = /^records=(\d+)$/.exec(part);
    if (count) call.count = Number(count[1]);
    else if (records) call.records = Number(records[1]);
    else throw new OperationError('invalid', `${flag}: expected "METHOD /path [xN] [records=N]" (after the path, only xN and records=N)`);
  }
  return call;
}

/** `keygate check`'s exit code for a valid profile whose store, counters or upstream cannot be reached or used (2: a bad profile). */
const UNREACHABLE_BACKEND_EXIT = 4;

/** `keygate serve`'s flags that open a listener on another port than the profile's. */
const SERVE_PORT_FLAGS = { gateway: '--port', admin: '--admin-port', dashboard: '--dashboard-port' } as const;
/** The same, as a command other than serve names them. */
const SERVE_PORT_FLAGS_NAMED = { gateway: 'keygate serve --port', admin: 'keygate serve --admin-port', dashboard: 'keygate serve --dashboard-port' } as const;

/**
 * The value of --config: a file, not the flag that follows a --config given no file
 * (`keygate -c --json accounts list` would read a profile named "--json" and still answer
 * in JSON). A file whose name begins with a dash is named by a path: `./-odd.yaml`.
 */
function profileFile(value: string): string {
  if (!value.startsWith('-')) return value;
  // Named only where it reads as a flag: what was typed may be a secret.
  const flag = /^--?[a-z][a-z-]*$/.test(value) ? ` ${value}` : '';
  throw new InvalidArgumentError(`Expected a profile file, not a flag${flag} (a file whose name begins with "-" is named by its path: ./-…).`);
}

export function buildCli(): Command {
  const program = new KeygateCommand('keygate')
    .description('API-key gateway for data APIs')
    .version(KEYGATE_VERSION, '-V, --version', 'print the version')
    .option('-c, --config <file>', 'profile to use (or set KEYGATE_CONFIG)', profileFile, process.env.KEYGATE_CONFIG ?? 'keygate.yaml')
    .option('--json', 'machine-readable output')
    // `keygate serve --help` lists --config and --json too (every command takes them).
    .configureHelp({ showGlobalOptions: true })
    .hook('preAction', async (_program, command) => {
      if (PROFILE_ONLY.has(commandName(command))) profileOps = await import('./profile.js');
      else ops = await import('./operations.js');
    });

  program
    .command('serve')
    .description('run the gateway, admin API and dashboard (gateway: false: the admin API and dashboard only)')
    .option('--port <port>', "the gateway's port, instead of listen.port (0: any free port)", parsePort)
    .option('--admin-port <port>', "the admin API's port, instead of admin.listen.port", parsePort)
    .option('--dashboard-port <port>', "the dashboard's port, instead of dashboard.listen.port", parsePort)
    .action(async (opts: { port?: number; adminPort?: number; dashboardPort?: number }, command: Command) => {
      // Every line a serving process writes is a JSON log line on stdout, a failed start's too:
      // what collects its log (journald, a container runtime) gets why, in order.
      let log: Log | undefined;
      try {
        const loaded = ops.loadConfigFile(command.optsWithGlobals<GlobalOptions>().config);
        log = ops.createLog({ level: loaded.config.log.level, bufferSize: loaded.config.log.bufferSize });
        // A port for a listener that is not opened would be ignored without a word.
        if (opts.port !== undefined && !loaded.config.gateway) throw new Error(`--port sets the gateway's port, and ${loaded.file} runs no gateway (gateway: false): leave it out (--admin-port sets the admin API's)`);
        // The signals' and a crash's lines name the process, as serve's own do.
        const processLog = ops.withProcess(log);
        const reloading = reloadOnSighup();
        // Taken before keygate starts: a stop asked meanwhile is carried out once it serves
        // (Node's default would end the process at once, leaving a spawned upstream behind).
        const serving = stopOnSignal(sayInLog(processLog));
        const crashing = exitOnUncaughtError(processLog, createKeyFormat(loaded.config.keys));
        const ports = { ...(opts.port !== undefined ? { gateway: opts.port } : {}), ...(opts.adminPort !== undefined ? { admin: opts.adminPort } : {}), ...(opts.dashboardPort !== undefined ? { dashboard: opts.dashboardPort } : {}) };
        const { serve } = await import('../serve.js');
        const running = await serve(loaded, { log, ports, portFlags: SERVE_PORT_FLAGS });
        serving(running);
        reloading(running);
        crashing(running);
      } catch (error) {
        // A profile that could not be read has no log level: the default's.
        const failure = describeFailure(error);
        ops.withProcess(log ?? ops.createLog({ level: 'info' })).fatal(failure.problems ? { problems: failure.problems } : {}, `keygate could not start: ${failure.message}`);
        exitOnceLogged(failure.exitCode);
      }
    });

  program
    .command('demo')
    .description('start the bundled demo API behind keygate (SQLite under ./data/demo)')
    .option('--data <dir>', 'where the demo keeps its database', './data/demo')
    .option('--port <port>', 'the gateway port; the admin API and the dashboard take the next two (0: any free ports)', parseDemoPort, 8080)
    .option('--upstream-port <port>', 'the port of 127.0.0.1 the demo API behind keygate listens on (0: any free port)', parsePort, 0)
    // It refuses --config and prints no JSON: its help does not offer the global options.
    .configureHelp({ showGlobalOptions: false })
    .action(async (opts: { data: string; port: number; upstreamPort: number }, command: Command) => {
      // The demo writes and uses its own profile under --data: a --config given to it would
      // be ignored without a word. KEYGATE_CONFIG (a default, set for serve) is ignored quietly.
      if (command.getOptionValueSourceWithGlobals('config') === 'cli') {
        command.error('error: demo takes no --config: it writes and uses its own profile under --data. To run keygate with a profile: keygate serve --config <file>', {
          exitCode: 1,
          code: 'keygate.demoConfig',
        });
      }
      const next = (n: number) => (opts.port === 0 ? 0 : opts.port + n);
      // Run in a terminal: closing it (SIGHUP) stops the demo as Ctrl+C does, answers and
      // their charges saved (Node's default would end it at once).
      const serving = stopOnSignal(sayOnTerminal, ['SIGINT', 'SIGTERM', 'SIGHUP']);
      const { runDemo } = await import('../demo/demo.js');
      serving(await runDemo({ dataDir: opts.data, ports: { gateway: opts.port, admin: next(1), dashboard: next(2) }, upstreamPort: opts.upstreamPort }));
    });

  program
    .command('migrate')
    .description('apply database migrations (needed once for PostgreSQL; SQLite migrates itself)')
    .option('--pending', 'list the migrations this release would apply, and apply none')
    .action(async (opts: { pending?: boolean }, command: Command) => {
      const { config, json } = command.optsWithGlobals<GlobalOptions>();
      const loaded = ops.loadConfigFile(config);
      const sqlite = ops.sqliteFile(loaded.config.store);
      // Opening a SQLite file that is not there would make one: a question changes nothing.
      if (opts.pending && sqlite !== undefined && !existsSync(sqlite)) {
        throw new Error(`no database at ${sqlite}: keygate migrate begins one, with every migration`);
      }
      const store = ops.openStore(loaded.config.store);
      try {
        await ops.reachStore(store, loaded.config.store);
        if (opts.pending) {
          const pending = await storeTroubleExplained(loaded.config.store, () => store.pendingMigrations());
          const where = ops.redactUrl(loaded.config.store);
          print(json, { pending }, () => (pending.length > 0 ? `pending on ${where}: ${pending.join(', ')} (keygate migrate applies them)` : `${where} is up to date`));
          return;
        }
        const applied = await storeTroubleExplained(loaded.config.store, () => store.migrate());
        print(json, { applied }, () =>
          applied.length > 0 ? `applied ${applied.join(', ')} to ${ops.redactUrl(loaded.config.store)}` : `${ops.redactUrl(loaded.config.store)} is up to date`,
        );
      } finally {
        await store.close();
      }
    });

  program
    .command('backup')
    .description('copy a SQLite store to <file> while keygate runs (a consistent snapshot, checked); PostgreSQL: use pg_dump')
    .argument('<file>', 'the copy to make (a new file: an existing one is never overwritten)')
    .action(async (file: string, _opts, command: Command) => {
      const { config, json } = command.optsWithGlobals<GlobalOptions>();
      const loaded = ops.loadConfigFile(config);
      const source = ops.sqliteFile(loaded.config.store);
      if (source === undefined) {
        throw new Error(`backup copies a SQLite store; this profile's store is ${ops.redactUrl(loaded.config.store)}: back it up with pg_dump (or your database's own backups)`);
      }
      const copy = await ops.backupSqlite(source, path.resolve(file));
      print(json, { source, file: copy.file, bytes: copy.bytes }, () => `backed up ${source} to ${copy.file} (${copy.bytes} bytes, integrity checked). To restore it: stop keygate, replace the database file with it (and delete its -wal and -shm files), start keygate with the same pepper`);
    });

  const store = program.command('store').description('the store as a whole');
  store
    .command('copy')
    .description("copy a SQLite store (the profile's, or --from) into an empty PostgreSQL database migrated by keygate migrate, in one transaction; stop keygate first")
    .requiredOption('--to <profile|postgres-url>', 'where to copy: the profile you will serve with (its store a PostgreSQL URL: keeps the password off the command line), or the URL itself')
    .option('--from <sqlite:file>', "the SQLite store to copy, instead of the profile's")
    .action(async (opts: { to: string; from?: string }, command: Command) => {
      const { config, json } = command.optsWithGlobals<GlobalOptions>();
      const from = opts.from ?? ops.loadConfigFile(config).config.store;
      const sourceFile = ops.sqliteFile(from);
      if (sourceFile === undefined) {
        throw new Error(`store copy copies a SQLite store into PostgreSQL; ${opts.from !== undefined ? '--from' : `${config}'s store`} is ${ops.redactUrl(from)}${opts.from !== undefined ? ': give it as sqlite:<file>' : ''}`);
      }
      const toProfile = !/^[a-z][a-z0-9+.-]*:\/\//i.test(opts.to) ? opts.to : undefined;
      if (toProfile !== undefined && !existsSync(toProfile)) throw new Error(`--to: no profile at ${path.resolve(toProfile)} (give the profile you will serve with, or a postgres:// URL)`);
      const targetUrl = toProfile === undefined ? opts.to : ops.loadConfigFile(toProfile).config.store;
      if (!/^postgres(ql)?:\/\//.test(targetUrl)) {
        throw new Error(`--to: expected a PostgreSQL URL (postgres://user:password@host:5432/database) or a profile whose store is one; ${toProfile === undefined ? 'got' : `${toProfile}'s store is`} ${ops.redactUrl(targetUrl)}`);
      }
      if (!existsSync(sourceFile)) throw new Error(`no database at ${sourceFile}: nothing to copy`);
      // The source migrated as every other command migrates SQLite (a file an older release
      // made), but only once the copy holds its lock: never under a keygate serving it.
      const migrateSource = async () => {
        const source = ops.openStore(from);
        try {
          await storeTroubleExplained(from, () => ops.migrateOrRefuse(source, true, config));
        } finally {
          await source.close();
        }
      };
      const to = ops.redactUrl(targetUrl);
      const copied = await ops.copySqliteToPostgres({ sourceFile, targetUrl, migrateSource, ...(toProfile !== undefined ? { targetProfile: toProfile } : {}) });
      const serveWith = toProfile ?? '<a profile whose store is it>';
      print(json, { from: sourceFile, to, tables: Object.fromEntries(copied.map(({ table, rows }) => [table, rows])) }, () =>
        [
          `copied ${sourceFile} to ${to} in one transaction:`,
          table(
            copied.map((row) => ({ ...row })),
            ['table', 'rows'],
          ),
          `next: start keygate on it (keygate serve --config ${serveWith}, its counters a Redis URL: docs/scale-out.md) with the same pepper as before (keygate pepper check --config ${serveWith} says whether it is); keep ${sourceFile} until you have checked the new store`,
        ].join('\n'),
      );
    });

  const pepper = program.command('pepper').description('the pepper key hashes are made with (the variable pepperEnv names, default KEYGATE_PEPPER)');
  pepper
    .command('check')
    .description("say whether this environment's pepper is the one the database's keys were made with")
    .action(async (_opts, command: Command) =>
      withStoreOnly(command, async (store, config, { json }) => {
        const pepper = process.env[config.pepperEnv];
        const state = await ops.keyHashingState(store, createKeyHasher(pepper));
        if (state === 'differs') throw await ops.keyHashingMismatch(store, config.pepperEnv, pepper);
        print(json, { pepperEnv: config.pepperEnv, set: Boolean(pepper), state }, () =>
          state === 'matches'
            ? pepper
              ? `${config.pepperEnv} is the pepper this database's keys were made with`
              : `${config.pepperEnv} is not set, and this database's keys were made without a pepper`
            : `nothing recorded yet: the first key a running keygate finds by its hash (or a keygate that starts serving while there is no key) records that process's ${config.pepperEnv}`,
        );
      }),
    );
  pepper
    .command('forget')
    .description('forget which pepper was recorded (after a wrong one was, or after changing it on purpose, which invalidates every key)')
    .action(async (_opts, command: Command) =>
      withStoreOnly(command, async (store, config, { json }) => {
        const forgotten = await ops.forgetKeyHashing(store);
        print(json, { forgotten }, () =>
          forgotten
            ? `forgot the recorded pepper: keygate starts with any ${config.pepperEnv} now, and the first key a running keygate finds by its hash records that process's`
            : 'nothing was recorded',
        );
      }),
    );

  program
    .command('check')
    .description('validate the profile, say how serve would serve it, and whether its store, counters and upstream can be reached and its listeners opened')
    .option('--offline', 'the profile alone: try none of its store, counters, upstream and listeners\' ports (a CI job without them)')
    .action(async (opts: { offline?: boolean }, command: Command) => {
      const { config, json } = command.optsWithGlobals<GlobalOptions>();
      let loaded: LoadedConfig;
      try {
        loaded = profileOps.loadConfigFile(config);
      } catch (error) {
        if (!json || !(error instanceof ConfigError)) throw error;
        // For scripts and editors: the problems as a list of {field, message}; exit 2 as without --json.
        print(true, { file: config, ok: false, problems: error.problemsByField }, () => '');
        process.exitCode = 2;
        return;
      }
      const plans = Object.keys(loaded.config.plans).length;
      const routes = loaded.config.routes.length;
      // Valid, but probably not meant: said, without failing the check.
      const { config: profile } = loaded;
      const weakKeys = profileOps.weakImportedKeys(profile.keys);
      const table = profileOps.profileRouteTable(profile);
      const warnings = [
        ...profileOps.scopeGaps(table, profile.routes).map(profileOps.describeScopeGap),
        ...profileOps.wildcardRootGaps(table, profile.routes).map(profileOps.describeWildcardRootGap),
        ...beyondLoopbackWarnings(profile.dashboard),
        ...(weakKeys ? [profileOps.describeWeakImportedKeys(weakKeys, profile.auth.unknownKeys !== undefined)] : []),
        ...profileOps.unusedFields(profile).map((unused) => unused.warning),
      ];
      // How `keygate serve` would serve it (the admin token, from the environment, is judged
      // when it starts), on the profile's ports: serve's flags may move a listener.
      const plan = profileOps.servingPlan(profile, { portFlags: SERVE_PORT_FLAGS_NAMED });
      const serve = plan.servable ? { servable: true, gateway: plan.gateway, listeners: plan.listeners } : { servable: false, reason: plan.reason, fields: plan.fields };
      const served = plan.servable
        ? plan.gateway
          ? `serves: ${profileOps.describeListeners(plan.listeners)}`
          : `serves: ${profileOps.describeListeners(plan.listeners)}, no gateway (gateway: false); keygate serve requires the admin token (${profile.admin.tokenEnv})`
        : `not servable by keygate serve: ${plan.reason}; ${plan.remedy}`;
      // The backends last, loaded only then (--offline: never): what a deploy would meet.
      const reach = opts.offline ? undefined : await import('../operations/reach.js');
      // The upstream where serve would forward to one (not gateway: false, nor a profile serve refuses).
      const forwardsTo = plan.servable && plan.gateway ? profile.upstream.url : undefined;
      const upstream = forwardsTo === undefined ? undefined : { url: forwardsTo, spawn: profile.upstream.spawn };
      // Whether the listeners can be opened too (not --offline: a CI job's machine is not where serve runs), beside the backends.
      const [reached, taken] = reach
        ? await Promise.all([
            reach.reachBackends({ store: profile.store, counters: profile.counters, counterFailure: profile.counterFailure, ...(upstream ? { upstream } : {}) }),
            import('../operations/listen-ports.js').then((ports) => ports.blockedListeners(profile, plan.servable ? plan.listeners : []).then((list) => list.map((blocked) => ports.describeBlockedListener(blocked)))),
          ])
        : [undefined, []];
      warnings.push(...taken);
      const backends = reached
        ? { store: reached.store, ...(reached.counters ? { counters: reached.counters } : {}), ...(reached.upstream ? { upstream: reached.upstream } : {}) }
        : {};
      print(json, { file: config, ok: true, plans, routes, serve, ...(warnings.length > 0 ? { warnings } : {}), ...backends }, () =>
        [`${config}: ok (${counted(plans, 'plan')}, ${counted(routes, 'route')})`, served, ...warnings.map((warning) => `warning: ${warning}`), ...(reach && reached ? reach.describeBackends(reached) : [])].join('\n'),
      );
      if (reached && !reached.ok) process.exitCode = UNREACHABLE_BACKEND_EXIT;
    });

  program
    .command('schema')
    .description('print the JSON Schema of keygate.yaml')
    .action(() => {
      process.stdout.write(`${JSON.stringify(profileOps.configJsonSchema(), null, 2)}\n`);
    });

  const accounts = program.command('accounts').description('accounts (teams) that own keys');
  accountLimitOptions(
    accountSettingOptions(
      accounts
        .command('create')
        .description('create an account on a plan, with its own limits if given')
        .requiredOption('--name <name>', 'account name')
        .option('--plan <plan>', 'plan id (default: the profile\'s default plan)'),
      { apiAccess: 'on', overage: 'plan', planExpires: 'never' },
    ),
  ).action((opts: { name: string; plan?: string; rateLimit?: string[]; meterLimit?: string[] } & AccountSettingOptions, command: Command) =>
    withRuntime(command, async (rt, { json }) => {
      const limits = limitsOptions(opts);
      const input = { name: opts.name, ...(opts.plan ? { planId: opts.plan } : {}), ...accountSettings(opts, rt.clock()), ...(limits !== undefined ? { limits } : {}) };
      const account = await ops.createAccount(rt, input, CLI_ACTOR).catch((error: unknown) => {
        throw inOption(inFlags(error, limits), 'planId', '--plan');
      });
      print(json, ops.accountOut(account, rt), () => `created account ${account.id} (${account.name}, plan ${account.planId})`);
      warnOfPastPlanExpiry(json, account, rt.clock());
    }),
  );
  accounts
    .command('show <id>')
    .description('one account: plan, API access, overage, the rate limits and meter limits in effect (its own marked), plan expiry')
    .action((id: string, _o, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        const account = await ops.getAccount(rt, id);
        const now = rt.clock();
        print(json, ops.accountOut(account, rt), () =>
          fields(
            {
              ...account,
              plan: account.planId in rt.config.plans ? account.planId : `${account.planId} (not in the profile)`,
              api: apiAccessOf(account, rt.config, now),
              overage: account.overage === null ? 'as the plan' : account.overage ? 'on' : 'off',
              ...limitsShown(account, rt.config),
              created: when(account.createdAt),
              planExpires: when(account.planExpiresAt),
            },
            ['id', 'name', 'plan', 'api', 'overage', 'rateLimits', 'meterLimits', 'created', 'planExpires'],
          ),
        );
      }),
    );
  paged(accounts.command('list').description('every account, oldest first'))
    .option('--search <text>', 'only accounts whose name contains this (either case), or whose id it is')
    .action((opts: { search?: string } & PageOptions, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        const search = opts.search?.trim();
        if (search === '') throw new OperationError('invalid', '--search needs some text: a part of the name, or the id');
        const list = pageEnd(await rt.store.listAccounts({ ...(search !== undefined ? { search } : {}), ...pageOf(opts) }), opts, json);
        const now = rt.clock();
        print(json, list.map((a) => ops.accountOut(a, rt)), () =>
          table(
            list.map((a) => ({ id: a.id, name: a.name, plan: a.planId in rt.config.plans ? a.planId : `${a.planId} (not in the profile)`, api: apiAccessOf(a, rt.config, now), created: when(a.createdAt), planExpires: when(a.planExpiresAt) })),
            ['id', 'name', 'plan', 'api', 'created', 'planExpires'],
          ),
        );
      }),
    );
  accountLimitOptions(
    accountSettingOptions(
      accounts
        .command('update <id>')
        .description("change an account's name, plan, API access, overage, plan expiry or its own limits")
        .option('--name <name>', 'new name')
        .option('--plan <plan>', 'move to this plan'),
    ),
  ).action((id: string, opts: { name?: string; plan?: string; rateLimit?: string[]; meterLimit?: string[] } & AccountSettingOptions, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        const typed = limitsOptions(opts);
        // `--rate-limit` writes no name: a window given again keeps the one it has.
        const limits = Array.isArray(typed?.rateLimits) && typed.rateLimits.length > 0 ? keepWindowNames(typed, (await ops.getAccount(rt, id)).limits?.rateLimits) : typed;
        const patch = {
          ...(opts.name !== undefined ? { name: opts.name } : {}),
          ...(opts.plan !== undefined ? { planId: opts.plan } : {}),
          ...accountSettings(opts, rt.clock()),
          ...(limits !== undefined ? { limits } : {}),
        };
        if (Object.keys(patch).length === 0) throw new OperationError('invalid', 'nothing to change: give --name, --plan, --api-access, --overage, --plan-expires, --rate-limit or --meter-limit');
        const { account, changed, before } = await ops.changeAccount(rt, id, patch, CLI_ACTOR).catch((error: unknown) => {
          throw inOption(inFlags(error, limits), 'planId', '--plan');
        });
        print(json, ops.accountOut(account, rt), () => (changed ? `updated account ${account.id}` : unchangedText(account.id, patch)));
        if ('planExpiresAt' in patch) warnOfPastPlanExpiry(json, account, rt.clock());
        const now = rt.clock();
        // A past plan expiry is said above; a move to a plan without API access (or access turned off) stops keys that worked too: said, as keys create says it of a new key.
        if (changed && !('planExpiresAt' in patch && ops.pastPlanExpiryWarning(account, now) !== undefined)) {
          warn(json, ops.keysTurnedOffWarning(before, account, rt.config.plans, now, await ops.keysTurnedOff(rt, before, account, now)));
        }
      }),
    );
  accounts
    .command('delete <id>')
    .description('delete an account: its members are removed; its keys stay, unbound (refused as key_not_bound)')
    .action((id: string, _o, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        await ops.deleteAccount(rt, id, CLI_ACTOR);
        print(json, deletedJson(id), () => `deleted account ${id}`);
      }),
    );
  accounts
    .command('usage <id>')
    .description('plan, API access, every meter and the requests of each key this period of an account; with --daily, its requests, denials, units and requests by key day by day')
    .option('--daily', 'day by day: requests by status class, denials by reason, units by meter, requests by key id (the last 30 days unless --from or --to says)')
    .option('--from <date>', 'the first day (2026-11-01), with --daily (implied)')
    .option('--to <date>', 'the last day (default: today, UTC), with --daily (implied)')
    .action((id: string, opts: { daily?: boolean; from?: string; to?: string }, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        if (opts.daily || opts.from !== undefined || opts.to !== undefined) {
          for (const [flag, day] of [['--from', opts.from], ['--to', opts.to]] as const) {
            if (day !== undefined && !ops.z.iso.date().safeParse(day).success) throw new OperationError('invalid', `${flag}: expected a date such as 2026-11-01`);
          }
          const days = await ops.dailyUsage(rt, id, { from: opts.from, to: opts.to });
          print(json, days, () => table(days, ['day', 'metric', 'label', 'value']));
          return;
        }
        const usage = await ops.accountUsage(rt, id, { keys: true });
        print(json, ops.usageOut(usage), () =>
          [
            `${usage.account.name} (${usage.account.id}) — plan ${usage.planName}, API access ${usage.apiEnabled ? 'on' : 'off'}${usage.planExpired ? ' (plan expired)' : ''}`,
            Object.keys(usage.meters).length === 0
              ? `meters: none (the ${usage.planName} plan has none)`
              : table(
                  // The day a consumed meter starts afresh, as the dashboard's "Resets": a gauge is never reset.
                  Object.entries(usage.meters).map(([name, m]) => ({ meter: name, kind: m.kind, usage: m.usage, limit: m.limit, remaining: m.remaining, overage: m.overage, resets: m.kind === 'gauge' ? '-' : m.periodEnd })),
                  ['meter', 'kind', 'usage', 'limit', 'remaining', 'overage', 'resets'],
                ),
            '',
            `requests by key since ${usage.periodStart}:`,
            table(
              usage.keys.map((k) => ({ key: k.name ?? '-', hint: k.hint ?? '-', id: k.keyId, requests: k.requests, lastUsed: when(k.lastUsedAt), status: k.revoked ? 'revoked' : '' })),
              ['key', 'hint', 'id', 'requests', 'lastUsed', 'status'],
            ),
          ].join('\n'),
        );
      }),
    );

  program
    .command('plans')
    .description('plans defined in the profile')
    .command('list')
    .description('every plan: API access, rate limits, meters, key limit')
    .action((_o, command: Command) => {
      const { config, json } = command.optsWithGlobals<GlobalOptions>();
      const loaded: LoadedConfig = profileOps.loadConfigFile(config);
      // As the admin API gives them (GET /v1/plans).
      const plans = Object.entries(loaded.config.plans).map(([id, plan]) => planOut(id, plan));
      print(json, plans, () =>
        table(
          plans.map((p) => ({
            id: p.id,
            name: p.name,
            api: p.apiAccess ? 'on' : 'off',
            maxKeys: p.maxKeys ?? '-',
            rateLimits: p.rateLimits.map(windowText),
            // As the dashboard's Plans table says them; "; " between meters, since "1,000" has a comma.
            meters: Object.entries(p.meters).map(([m, v]) => `${meterAllowance(m, v)}${v.overage ? ' (overage allowed)' : v.admit === 'untilZero' ? ' (until zero)' : ''}`).join('; ') || '-',
            block: p.block ? blockText(p.block) : '-',
          })),
          ['id', 'name', 'api', 'maxKeys', 'rateLimits', 'meters', 'block'],
        ),
      );
    });

  const keys = program.command('keys').description('API keys');
  keyLimitOptions(
    keys
      .command('create')
      .description('create a key; the secret is printed once')
      .requiredOption('--account <id>', 'the account that owns the key')
      .requiredOption('--name <name>', 'a name to tell keys apart')
      .addOption(new Option('--mode <mode>', 'a live or a test key (its prefix says which)').choices(['live', 'test']).default('live'))
      .option('--scopes <list>', 'comma-separated scopes (default: all the plan allows; none where the profile declares no scopes)')
      .option('--expires <date|duration>', 'e.g. 2027-01-31 or 90d'),
  ).action((opts: { account: string; name: string; mode: 'live' | 'test'; scopes?: string; expires?: string; rateLimit?: string[] }, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        const rateLimits = keyWindowsOption(opts.rateLimit);
        const issued = await ops
          .createKey(
            rt,
            {
              accountId: opts.account,
              name: opts.name,
              ...(opts.mode !== undefined ? { mode: opts.mode } : {}),
              ...(opts.scopes !== undefined ? { scopes: scopeList(opts.scopes) } : {}),
              ...(opts.expires !== undefined ? { expiresAt: parseWhen(opts.expires, rt.clock(), '--expires') } : {}),
              ...(rateLimits !== undefined ? { rateLimits } : {}),
            },
            CLI_ACTOR,
          )
          .catch((error: unknown) => {
            throw inOption(keyWindowsInFlags(error, rateLimits), 'scopes', '--scopes');
          });
        print(json, { ...(await keyJsonOf(rt, issued.key, json)), secret: issued.secret }, () =>
          [
            // An expiry is said back: "2027-01-31" is that day's start (UTC), not its end.
            `created key ${issued.key.id} (${issued.key.name}) for account ${opts.account}${issued.key.expiresAt === null ? '' : `; it stops working at ${keyEnd(issued.key.expiresAt, rt.clock())}`}`,
            '',
            `  ${issued.secret}`,
            '',
            'This is the only time the key is shown. Store it now.',
          ].join('\n'),
        );
        await warnOfRefusedKey(json, rt, opts.account);
      }),
    );
  keyLimitOptions(
    keys
      .command('import')
      .description('register a key the API issued before keygate (read from stdin); only its hash is kept')
      .requiredOption('--account <id>', 'the account the key belongs to')
      .requiredOption('--name <name>', 'a name to know the key by (shown with its hint)')
      .addOption(new Option('--mode <mode>', 'a live or a test key (default: what its prefix says, else live)').choices(['live', 'test']))
      .option('--scopes <list>', 'comma-separated scopes (default: all the plan allows; none where the profile declares no scopes)')
      .option('--expires <date|duration>', 'when it stops working, as it had where it was issued (e.g. 2027-01-31 or 90d)'),
  ).action((opts: { account: string; name: string; mode?: 'live' | 'test'; scopes?: string; expires?: string; rateLimit?: string[] }, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        const rateLimits = keyWindowsOption(opts.rateLimit);
        // From stdin, so the secret stays out of shell history and process listings; from a
        // pipe only: typed or pasted into a terminal it would show there (and wait, unsaid, for Ctrl+D).
        const pipeIt = 'pipe the existing key on stdin, e.g. printf %s "$KEY" | keygate keys import ...';
        if (process.stdin.isTTY) throw new OperationError('invalid', `${pipeIt} (a key typed or pasted into a terminal shows there, and stays in its scrollback)`);
        const secret = readFileSync(0, 'utf8').trim();
        if (secret === '') throw new OperationError('invalid', pipeIt);
        const imported = await ops.createKey(
          rt,
          {
            accountId: opts.account,
            name: opts.name,
            ...(opts.mode !== undefined ? { mode: opts.mode } : {}),
            ...(opts.scopes !== undefined ? { scopes: scopeList(opts.scopes) } : {}),
            ...(opts.expires !== undefined ? { expiresAt: parseWhen(opts.expires, rt.clock(), '--expires') } : {}),
            ...(rateLimits !== undefined ? { rateLimits } : {}),
          },
          CLI_ACTOR,
          { secret },
        ).catch((error: unknown) => {
          throw inOption(keyWindowsInFlags(error, rateLimits), 'scopes', '--scopes');
        });
        print(
          json,
          await keyJsonOf(rt, imported.key, json),
          () => `imported key ${imported.key.id} (${imported.key.hint}) for account ${opts.account}${imported.key.expiresAt === null ? '' : `; it stops working at ${keyEnd(imported.key.expiresAt, rt.clock())}`}`,
        );
        await warnOfRefusedKey(json, rt, opts.account);
      }),
    );
  paged(keys.command('list').description('keys (hints only, never secrets), oldest first'))
    .option('--account <id>', 'only this account\'s keys')
    .action((opts: { account?: string } & PageOptions, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        // A mistyped account is said, not listed as an account without keys.
        if (opts.account) await ops.getAccount(rt, opts.account);
        const list = pageEnd(await rt.store.listKeys({ ...(opts.account ? { accountId: opts.account } : {}), ...pageOf(opts) }), opts, json);
        const now = rt.clock();
        const blocked = await ops.blockedUntilOf(rt, list);
        const away = blocked === undefined ? countersAway(rt, json) : undefined;
        const replacements = json ? undefined : await replacementsOf(rt, list, opts.limit !== undefined || opts.after !== undefined);
        print(json, list.map((k) => ops.keyOut(k, now, blocked)), () =>
          table(
            list.map((k) => ({ id: k.id, name: k.name, key: k.hint, account: k.accountId, mode: k.mode, scopes: k.scopes, rateLimits: keyWindowsText(k.rateLimits), status: printedStatus(k, now, blocked, away), created: when(k.createdAt), lastUsed: when(k.lastUsedAt), expires: k.expiresAt === null ? '-' : keyEnd(k.expiresAt, now), rotation: rotationText(k, replacements?.get(k.id)) })),
            // Last, and empty where a key was neither rotated nor rotated to: a line of a key without one ends as before.
            ['id', 'name', 'key', 'account', 'mode', 'scopes', 'rateLimits', 'status', 'created', 'lastUsed', 'expires', 'rotation'],
          ),
        );
      }),
    );
  keys
    .command('show <id>')
    .description("one key (its hint, never its secret): name, mode, scopes, its own rate limits, status, last used")
    .action((id: string, _o, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        const key = await ops.getKey(rt, id);
        const now = rt.clock();
        const blocked = await ops.blockedUntilOf(rt, [key]);
        const away = blocked === undefined ? countersAway(rt, json) : undefined;
        print(json, ops.keyOut(key, now, blocked), () =>
          fields(
            {
              ...key,
              key: key.hint,
              account: key.accountId,
              status: printedStatus(key, now, blocked, away),
              created: when(key.createdAt),
              lastUsed: when(key.lastUsedAt),
              expires: key.expiresAt === null ? '-' : keyEnd(key.expiresAt, now),
              revoked: keyMoment(key.revokedAt),
              // Its own windows, on top of its account's (shown by accounts show).
              rateLimits: keyWindowsText(key.rateLimits),
            },
            ['id', 'name', 'key', 'account', 'mode', 'scopes', 'rateLimits', 'status', 'created', 'lastUsed', 'expires', 'revoked', 'createdBy', 'rotatedFrom'],
          ),
        );
      }),
    );
  keys
    .command('revoke <id>')
    .description('revoke a key; it stops working on the next request')
    .action((id: string, _o, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        const wasRevoked = (await ops.getKey(rt, id)).revokedAt !== null;
        const key = await ops.revokeKey(rt, id, CLI_ACTOR);
        print(json, await keyJsonOf(rt, key, json), () =>
          wasRevoked ? `key ${key.id} (${key.name}) was already revoked, at ${keyMoment(key.revokedAt)}; nothing changed` : `revoked key ${key.id} (${key.name})`,
        );
      }),
    );
  keyLimitOptions(
    keys
      .command('update <id>')
      .description('rename a key, change its scopes or its own rate limits (from its next request on)')
      .option('--name <name>', 'its new name')
      .option('--scopes <list>', 'comma-separated scopes, replacing its current ones'),
    '; replaces its current ones (none: no windows of its own)',
  ).action((id: string, opts: { name?: string; scopes?: string; rateLimit?: string[] }, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        const rateLimits = keyWindowsOption(opts.rateLimit);
        const changes = { ...(opts.name !== undefined ? { name: opts.name } : {}), ...(opts.scopes !== undefined ? { scopes: scopeList(opts.scopes) } : {}), ...(rateLimits !== undefined ? { rateLimits } : {}) };
        if (Object.keys(changes).length === 0) throw new OperationError('invalid', 'nothing to change: give --name, --scopes or --rate-limit');
        const key = await ops.updateKey(rt, id, changes, CLI_ACTOR).catch((error: unknown) => {
          throw inOption(keyWindowsInFlags(error, rateLimits), 'scopes', '--scopes');
        });
        // Its own windows are said where it has some, or where they were just changed.
        const windows = keyWindowsText(key.rateLimits);
        const ownLimits = rateLimits !== undefined || windows.length > 0 ? `, own rate limits ${windows.join(' ') || '(none)'}` : '';
        print(json, await keyJsonOf(rt, key, json), () => `updated key ${key.id}: ${key.name}, scopes ${key.scopes.join(' ') || '(none)'}${ownLimits}`);
      }),
    );
  keys
    .command('unblock <id>')
    .description(
      "lift the key's rate-limit block (and its account's); the next one starts the escalation afresh. Needs counters: redis; with counters: memory (the default) blocks live in the serving keygate: lift one through its admin API (POST /v1/keys/<id>/unblock) or the Unblock button on the key's account page in its dashboard",
    )
    .action((id: string, _o, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        if (rt.counters.kind === 'memory') {
          // The key first: a mistyped id (or an account's) is said as such, not sent on to the admin API.
          await ops.getKey(rt, id);
          throw new OperationError(
            'invalid',
            `with counters: memory, blocks live in the memory of the process that serves: lift this one through its admin API (POST /v1/keys/${id}/unblock) or the Unblock button on the key's account page in its dashboard`,
          );
        }
        const { key, lifted } = await ops.unblockKey(rt, id, CLI_ACTOR).catch((error: unknown) => {
          // Blocks live in Redis alone: without it nothing was lifted, and nothing was recorded.
          if (!(error instanceof CountersUnavailableError)) throw error;
          const where = `Redis at ${ops.redactUrl(rt.config.counters)}`;
          // Reached but refusing (OOM past maxmemory, READONLY after a failover): its own words, not "could not be reached".
          if (error instanceof CountersRefusedError) throw new Error(`the block of key ${id} was not lifted: ${where} answered with an error (${error.cause instanceof Error ? error.cause.message : String(error.cause)}), and blocks are kept there. Nothing was changed; try again once Redis takes writes`);
          // Refusing keygate's user (WRONGPASS, NOAUTH): Redis's words, and what to fix, not "could not be reached".
          const refusal = rt.counters.refusal?.();
          if (refusal !== undefined) throw new Error(`the block of key ${id} was not lifted: ${where} refuses the connection (${refusal}), and blocks are kept there. Nothing was changed; ${REFUSAL_FIX}, then try again`);
          throw new Error(`the block of key ${id} was not lifted: ${where} could not be reached, and blocks are kept there. Nothing was changed; try again once Redis answers`);
        });
        print(json, { key: await keyJsonOf(rt, key, json), lifted }, () => (lifted === 0 ? `key ${key.id} (${key.name}) was not blocked; nothing to lift (its violations so far are forgotten)` : `lifted the block of key ${key.id} (${key.name})`));
      }),
    );
  keys
    .command('rotate <id>')
    .description('issue a replacement; the old key keeps working for the overlap, then expires (revoked at once with keys.rotation: replace)')
    .option('--overlap <duration>', 'how long the old key stays valid (0 = revoke now; default 24h, or 0 with keys.rotation: replace)')
    .action((id: string, opts: { overlap?: string }, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        const text = opts.overlap ?? ops.defaultRotationOverlap(rt);
        const overlap = parseDuration(text);
        if (overlap === undefined) throw new OperationError('invalid', `--overlap: expected a duration (e.g. 1h, 24h, 7d)${unitlessNumberHint(text, '--overlap 10m')}`);
        const issued = await ops.rotateKey(rt, id, overlap, CLI_ACTOR);
        const now = rt.clock();
        const blocked = json ? await ops.blockedUntilOf(rt, [issued.key, issued.previous]) : undefined;
        print(json, ops.rotationOut(issued, now, blocked), () =>
          [
            `rotated ${id} → ${issued.key.id}; the old key ${overlap === 0 ? 'is revoked' : `works until ${keyEnd(issued.previous.expiresAt as number, now)}`}`,
            // A rotation keeps the old key's end date: said, as `keys create` says an expiry.
            ...(issued.key.expiresAt === null ? [] : [`the new key stops working at ${keyEnd(issued.key.expiresAt, now)}, when the old one was to (a rotation changes the secret, not how long access lasts)`]),
            // Under keys.rotation: replace, the keys it had replaced that still worked end with it.
            ...issued.ended.map((earlier) => `the key it replaced earlier, ${earlier.id}, still in its overlap, is revoked too`),
            '',
            `  ${issued.secret}`,
            '',
            'This is the only time the key is shown. Store it now.',
          ].join('\n'),
        );
        if (issued.key.accountId !== null) await warnOfRefusedKey(json, rt, issued.key.accountId);
      }),
    );

  const members = program.command('members').description('people who sign in to the dashboard');
  members
    .command('invite')
    .description('invite someone to the dashboard; prints a one-time link')
    .requiredOption('--email <email>', 'their e-mail address')
    .option('--account <id>', 'the account the member belongs to')
    .option('--operator', 'an operator (sees every account)')
    .action((opts: { email: string; account?: string; operator?: boolean }, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        if (opts.account === undefined && opts.operator !== true) throw new OperationError('invalid', 'say whom the invitation is for: --account <id> (a member of that account) or --operator (sees every account)');
        const invitation = await ops.inviteMember(rt, { email: opts.email, accountId: opts.account ?? null, role: opts.operator ? 'operator' : 'member' }, CLI_ACTOR).catch((error: unknown) => {
          throw inOption(error, 'email', '--email');
        });
        const { replaced } = invitation;
        print(json, { id: invitation.member.id, email: invitation.member.email, role: invitation.member.role, url: invitation.url, replacedInvitation: replaced ?? null }, () =>
          [
            `invited ${invitation.member.email}; they set a password at:\n\n  ${invitation.url}\n\nThe link works once, for 7 days.`,
            ...(replaced ? [`This replaces their pending invitation (${replaced.role}${replaced.accountId ? ` of ${replaced.accountId}` : ''}): its link no longer works.`] : []),
            ...dashboardLinkNotes(rt),
          ].join('\n'),
        );
      }),
    );
  members
    .command('reset')
    .description('a one-time link for a member to choose a new password (the old one works until then; to lock someone out: members remove)')
    .requiredOption('--email <email>', 'the member\'s e-mail address')
    .action((opts: { email: string }, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        const link = await ops.passwordResetLink(rt, opts.email, CLI_ACTOR);
        print(json, { id: link.member.id, email: link.member.email, url: link.url }, () =>
          [`${link.member.email} can choose a new password at:\n\n  ${link.url}\n\nThe link works once, for 24 hours.`, ...dashboardLinkNotes(rt)].join('\n'),
        );
      }),
    );
  members
    .command('remove')
    .description('remove a member or operator: signed out everywhere; their password and any pending link stop working')
    .requiredOption('--email <email>', 'the member\'s e-mail address')
    .action((opts: { email: string }, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        const removed = await ops.removeMember(rt, { email: opts.email }, CLI_ACTOR);
        print(json, deletedJson(removed.id), () => `removed ${removed.role} ${removed.email}: signed out everywhere, and their password and any pending link no longer work`);
      }),
    );
  members
    .command('unlock')
    .description("lift every sign-in pause of a member's email, its own and those of the addresses and /64s that guessed at it, in every process; the wrong passwords counted are forgotten")
    .requiredOption('--email <email>', 'the member\'s e-mail address')
    .action((opts: { email: string }, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        const { member, lifted } = await ops.unlockMember(rt, { email: opts.email }, CLI_ACTOR);
        print(json, { member: ops.memberOut(member, rt.clock()), lifted }, () =>
          lifted
            ? `lifted the pause of ${member.email}: they can sign in from any address again`
            : `${member.email} was not paused; the wrong passwords counted are forgotten`,
        );
      }),
    );
  members
    .command('list')
    .description('members and operators, with their status')
    .option('--account <id>', 'only this account\'s members')
    .action((opts: { account?: string }, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        if (opts.account) await ops.getAccount(rt, opts.account);
        const list = await rt.store.listMembers(opts.account ? { accountId: opts.account } : {});
        const now = rt.clock();
        const members = list.map((m) => ops.memberOut(m, now));
        print(json, members, () =>
          table(
            members.map((m) => ({
              ...m,
              status: m.lockedUntil === null ? m.status : `${m.status}, paused until ${until(Date.parse(m.lockedUntil))}`,
              account: m.accountId,
              created: when(Date.parse(m.createdAt)),
            })),
            ['id', 'email', 'account', 'role', 'status', 'created'],
          ),
        );
      }),
    );

  program
    .command('audit')
    .description('key, account and member events, newest first, who did them and from which address')
    .option('--account <id>', 'only this account\'s events (a deleted account\'s too)')
    .option('--limit <n>', 'at most this many (1 to 10000); when older ones follow, stderr names the next page\'s --after (with --json, as a line {"next":{"after":"<cursor>"}}); stdout stays the list', '50')
    .option('--after <cursor>', 'continue after the place an earlier --limit gave')
    .action((opts: { account?: string; limit: string; after?: string }, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        const found = await rt.store.listAudit({ ...(opts.account ? { accountId: opts.account } : {}), ...pageOf(opts) });
        // A deleted account's log stays (who deleted it, and when): only an id with neither an
        // account nor a line in the log is refused, as a mistyped one (the page past the last is empty).
        if (opts.account && opts.after === undefined && found.length === 0) await ops.getAccount(rt, opts.account);
        const entries = pageEnd(found, opts, json, (e) => ({ createdAt: e.at, id: e.id }));
        const events = entries.map(auditEventOut);
        print(json, events, () =>
          table(
            // `address`: the client address of an admin API or dashboard change; "-" for the CLI's own. Not
            // headed FROM: account.updated's DETAIL has a `from` (what each changed field was), and "FROM -" beside it read as "changed from nothing".
            events.map((e) => ({ when: when(Date.parse(e.at)), actor: e.actor, address: e.actorAddress, action: e.action, account: e.accountId ?? '', key: e.keyId ?? '', detail: JSON.stringify(e.detail) })),
            ['when', 'actor', 'address', 'action', 'account', 'key', 'detail'],
          ),
        );
      }),
    );

  program
    .command('gauge')
    .description('set a gauge meter of an account (e.g. keywords tracked)')
    .requiredOption('--account <id>', 'the account whose gauge it is')
    .requiredOption('--meter <name>', 'a gauge meter of the account\'s plan (kind: gauge)')
    .requiredOption('--value <n>', 'its level now, e.g. the keywords tracked (not an increment)')
    .action((opts: { account: string; meter: string; value: string }, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        // A number as written: not "" (0 to Number) or 0x10.
        if (!/^\d+(?:\.\d+)?$/.test(opts.value.trim())) throw new OperationError('invalid', '--value: expected a number such as 120 or 3.5');
        const value = Number(opts.value);
        await ops.setGauge(rt, opts.account, opts.meter, value).catch((error: unknown) => {
          throw inOption(error, 'meter', '--meter');
        });
        print(json, { meter: opts.meter, value }, () => `${opts.meter} = ${value} for ${opts.account}`);
      }),
    );

  program
    .command('forecast')
    .description('price a list of planned calls and compare with the account\'s balance')
    .option('--account <id>', 'compare with this account\'s remaining balance')
    .option('--calls <file>', 'YAML or JSON list of {method, path, count, records}')
    .option('--call <spec...>', 'e.g. "POST /v1/backlinks/summary x3 records=100" (repeatable)')
    .action((opts: { account?: string; calls?: string; call?: string[] }, command: Command) =>
      withRuntime(command, async (rt, { json }) => {
        // Checked, each named, by forecast().
        const calls: unknown[] = [];
        if (opts.calls) {
          let text: string;
          try {
            text = readFileSync(opts.calls === '-' ? 0 : opts.calls, 'utf8');
          } catch (error) {
            // Not named: what cannot be read may be anything pasted there, nor is a file that was read.
            const code = (error as NodeJS.ErrnoException).code;
            throw new OperationError('invalid', `--calls: cannot read that file${code === undefined ? '' : ` (${code})`}`);
          }
          let parsed: unknown;
          try {
            parsed = ops.parseYaml(text) as unknown;
          } catch (error) {
            // YAML's message goes on with the line it stopped at, under a blank line: the first line says it.
            const why = ((error as Error).message.split('\n')[0] ?? '').replace(/:$/, '');
            throw new OperationError('invalid', `--calls: that file is not YAML or JSON: ${why}`);
          }
          if (!Array.isArray(parsed)) throw new OperationError('invalid', '--calls: expected a list of calls in that file');
          calls.push(...parsed);
        }
        const specs = opts.call ?? [];
        specs.forEach((spec, i) => calls.push(parseCallSpec(spec, flagAt('--call', i, specs.length))));
        if (calls.length === 0) throw new OperationError('invalid', 'give --calls <file> or at least one --call');
        // Apart from `ops`: it reads paths as the gateway does, which loads Fastify.
        const { forecast } = await import('../operations/forecast.js');
        // A call is named by where it was given: the file's calls first, then each --call.
        const fromFile = calls.length - specs.length;
        const given = (index: number) => (index < fromFile ? `--calls (its ${ordinal(index + 1)} call)` : flagAt('--call', index - fromFile, specs.length));
        const result = await forecast(rt, calls, opts.account).catch((error: unknown) => {
          throw inOption(error, 'calls', given);
        });
        print(json, result, () => {
          const lines = table(
            result.lines.map((l) => ({ call: `${l.method} ${l.path}`, count: l.count, records: l.records ?? '-', each: l.unitsPerCall, units: l.units, meter: l.meter ?? '-' })),
            ['call', 'count', 'records', 'each', 'units', 'meter'],
          );
          const totals = Object.entries(result.totals).map(([m, t]) => `total ${m}: ${t}`);
          const balance = Object.entries(result.balance ?? {}).map(([m, b]) => balanceLine(m, b, result.planId));
          return [lines, '', ...(totals.length > 0 ? totals : ['total: 0 (no call costs units)']), ...balance].join('\n');
        });
        if (result.covered === false) process.exitCode = 3;
      }),
    );

  return program;
}

/**
 * A forecast's verdict on one meter. A meter the plan lacks is said so, not as "remaining:
 * 0", which read as spent (and as if a top-up or a new period would do): the gateway
 * refuses every call that costs units of it, so only another plan helps.
 */
function balanceLine(meter: string, balance: MeterBalance, planId: string | undefined): string {
  if (!balance.inPlan) {
    const lacks = `${meter}: the ${planId ?? "account's"} plan has no meter "${meter}"`;
    return balance.covered ? `${lacks} → covered (these calls cost none of it)` : `${lacks} → NOT covered (the gateway refuses these calls)`;
  }
  return `${meter} remaining: ${balance.remaining} → ${balance.covered ? 'covered' : 'NOT covered'}${balance.overageAllowed ? ' (overage on)' : ''}`;
}

/**
 * One key as --json prints it after a command on it (keyOut, as the admin API answers it),
 * asking the counters for its block only when printing JSON; `blockedUntil` is left out
 * where it is not known (Redis away) rather than null. With memory counters the blocks are
 * the serving process's, as it last wrote them to the store (within a second).
 */
async function keyJsonOf(rt: Runtime, key: KeyRecord, json: boolean | undefined) {
  return ops.keyOut(key, rt.clock(), json ? await ops.blockedUntilOf(rt, [key]) : undefined);
}

/**
 * The keys that replaced each of `list` (by a rotation), by the replaced key's id, oldest
 * first. A replacement is newer than its key: in a whole list it is in the list; in a page
 * (`paged`) it may be on a later one, so the page's replacements are read in one query.
 */
async function replacementsOf(rt: Runtime, list: readonly KeyRecord[], paged: boolean): Promise<Map<string, string[]>> {
  const replacements = new Map<string, string[]>();
  const replacing = paged && list.length > 0 ? await rt.store.listKeys({ rotatedFromIds: list.map((key) => key.id) }) : list;
  for (const key of replacing) if (key.rotatedFrom !== null) replacements.set(key.rotatedFrom, [...(replacements.get(key.rotatedFrom) ?? []), key.id]);
  return replacements;
}

/**
 * Which key a key replaced and which replaced it, as `keys list` prints it: after a rotation
 * with an overlap two rows share a name, and this says which is which (`--json`: `rotatedFrom`).
 * The replaced key's EXPIRES says until when it works.
 */
function rotationText(key: KeyRecord, replacedBy: readonly string[] | undefined): string {
  const parts = [...(key.rotatedFrom === null ? [] : [`replaces ${key.rotatedFrom}`]), ...(replacedBy === undefined ? [] : [`replaced by ${replacedBy.join(' and ')}`])];
  return parts.join('; ');
}

/**
 * Why the counters could not say which keys are blocked, as a key's status says it: Redis
 * refusing keygate's user (WRONGPASS, NOAUTH: its words and the fix said once on stderr, a
 * fix in the profile or the ACL, not the network), else Redis that cannot be reached.
 */
function countersAway(rt: Runtime, json: boolean | undefined): string {
  const refusal = rt.counters.refusal?.();
  if (refusal === undefined) return 'Redis is unreachable';
  warn(json, `${refusedConnection(refusal)}: whether a key is blocked is not known; ${REFUSAL_FIX}`);
  return 'Redis refuses the connection';
}

/**
 * A key's status as the human output prints it: with when its block ends, or, where the
 * counters cannot be asked (`blocked` undefined: Redis away, `away` saying why), that a key
 * that would work may be blocked, rather than "active" alone.
 */
function printedStatus(key: KeyRecord, now: number, blocked: ReadonlyMap<string, number> | undefined, away = 'Redis is unreachable'): string {
  const status = ops.keyStatus(key, now);
  if (blocked === undefined) return status === 'active' || status === 'expiring' ? `${status} (blocked or not: ${away})` : status;
  const ends = blocked.get(key.id);
  return ends === undefined ? status : `${status}, blocked until ${until(ends)}`;
}

/** A parser of port options: a whole number from 0 (any free port) to `highest`, else `expected` is said (never the value: parse-errors.ts). */
function portUpTo(highest: number, expected: string): (text: string) => number {
  return (text) => {
    const port = Number(text);
    if (!/^\d+$/.test(text) || port > highest) throw new InvalidArgumentError(expected);
    return port;
  };
}

/** A TCP port: 0 (any free one) to 65535. */
const parsePort = portUpTo(65_535, 'Expected a whole number from 0 to 65535.');
/** A port for `demo --port`: 0 (any) or one that leaves room for the two after it. */
const parseDemoPort = portUpTo(65_533, 'Expected a whole number from 0 to 65533 (the admin API and the dashboard take the next two).');

/**
 * As nginx and most daemons: SIGHUP reads the profile again (what changed, or why nothing
 * did, is logged). One that arrives while keygate starts (held by the command from its
 * first line: Node's default would end the process) is taken once it serves. Returns
 * what to hand the running keygate to.
 */
function reloadOnSighup(): (running: Pick<RunningKeygate, 'reload'>) => void {
  let running: Pick<RunningKeygate, 'reload'> | undefined;
  let asked = false;
  const reload = () => void running?.reload().catch(() => undefined);
  if (takeSighup(() => (running ? reload() : (asked = true)))) asked = true;
  return (started) => {
    running = started;
    if (asked) reload();
  };
}

/** How the signal handling says what it does: `level` for a log, `signal` the one received. */
type Say = (level: 'info' | 'warn' | 'error', message: string, signal: string) => void;

/** As JSON log lines (`keygate serve`: its log is read by machines). An exit that follows (exitOnceLogged) waits for the line to be out. */
function sayInLog(log: Log): Say {
  return (level, message, signal) => log[level]({ signal }, message);
}

/** As plain lines on stderr (the demo: a person at a terminal). */
const sayOnTerminal: Say = (_level, message) => {
  process.stderr.write(`${message}\n`);
};

/**
 * SIGINT and SIGTERM (or the `signals` given), from now on: the first stops keygate
 * (`close`), at once if it serves, else as soon as it does; the second cuts a readiness
 * delay short (`hurry`) or, with none to cut (or while keygate starts), exits at once, as
 * does a third. What it does is said through `say`. Answers the function to call with
 * keygate once it serves.
 */
function stopOnSignal(say: Say, signals: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM']): (running: Pick<RunningKeygate, 'close' | 'hurry'>) => void {
  let running: Pick<RunningKeygate, 'close' | 'hurry'> | undefined;
  let asked: string | undefined;
  const stop = (target: Pick<RunningKeygate, 'close' | 'hurry'>, signal: string, startedJustNow = false) => {
    target.close(signal, { startedJustNow }).then(
      () => exitOnceLogged(0),
      (error: unknown) => {
        say('error', `error while stopping: ${error instanceof Error ? error.message : String(error)}`, signal);
        exitOnceLogged(1);
      },
    );
  };
  const onSignal = (signal: string) => {
    if (asked === undefined) {
      asked = signal;
      if (running) stop(running, signal);
      else say('info', `${signal} while starting: keygate stops as soon as it serves (${signal} again: exits at once)`, signal);
      return;
    }
    if (running?.hurry()) {
      say('info', `${signal} again: closing the listeners now (once more: exiting at once)`, signal);
      return;
    }
    // Already on its way out (its last lines waiting for a stalled log reader): at once.
    if (exiting) process.exit(1);
    say('warn', `${signal} again: exiting now`, signal);
    exitOnceLogged(1);
  };
  for (const signal of signals) process.on(signal, () => onSignal(signal));
  return (started) => {
    running = started;
    if (asked === undefined) return;
    // Never ready until now, so in no load balancer: no readiness delay to wait out.
    stop(started, asked, true);
  };
}

/** Whether exitOnceLogged was called: the process is on its way out. */
let exiting = false;

/**
 * Exits with `code` once the log lines standard output keeps are out, in order, or after
 * LOG_FLUSH_MS if its reader takes none of them meanwhile (they are lost, counted and said
 * on stderr as dropped lines are; the exit code is the same). Without it, a log reader
 * that stopped reading would either lose the lines of the stop or hold the process for
 * ever. Once called, later calls change nothing.
 */
function exitOnceLogged(code: number): void {
  if (exiting) return;
  exiting = true;
  void ops.closeStandardOutput().then(() => process.exit(code));
}

/** How long a serving process that met an uncaught error gives its runtime to write usage out before it exits. */
const CRASH_STOP_MS = 3_000;

/**
 * An uncaught exception or unhandled rejection in `keygate serve`, from now on: said as one
 * fatal JSON log line (Node's default is a plain stack trace on stderr, which a log reader
 * expecting JSON cannot parse), then, once it serves, balances and usage written out (the
 * runtime's close, no drain: what threw may be what a drain would wait for), for at most
 * CRASH_STOP_MS, and exit code 1. Installed by the CLI alone: a library leaves its host's
 * process handlers to the host. Answers the function to call with keygate once it serves.
 */
function exitOnUncaughtError(log: Log, keyFormat: KeyFormat): (running: Pick<RunningKeygate, 'runtime'>) => void {
  let running: Pick<RunningKeygate, 'runtime'> | undefined;
  let crashed = false;
  const onError = (error: unknown, origin: 'uncaughtException' | 'unhandledRejection') => {
    // A key in the message (a thrown request target, say) is redacted as the CLI's errors are,
    // in an object made from it: the error itself may not take a new message (frozen, a getter).
    const scrub = (text: string | undefined) => (text === undefined ? text : ops.withoutKeys(keyFormat, text));
    const thrown = error instanceof Error ? error : new Error(String(error));
    const err: Error = Object.create(thrown);
    Object.defineProperty(err, 'message', { value: scrub(thrown.message) ?? '' });
    Object.defineProperty(err, 'stack', { value: scrub(thrown.stack) });
    log.fatal({ err, origin }, `keygate stops on an unexpected error (${origin === 'uncaughtException' ? 'an uncaught exception' : 'an unhandled rejection'}): ${err.message}`);
    // A second one while the first is handled: the first's exit is under way.
    if (crashed) return;
    crashed = true;
    process.exitCode = 1;
    if (running === undefined) {
      exitOnceLogged(1);
      return;
    }
    setTimeout(() => exitOnceLogged(1), CRASH_STOP_MS);
    // Stopping, as after a signal: /health/ready answers 503, and what was still under way (the
    // start-up look at the upstream, say) says nothing more, where it would land after the log closed.
    running.runtime.stopping = true;
    running.runtime.close().then(
      () => exitOnceLogged(1),
      () => exitOnceLogged(1),
    );
  };
  process.on('uncaughtException', (error) => onError(error, 'uncaughtException'));
  process.on('unhandledRejection', (reason) => onError(reason, 'unhandledRejection'));
  return (started) => {
    running = started;
  };
}

export async function main(argv: string[]): Promise<void> {
  // With --json a script gets the failure as JSON too (on stderr; the exit code is the same),
  // also commander's own (an unknown option, a missing argument): not its text and usage.
  // Either way its message holds nothing typed that could be a key (parse-errors.ts).
  const json = argv.includes('--json');
  const program = buildCli();
  throwInsteadOfExiting(program, json);
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, having printed what was asked (exit code 0).
      // Help shown for want of a subcommand ("(outputHelp)") is said in words.
      const message = error.code === 'commander.help' ? 'a command is needed; --help lists them' : error.message.replace(/^error: /, '');
      if (json && error.exitCode !== 0) process.stderr.write(`${JSON.stringify({ error: message })}\n`);
      process.exitCode = error.exitCode;
      return;
    }
    const failure = describeFailure(error);
    process.stderr.write(json ? `${JSON.stringify({ error: failure.message, ...(failure.problems ? { problems: failure.problems } : {}) })}\n` : failure.text);
    process.exitCode = failure.exitCode;
  }
}

/**
 * Commander's parse errors become thrown CommanderErrors, for `main` to answer, in every
 * command; with `json`, commander writes none of its text to stderr (usage included).
 */
function throwInsteadOfExiting(command: Command, json: boolean): void {
  command.exitOverride();
  if (json) command.configureOutput({ writeErr: () => undefined });
  for (const sub of command.commands) throwInsteadOfExiting(sub, json);
}

/** The profile `keygate demo` writes with its default --data, from where it was started. */
const DEMO_PROFILE = 'data/demo/keygate.yaml';

/** A failure the way a user can act on it: the text to print, the exit code, and for a bad profile its problems. */
function describeFailure(error: unknown): { text: string; message: string; exitCode: number; problems?: string[] } {
  if (error instanceof ConfigError) {
    // The usual first stumble: no profile where the command looked for one.
    const missing = error.problems.some((problem) => problem.startsWith(`${UNREADABLE}: ENOENT`));
    // Right after `npm run demo`, the profile is the demo's: the README's CLI lines name it, a first try often does not.
    const demo = missing && existsSync(DEMO_PROFILE) ? ` The demo's is --config ${DEMO_PROFILE}.` : '';
    const hint = missing ? `Name the profile with --config <file>, or set KEYGATE_CONFIG.${demo}` : undefined;
    return { text: `${error.message}\n${hint ? `${hint}\n` : ''}`, message: `${error.summary}${hint ? `. ${hint}` : ''}`, exitCode: 2, problems: error.problems };
  }
  // A port in use is named by serve, with the listener and its profile field.
  const message = error instanceof Error ? error.message : String(error);
  return { text: `error: ${message}\n`, message, exitCode: 1 };
}

/** `1 plan`, `2 plans`. */
function counted(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/**
 * A dashboard link made where the profile turns the dashboard off leads nowhere until it
 * is on, and one made where it listens on port 0 names no port a browser reaches: said
 * under the link (people only; --json keeps the answer's shape).
 */
function dashboardLinkNotes(rt: Runtime): string[] {
  const note = ops.dashboardOffNote(rt.config) ?? ops.dashboardPortZeroNote(rt);
  return note === undefined ? [] : [`Note: ${note}.`];
}
