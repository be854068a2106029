/** keygate's public surface for use as a library. */
import { keepTickObjectShape } from './tick-shape.js';

// Loading keygate keeps the shape of nextTick's queue entries (see tick-shape.ts): a
// process that embeds the gateway should not fall into V8's slow path for every tick.
keepTickObjectShape();

export { createKeygate, type Keygate, type CheckRequest, type CheckResult, type CheckAdmitted, type CheckRefused, type SettleOutcome, type ReadonlyDeep } from './library.js';
export type { MisplacedKey } from './auth/misplaced-key.js';
export { loadConfigFile, parseConfigText, parseConfigObject, configJsonSchema, ConfigError, type ConfigProblem, type LoadedConfig } from './config/load.js';
export type { Config, ConfigInput, Plan, Route, Builtin, Meter } from './config/schema.js';
export type { RunningKeygate, ServeOptions } from './serve.js';
import type { LoadedConfig } from './config/load.js';
import type { RunningKeygate, ServeOptions } from './serve.js';

/**
 * Starts the gateway's listeners (what `keygate serve` runs; see serve.ts). The listeners,
 * the admin API and the dashboard are loaded with the first call: an app that only checks
 * requests in process (`createKeygate`) does not load Fastify, the dashboard or the admin API.
 */
export async function serve(loaded: LoadedConfig, options?: ServeOptions): Promise<RunningKeygate> {
  const listeners = await import('./serve.js');
  return listeners.serve(loaded, options);
}
export { createRuntime, ConfigReloadError, RELOADABLE, type Runtime, type RuntimeOptions } from './runtime.js';
// What createKeygate (or serve) may reject with besides a ConfigError: another keygate on the
// SQLite file, a pepper that is not the database's, a PostgreSQL database not migrated.
export { KeyHashingMismatchError, NotMigratedError } from './runtime.js';
export { DatabaseInUseError } from './store/sqlite/process-lock.js';
export { DENIAL_REASONS, MESSAGE_PLACEHOLDERS, type DenialReason, type Denial } from './denial/reasons.js';
export type { Identity } from './pipeline/identity.js';
export { createAccount, getAccount, updateAccount, deleteAccount, type NewAccount, type AccountChange, type LimitsChange } from './operations/accounts.js';
export { createKey, getKey, revokeKey, rotateKey, updateKey, unblockKey, keyStatus, type NewKey, type IssuedKey, type KeyStatus, type KeyChanges } from './operations/keys.js';
export type { Store, AccountRecord, KeyRecord, AccountPatch, LimitOverrides } from './store/store.js';
export type { RenderedError } from './dialect/dialect.js';
export type { RouteMatch } from './routes/route-table.js';
export { inviteMember } from './operations/members.js';
export type { Actor } from './operations/audit.js';
export { accountUsage, setGauge } from './operations/usage.js';
export { forecast, type PlannedCall, type Forecast, type MeterBalance } from './operations/forecast.js';
export { OperationError, type OperationErrorKind } from './operations/errors.js';
