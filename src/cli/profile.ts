/**
 * What the CLI's commands on the profile alone work with (`check`, `schema`, `plans
 * list`): reading and validating keygate.yaml, its JSON Schema, its route table. Loaded by
 * main.ts once such a command is to run; none of it opens a store, so these commands load
 * no database driver (operations.ts, which the others load, re-exports all of it).
 */
export { z } from 'zod';
export { parse as parseYaml } from 'yaml';
export { configJsonSchema, loadConfigFile } from '../config/load.js';
export { describeScopeGap, describeWildcardRootGap, profileRouteTable, scopeGaps, wildcardRootGaps } from '../routes/route-table.js';
export { describeWeakImportedKeys, weakImportedKeys } from '../keys/format.js';
export { describeListeners, servingPlan } from '../config/servable.js';
export { unusedFields } from '../config/unused-fields.js';
