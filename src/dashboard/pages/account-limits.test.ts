import { describe, expect, it } from 'vitest';
import type { Plan } from '../../config/schema.js';
import { limitsRefusal } from './account-limits.js';
import { MeterLimitError } from '../../limits/window-shape.js';

describe('limitsRefusal', () => {
  const plans = {
    pro: { name: 'Pro', apiAccess: true, rateLimits: [], meters: { units: { limit: 1000 } } },
    free: { name: 'Free', apiAccess: false, rateLimits: [], meters: {} },
  } as unknown as Record<string, Plan>;
  const onPro = { planId: 'pro' };
  const reworded = <E extends Error>(error: E) => Object.assign(error, { message: 'worded another way' });

  it("words a meter's refused limit from the refusal's reason, in the form's terms (empty: the plan's), whatever the operation's message says", () => {
    // Kept from before, met by a move to a plan without that meter: the form's field to empty, then the move.
    const kept = new MeterLimitError('units', { reason: 'kept_from_before', planId: 'free', meters: [], kept: ['units'] });
    expect(limitsRefusal(reworded(kept), undefined, onPro, plans)).toBe(
      'Limit of “units”: the Free plan has no meter “units”, and this account has its own limit for it: empty the Limit of “units” field under Limits and save the limits, then change the plan.',
    );
    // On a plan that lost the meter, the form has no field for it: saving the form drops it.
    const lost = new MeterLimitError('credits', { reason: 'kept_from_before', planId: 'free', meters: [], kept: ['credits'] });
    expect(limitsRefusal(reworded(lost), undefined, onPro, plans)).toBe(
      'Limit of “credits”: the Free plan has no meter “credits”, and this account has its own limit for it: save the limits under Limits, which drops it, then change the plan.',
    );
    // Several kept from before: every one named at once, those with a field and those without.
    const both = new MeterLimitError('units', { reason: 'kept_from_before', planId: 'free', meters: [], kept: ['units', 'credits'] });
    expect(limitsRefusal(reworded(both), undefined, onPro, plans)).toBe(
      'Limits of “units” and “credits”: the Free plan has no meters “units” or “credits”, and this account has its own limits for them: empty the Limit of “units” field under Limits and save the limits, which drops “credits” too, then change the plan.',
    );
    const twoFields = { ...plans, team: { name: 'Team', apiAccess: true, rateLimits: [], meters: { units: { limit: 10 }, rows: { limit: 5 } } } } as unknown as Record<string, Plan>;
    const rows = new MeterLimitError('units', { reason: 'kept_from_before', planId: 'free', meters: [], kept: ['units', 'rows'] });
    expect(limitsRefusal(reworded(rows), undefined, { planId: 'team' }, twoFields)).toBe(
      'Limits of “units” and “rows”: the Free plan has no meters “units” or “rows”, and this account has its own limits for them: empty the Limit of “units” and Limit of “rows” fields under Limits and save the limits, then change the plan.',
    );
    // Met on the plan the account is on (the profile took the meter away): there is no plan to change to.
    const onItsOwn = new MeterLimitError('credits', { reason: 'kept_from_before', planId: 'pro', meters: ['units'], kept: ['credits'] });
    expect(limitsRefusal(reworded(onItsOwn), undefined, onPro, plans)).toBe('Limit of “credits”: the Pro plan has no meter “credits”, and this account has its own limit for it: save the limits under Limits, which drops it.');
    const typo = new MeterLimitError('unit', { reason: 'no_such_meter', planId: 'pro', meters: ['units'], near: 'units' });
    expect(limitsRefusal(reworded(typo), { meters: { unit: 5 } }, onPro, plans)).toBe('Limit of “unit”: the Pro plan has no meter “unit” (did you mean “units”?); its meters: units.');
    // Several the plan has not (a form from before the plan lost them): every one named at once.
    const typos = new MeterLimitError('unit', { reason: 'no_such_meter', planId: 'pro', meters: ['units'], near: 'units', others: [{ meter: 'rows', near: undefined }] });
    expect(limitsRefusal(reworded(typos), { meters: { unit: 5, rows: 3 } }, onPro, plans)).toBe(
      'Limits of “unit” and “rows”: the Pro plan has no meters “unit” (did you mean “units”?) or “rows”; its meters: units.',
    );
    // Not a limit: the plan's is the empty field, not the admin API's null; the value is not repeated.
    const negative = new MeterLimitError('units', { reason: 'not_a_limit', got: '-5' });
    expect(limitsRefusal(reworded(negative), { meters: { units: -5 } }, onPro, plans)).toBe("Limit of “units”: a meter’s limit is a number from 0 to 999999999999999, or empty for the plan’s.");
    // A meter named as code names things (api_calls, dataRows) is quoted as a name, not read as a word.
    const calls = new MeterLimitError('api_calls', { reason: 'not_a_limit', got: '-5' });
    expect(limitsRefusal(reworded(calls), { meters: { api_calls: -5 } }, onPro, plans)).toBe('Limit of “api_calls”: a meter’s limit is a number from 0 to 999999999999999, or empty for the plan’s.');
  });
});
