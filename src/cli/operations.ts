/**
 * What the CLI's commands work with, in one module that main.ts loads only once a command
 * is to run (see `ops` there): `keygate --help` and `--version` need none of it. The
 * server (Fastify, undici, the dashboard) is not here: `serve`, `demo` and `forecast`
 * load what they need of it. Commands on the profile alone load only profile.ts.
 */
export * from './profile.js';
export { createRuntime, forgetKeyHashing, keyHashingMismatch, keyHashingState, migrateOrRefuse } from '../runtime.js';
export { openStore, reachStore, redactUrl, sqliteFile } from '../store/open.js';
export { backupSqlite } from '../store/sqlite/backup.js';
export { copySqliteToPostgres } from '../store/copy.js';
export { BUSY_TIMEOUT_MS, isBusyError } from '../store/sqlite/sqlite-database.js';
export { accountOut, accountPlan, apiEnabledOf, changeAccount, createAccount, deleteAccount, getAccount, keysTurnedOff, keysTurnedOffWarning, pastPlanExpiryWarning, refusedKeyWarning } from '../operations/accounts.js';
export { blockedUntilOf, createKey, defaultRotationOverlap, getKey, keyOut, keyStatus, revokeKey, rotateKey, rotationOut, unblockKey, updateKey } from '../operations/keys.js';
export { dashboardOffNote, dashboardPortZeroNote, inviteMember, memberOut, passwordResetLink, removeMember, unlockMember } from '../operations/members.js';
export { accountUsage, dailyUsage, setGauge, usageOut } from '../operations/usage.js';
export { closeStandardOutput, createLog, terminalDestination, withProcess } from '../log.js';
export { withoutKeys } from '../keys/redact.js';
