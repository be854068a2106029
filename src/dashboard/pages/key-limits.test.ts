import { describe, expect, it } from 'vitest';
import { keyWindowsOf, keyWindowsRefusal } from './key-limits.js';
import { OperationError } from '../../operations/errors.js';
import { PerAccountKeyWindowError, WindowShapeError, WindowsRefusal } from '../../limits/window-shape.js';

describe('keyWindowsRefusal', () => {
  it("words a refused window from the refusal's fields, quoted as typed, whatever the operation's message says", () => {
    const windows = keyWindowsOf('2-per-1s, 5-per-1m-per-account');
    const reworded = <E extends Error>(error: E) => Object.assign(error, { message: 'worded another way' });
    expect(keyWindowsRefusal(reworded(new PerAccountKeyWindowError(1)), windows)).toBe(
      "Rate limits: “5-per-1m-per-account”: a key’s own limits are per key: a limit shared by all of the account’s keys is the account’s own, which the API’s operator sets.",
    );
    expect(keyWindowsRefusal(reworded(new PerAccountKeyWindowError(1)), windows, 'set it on the account.')).toBe('Rate limits: “5-per-1m-per-account”: set it on the account.');
    expect(keyWindowsRefusal(reworded(new WindowShapeError('rateLimits', 0, '.limit', 'expected more than 0')), windows)).toBe('Rate limits: “2-per-1s”: expected more than 0.');
    expect(keyWindowsRefusal(reworded(new WindowsRefusal('rateLimits', 'at most 20 windows')), windows)).toBe('Rate limits: at most 20 windows.');
    // A refusal that merely reads like one is not the field's.
    expect(keyWindowsRefusal(new OperationError('invalid', 'rateLimits[0]: not a refusal of a window'), windows)).toBeUndefined();
  });
});
