/**
 * What TypeScript lets an application do with `check`'s answer: read who is calling and
 * the route, narrow a built-in by `kind`, but not change the cached identity or the
 * profile's route, which later requests (every account's, for the route) are judged by.
 * Checked by the type check (npm run typecheck); vitest runs nothing here.
 */
import { describe, expectTypeOf, it } from 'vitest';
import type { CheckAdmitted, CheckResult, ReadonlyDeep, Identity } from '../src/index.js';

describe("check's answer (types)", () => {
  it('reads the identity and route, narrows a built-in by kind, and refuses to change either', () => {
    const read = (result: CheckResult) => {
      if (!result.allowed) return;
      const accountId: string = result.identity.account.id;
      const scopes: readonly string[] = result.identity.key.scopes;
      const builtinStatus = result.route.kind === 'builtin' ? result.route.builtin.status : undefined;
      // @ts-expect-error a scope pushed here is what the key's next requests are judged by
      result.identity.key.scopes.push('admin');
      // @ts-expect-error the account's plan, as the cache holds it for the next requests
      result.identity.account.planId = 'enterprise';
      // @ts-expect-error the profile's own route: every account would be charged the change
      if (result.route.kind === 'proxy') result.route.route.cost = undefined;
      // Copied, it is the application's to change.
      const mine = [...result.identity.key.scopes];
      mine.push('admin');
      return { accountId, scopes, builtinStatus, mine };
    };
    expectTypeOf(read).toBeFunction();
    expectTypeOf<CheckAdmitted['identity']>().toEqualTypeOf<ReadonlyDeep<Identity>>();
    expectTypeOf<CheckAdmitted['identity']['key']['scopes']>().toEqualTypeOf<readonly string[]>();
  });
});
