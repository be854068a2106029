import { describe, expect, it } from 'vitest';
import type { Reservation } from '../counters.js';
import { PerProcessFallback } from './fallback.js';

const REF = { accountId: 'acc_1', meter: 'credits', periodStart: '2026-12-01' };

describe('per-process fallback: units held for Redis', () => {
  it('counts reservations in flight until settled, then as undelivered; back to exactly 0 with fractional costs', () => {
    const fallback = new PerProcessFallback(() => 1_000);
    const reservations = [0.1, 0.2, 0.3].map((amount) => {
      const admission = fallback.admit({ now: 1_000, windows: [], charge: { ...REF, amount, limit: 100, overage: false } });
      if (!admission.ok || !admission.reservation) throw new Error('expected a reservation');
      return admission.reservation as Reservation;
    });
    expect(fallback.held()).toEqual({ inFlight: 0.1 + 0.2 + 0.3, undelivered: 0, unreleased: 0 });
    for (const reservation of reservations) fallback.settle(reservation, 0);
    expect(fallback.held()).toEqual({ inFlight: 0, undelivered: 0, unreleased: 0 });

    fallback.commitLater(REF, 7);
    fallback.commitLater({ ...REF, meter: 'rows' }, -3);
    fallback.releaseLater(REF, 'batch-1', 25);
    expect(fallback.held()).toEqual({ inFlight: 0, undelivered: 10, unreleased: 25 });
    fallback.takePending();
    fallback.takeReleases();
    expect(fallback.held()).toEqual({ inFlight: 0, undelivered: 0, unreleased: 0 });
  });
});
