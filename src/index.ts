/** keygate's public surface for use as a library. */
export { createKeygate, type Keygate, type CheckRequest, type CheckResult } from './library.js';
export { loadConfigFile, parseConfigText, parseConfigObject, configJsonSchema, ConfigError, type LoadedConfig } from './config/load.js';
export type { Config, ConfigInput, Plan, Route, Meter } from './config/schema.js';
export { serve, type RunningKeygate, type ServeOptions } from './serve.js';
export { createRuntime, type Runtime, type RuntimeOptions } from './runtime.js';
export { DENIAL_REASONS, type DenialReason, type Denial } from './denial/reasons.js';
export type { Identity } from './pipeline/identity.js';
export { createAccount, updateAccount, deleteAccount } from './operations/accounts.js';
export { createKey, revokeKey, rotateKey } from './operations/keys.js';
export { inviteMember } from './operations/members.js';
export { accountUsage } from './operations/usage.js';
export { forecast, type PlannedCall, type Forecast } from './operations/forecast.js';
export { OperationError } from './operations/errors.js';
