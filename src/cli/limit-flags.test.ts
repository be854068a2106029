import { describe, expect, it } from 'vitest';
import { inFlags, keyWindowsInFlags, keyWindowsOption, limitsOptions } from './limit-flags.js';
import { OperationError } from '../operations/errors.js';
import { PER_ACCOUNT_WHY } from '../limits/key-windows.js';
import { MeterLimitError, PerAccountKeyWindowError, WindowShapeError, WindowsRefusal } from '../limits/window-shape.js';

describe('--rate-limit and --meter-limit', () => {
  it('reads windows as keygate names them, plan and none alone, and meter limits by name', () => {
    expect(limitsOptions({})).toBeUndefined();
    expect(limitsOptions({ rateLimit: ['100-per-1s', '5000-per-1h-per-account', '7-per-500ms-per-key'] })).toEqual({
      rateLimits: [
        { limit: 100, window: '1s', scope: 'key' },
        { limit: 5000, window: '1h', scope: 'account' },
        { limit: 7, window: '500ms', scope: 'key' },
      ],
    });
    expect(limitsOptions({ rateLimit: ['plan'] })).toEqual({ rateLimits: null });
    expect(limitsOptions({ rateLimit: ['none'] })).toEqual({ rateLimits: [] });
    expect(limitsOptions({ meterLimit: ['units=5000000', 'credits=plan', 'rows=0.5'] })).toEqual({ meters: { units: 5_000_000, credits: null, rows: 0.5 } });
  });

  it('refuses what it cannot read, naming the flag (by its place, among several) and never the value', () => {
    expect(() => limitsOptions({ rateLimit: ['100/s'] })).toThrow(/^--rate-limit: expected <limit>-per-<window>/);
    expect(() => limitsOptions({ rateLimit: ['none', '10-per-1s'] })).toThrow(
      '--rate-limit (the 1st of 2): expected <limit>-per-<window> as 100-per-1s or 5000-per-1h-per-account (no spaces; a window is a number and ms, s, m, h or d), or plan (the plan\'s windows) or none: "none" is given alone',
    );
    expect(() => limitsOptions({ rateLimit: ['1-per-1s', '2-per-1s', '3-per-1s', '4-per-1s', '5-per-1s', '6-per-1s', '7-per-1s', '8-per-1s', '9-per-1s', '10-per-1s', '11/s'] })).toThrow(/^--rate-limit \(the 11th of 11\):/);
    expect(() => limitsOptions({ meterLimit: ['units'] })).toThrow(/^--meter-limit: expected <meter>=<limit>/);
    expect(() => limitsOptions({ meterLimit: ['rows=1', 'units=-1'] })).toThrow(/^--meter-limit \(the 2nd of 2\): expected/);
  });

  it('says what a window looks like to a near miss (a space in it, hr for h), without repeating it', () => {
    for (const nearMiss of ['10-per-1 hour', '10 per 1h', '10-per-1hr']) {
      expect(() => limitsOptions({ rateLimit: [nearMiss] }), nearMiss).toThrow(
        "--rate-limit: expected <limit>-per-<window> as 100-per-1s or 5000-per-1h-per-account (no spaces; a window is a number and ms, s, m, h or d), or plan (the plan's windows) or none",
      );
    }
  });

  it('refuses a limit of hundreds of digits as too large, naming the flag and the most it may be, not the value', () => {
    const nines = '9'.repeat(400);
    const refusal = (opts: Parameters<typeof limitsOptions>[0]) => {
      try {
        limitsOptions(opts);
      } catch (error) {
        return (error as Error).message;
      }
      return 'accepted';
    };
    expect(refusal({ rateLimit: [`${nines}-per-1s`] })).toBe("--rate-limit: too large: a window's limit is at most 999999999999999");
    expect(refusal({ rateLimit: ['5-per-1s', `${nines}-per-1m`] })).toBe("--rate-limit (the 2nd of 2): too large: a window's limit is at most 999999999999999");
    expect(refusal({ meterLimit: [`units=${nines}`] })).toBe("--meter-limit: too large: a meter's limit is at most 999999999999999");
  });

  it("tells the operations' field names as the flags that gave them", () => {
    const change = limitsOptions({ rateLimit: ['5-per-1s'], meterLimit: ['units=5'] });
    expect((inFlags(new WindowShapeError('limits.rateLimits', 0, '.limit', 'Too small'), change) as Error).message).toBe('--rate-limit: Too small');
    const kept = new MeterLimitError('credits', { reason: 'kept_from_before', planId: 'pro', meters: ['units'], kept: ['credits'] });
    expect((inFlags(kept, change) as Error).message).toBe(
      '--meter-limit credits: the pro plan has no meter "credits" (the account\'s own limit for it, kept from before: give --meter-limit credits=plan to drop it); its meters: units',
    );
    // `accounts update --plan pro` alone (no limit flags) meets a limit kept from before: told as a flag too.
    expect((inFlags(kept, undefined) as Error).message).toBe(
      '--meter-limit credits: the pro plan has no meter "credits" (the account\'s own limit for it, kept from before: give --meter-limit credits=plan to drop it); its meters: units',
    );
  });

  it("tells a meter's refused limit in --meter-limit from the refusal's reason, whatever the operation's message says", () => {
    const reworded = <E extends Error>(error: E) => Object.assign(error, { message: 'worded another way' });
    const change = limitsOptions({ meterLimit: ['units=5', 'Credits=7'] });
    // A meter typed now: by its flag's place, never repeated; the meter it likely meant, and the plan's.
    const typo = new MeterLimitError('Credits', { reason: 'no_such_meter', planId: 'pro', meters: ['units', 'credits'], near: 'credits' });
    expect(typo.message).toBe('limits.meters.Credits: the pro plan has no meter "Credits" (did you mean "credits"?); its meters: units, credits');
    expect((inFlags(reworded(typo), change) as Error).message).toBe('--meter-limit (the 2nd of 2): the pro plan has no such meter (did you mean "credits"?); its meters: units, credits');
    const none = new MeterLimitError('units', { reason: 'no_such_meter', planId: 'free', meters: [], near: undefined });
    expect((inFlags(reworded(none), change) as Error).message).toBe('--meter-limit (the 1st of 2): the free plan has no such meter; it has no meters');
    // Not a limit: the value given is not repeated, and the plan's is given back with the flag's words.
    const negative = new MeterLimitError('units', { reason: 'not_a_limit', got: '-5' });
    expect(negative.message).toBe("limits.meters.units: a meter's limit is a number from 0 to 999999999999999, or null for the plan's (got -5)");
    expect((inFlags(reworded(negative), change) as Error).message).toBe("--meter-limit (the 1st of 2): a meter's limit is a number from 0 to 999999999999999, or <meter>=plan for the plan's");
    // Kept from before: by its stored name, with the flag that gives it back.
    const kept = new MeterLimitError('calls', { reason: 'kept_from_before', planId: 'free', meters: [], kept: ['calls'] });
    expect(kept.message).toBe('limits.meters.calls: the free plan has no meter "calls" (the account\'s own limit for it, kept from before: give "calls": null to drop it); it has no meters');
    expect((inFlags(reworded(kept), undefined) as Error).message).toBe(
      '--meter-limit calls: the free plan has no meter "calls" (the account\'s own limit for it, kept from before: give --meter-limit calls=plan to drop it); it has no meters',
    );
  });

  it('names every meter typed now that the plan lacks in one refusal: by name in the message, by the flag\'s place in --meter-limit, each with its guess', () => {
    const change = limitsOptions({ meterLimit: ['Units=5', 'credits=7', 'calls=1'] });
    const several = new MeterLimitError('Units', { reason: 'no_such_meter', planId: 'pro', meters: ['units', 'credits'], near: 'units', others: [{ meter: 'calls', near: undefined }] });
    expect(several.message).toBe('limits.meters: the pro plan has no meters "Units" (did you mean "units"?) or "calls"; its meters: units, credits');
    expect((inFlags(Object.assign(several, { message: 'worded another way' }), change) as Error).message).toBe(
      '--meter-limit: the 1st of 3 (did you mean "units"?) and the 3rd of 3 name no meter the pro plan has; its meters: units, credits',
    );
  });

  it('names every limit kept from before that the plan lacks in one refusal, each with the flag that gives it back', () => {
    const kept = new MeterLimitError('credits', { reason: 'kept_from_before', planId: 'free', meters: [], kept: ['credits', 'brands'] });
    expect(kept.message).toBe('limits.meters: the free plan has no meters "credits" or "brands" (the account\'s own limits for them, kept from before: give "credits": null, "brands": null to drop them); it has no meters');
    expect((inFlags(Object.assign(kept, { message: 'worded another way' }), undefined) as Error).message).toBe(
      '--meter-limit: the free plan has no meters "credits" or "brands" (the account\'s own limits for them, kept from before: give --meter-limit credits=plan --meter-limit brands=plan to drop them); it has no meters',
    );
  });

  it("tells a key's refused window in --rate-limit from the refusal's fields, whatever the operation's message says", () => {
    const windows = keyWindowsOption(['2-per-1s', '5-per-1m-per-account']);
    const reworded = <E extends Error>(error: E) => Object.assign(error, { message: 'worded another way' });
    expect((keyWindowsInFlags(reworded(new PerAccountKeyWindowError(1)), windows) as Error).message).toBe(`--rate-limit (the 2nd of 2): ${PER_ACCOUNT_WHY}`);
    expect((keyWindowsInFlags(reworded(new WindowShapeError('rateLimits', 0, '.limit', 'expected more than 0')), windows) as Error).message).toBe('--rate-limit (the 1st of 2): expected more than 0');
    expect((keyWindowsInFlags(reworded(new WindowsRefusal('rateLimits', 'at most 20 windows')), windows) as Error).message).toBe('--rate-limit: at most 20 windows');
    // A refusal that merely reads like one is said as it is.
    const other = new OperationError('invalid', 'rateLimits[0]: not a refusal of a window');
    expect(keyWindowsInFlags(other, windows)).toBe(other);
  });
});
