import { describe, expect, it } from 'vitest';
import { keepWindowNames, LimitSpecError, limitsRefusalPlace, readLimitSpecs, windowSpec } from './limit-specs.js';
import { OperationError } from '../operations/errors.js';
import { MeterLimitError, WindowShapeError, WindowsRefusal } from './window-shape.js';

/** The structured refusal readLimitSpecs throws for `specs`. */
function refusalOf(specs: Parameters<typeof readLimitSpecs>[0]): unknown {
  try {
    readLimitSpecs(specs);
  } catch (error) {
    return error instanceof LimitSpecError ? error.refusal : error;
  }
  return undefined;
}

describe('limit specs', () => {
  it('read windows and meter limits as the change the operation takes', () => {
    expect(readLimitSpecs({})).toBeUndefined();
    expect(readLimitSpecs({ windows: ['25-per-1s', ' 5000-per-1h-per-account '] })).toEqual({
      rateLimits: [
        { limit: 25, window: '1s', scope: 'key' },
        { limit: 5000, window: '1h', scope: 'account' },
      ],
    });
    expect(readLimitSpecs({ windows: ['plan'], meters: ['units=plan', 'credits=0.5'] })).toEqual({ rateLimits: null, meters: { units: null, credits: 0.5 } });
    expect(readLimitSpecs({ windows: ['none'] })).toEqual({ rateLimits: [] });
  });

  it('refuse with the field, what was typed and why', () => {
    expect(refusalOf({ windows: ['10/s'] })).toEqual({ field: 'window', typed: '10/s', why: 'not_a_window' });
    expect(refusalOf({ windows: ['25-per-1s', 'plan'] })).toEqual({ field: 'window', typed: 'plan', why: 'given_alone' });
    // Read as windows, but admitting nothing: said in a whole sentence that names the window as typed.
    expect(refusalOf({ windows: ['25-per-1s', '0-per-1s'] })).toEqual({ field: 'window', typed: '0-per-1s', why: 'zero_limit' });
    expect(refusalOf({ windows: ['5-per-0s'] })).toEqual({ field: 'window', typed: '5-per-0s', why: 'zero_window' });
    expect(refusalOf({ windows: ['5-per-0.4ms-per-account'] })).toEqual({ field: 'window', typed: '5-per-0.4ms-per-account', why: 'zero_window' });
    expect(() => readLimitSpecs({ windows: ['0-per-1s'] })).toThrow('"0-per-1s": the number of requests (before -per-) must be at least 1');
    expect(refusalOf({ meters: ['units=1,000'] })).toEqual({ field: 'meter', typed: 'units=1,000', meter: 'units', value: '1,000', why: 'not_a_limit' });
    expect(refusalOf({ meters: ['units'] })).toEqual({ field: 'meter', typed: 'units', why: 'not_a_limit' });
    expect(() => readLimitSpecs({ meters: ['units=1e99'] })).toThrow(`"units=1e99" is not a meter's limit`);
  });

  it('refuse a limit past 15 digits as too large, not as Infinity (400 nines are no number)', () => {
    const nines = '9'.repeat(400);
    expect(refusalOf({ windows: [`${nines}-per-1s`] })).toEqual({ field: 'window', typed: `${nines}-per-1s`, why: 'too_large' });
    expect(() => readLimitSpecs({ windows: ['1000000000000000-per-1s'] })).toThrow(`"1000000000000000-per-1s": too large: a window's limit is at most 999999999999999`);
    expect(refusalOf({ meters: [`units=${nines}`] })).toEqual({ field: 'meter', typed: `units=${nines}`, meter: 'units', value: nines, why: 'too_large' });
    expect(() => readLimitSpecs({ meters: ['units=1000000000000000'] })).toThrow(`"units=1000000000000000": too large: a meter's limit is at most 999999999999999`);
    // The most is a limit.
    expect(readLimitSpecs({ windows: ['999999999999999-per-1s'], meters: ['units=999999999999999'] })).toEqual({
      rateLimits: [{ limit: 999_999_999_999_999, window: '1s', scope: 'key' }],
      meters: { units: 999_999_999_999_999 },
    });
  });

  it("write a window back in the same words, and find where an operation's refusal of limits points", () => {
    expect(windowSpec({ limit: 5000, window: '1h', scope: 'account' })).toBe('5000-per-1h-per-account');
    expect(windowSpec({ limit: 25, window: '1s', scope: 'key' })).toBe('25-per-1s');
    expect(limitsRefusalPlace(new WindowShapeError('limits.rateLimits', 1, '.limit', 'Too small'))).toEqual({ at: { window: 1 }, why: 'Too small' });
    // A meter's limit is worded by each caller from its reason.
    expect(limitsRefusalPlace(new MeterLimitError('units', { reason: 'not_a_limit', got: '-1' }))).toBeUndefined();
    expect(limitsRefusalPlace(new WindowsRefusal('limits.rateLimits', 'at most 20 windows'))).toEqual({ at: 'windows', why: 'at most 20 windows' });
    expect(limitsRefusalPlace(new OperationError('invalid', 'no such plan'))).toBeUndefined();
    // A key's windows are not an account's.
    expect(limitsRefusalPlace(new WindowShapeError('rateLimits', 1, '.limit', 'Too small'))).toBeUndefined();
  });

  it("reads where a refusal of limits points from its fields, not its message, whose words may change", () => {
    const reworded = <E extends Error>(error: E) => Object.assign(error, { message: 'worded another way' });
    expect(limitsRefusalPlace(reworded(new WindowShapeError('limits.rateLimits', 2, '.window', 'expected a duration')))).toEqual({ at: { window: 2 }, why: 'expected a duration' });
    expect(limitsRefusalPlace(reworded(new WindowsRefusal('limits.rateLimits', 'at most 20 windows')))).toEqual({ at: 'windows', why: 'at most 20 windows' });
    // Nor does a message that merely reads like one make a refusal of limits.
    expect(limitsRefusalPlace(new OperationError('invalid', 'limits.rateLimits[1].limit: Too small'))).toBeUndefined();
    expect(limitsRefusalPlace(new OperationError('invalid', 'limits.meters.units: too big'))).toBeUndefined();
  });
});

describe('keepWindowNames', () => {
  const before = [
    { name: 'burst', limit: 20, window: 1000, scope: 'key' as const },
    { name: 'daily', limit: 900, window: 86_400_000, scope: 'account' as const },
  ];

  it('names a window written with the length, scope and limit of a named one; not one changed in any of them', () => {
    const change = readLimitSpecs({ windows: ['20-per-1000ms', '900-per-1d', '21-per-1s', '900-per-24h-per-account'] });
    expect(keepWindowNames(change, before)).toEqual({
      rateLimits: [
        { name: 'burst', limit: 20, window: '1000ms', scope: 'key' },
        { limit: 900, window: '1d', scope: 'key' },
        { limit: 21, window: '1s', scope: 'key' },
        { name: 'daily', limit: 900, window: '24h', scope: 'account' },
      ],
    });
  });

  it('gives each name once, in order, where a list saved before repeated windows were refused has two alike', () => {
    const repeated = [{ name: 'a', limit: 5, window: 1000, scope: 'key' as const }, { limit: 5, window: 1000, scope: 'key' as const }, { name: 'c', limit: 5, window: 1000, scope: 'key' as const }];
    const change = { rateLimits: [{ limit: 5, window: '1s', scope: 'key' }, { limit: 5, window: '1s', scope: 'key' }, { limit: 5, window: '1s', scope: 'key' }] };
    expect(keepWindowNames(change, repeated).rateLimits).toEqual([{ limit: 5, window: '1s', scope: 'key', name: 'a' }, { limit: 5, window: '1s', scope: 'key' }, { limit: 5, window: '1s', scope: 'key', name: 'c' }]);
  });

  it('leaves a change without windows, plan or none, and an account on the plan’s windows as they are', () => {
    for (const change of [undefined, { meters: { units: 5 } }, { rateLimits: null }, { rateLimits: [] }]) expect(keepWindowNames(change, before)).toEqual(change);
    const change = readLimitSpecs({ windows: ['20-per-1s'] });
    expect(keepWindowNames(change, null)).toEqual(change);
  });
});
