import { describe, expect, it } from 'vitest';
import { parseConfigText } from './load.js';
import { unusedFields } from './unused-fields.js';

describe('unusedFields', () => {
  it("names a per-record route's records under gateway: false: no answer is read, each settle of POST /v1/check gives the count", () => {
    const profile = [
      'gateway: false',
      'plans: {p: {meters: {rows: {limit: 500}, units: {limit: 9}}}}',
      'routes:',
      '  - {path: /v1/rows, cost: {meter: rows, perRecord: 1, records: {header: X-Record-Count}}}',
      '  - {path: /v1/units, cost: {meter: units, perRequest: 1}}',
      '  - {path: /v1/rows/export, cost: {meter: rows, perRecord: 2}}',
    ].join('\n');
    expect(unusedFields(parseConfigText(profile))).toEqual([
      {
        fields: ['routes[0].cost.records'],
        warning:
          'gateway: false runs no gateway, so routes[0].cost.records has no effect: a per-record cost is charged the records each settle gives (POST /v1/check/{id}/settle with "records"), not counted in an answer (it applies once the gateway is on again: remove it, or keep it for then)',
      },
    ]);
    // With the gateway on, the gateway counts them in the upstream's answers: nothing to say.
    expect(unusedFields(parseConfigText(profile.replace('gateway: false', 'upstream: {url: "http://127.0.0.1:4000"}').replace('  - {path: /v1/rows/export, cost: {meter: rows, perRecord: 2}}', '')))).toEqual([]);
  });

  it('names many routes\' records by runs of their indexes, in one line a reader takes in, and lists every field in fields', () => {
    const counted = (i: number) => `  - {path: /v1/rows/${i}, cost: {meter: rows, perRecord: 1, records: {header: X-Record-Count}}}`;
    const profile = ['gateway: false', 'plans: {p: {meters: {rows: {limit: 500}}}}', 'routes:', ...[0, 1, 2, 3].map(counted), '  - {path: /v1/flat, cost: {meter: rows, perRequest: 1}}', counted(5)].join('\n');
    const [found] = unusedFields(parseConfigText(profile));
    expect(found?.fields).toEqual(['routes[0].cost.records', 'routes[1].cost.records', 'routes[2].cost.records', 'routes[3].cost.records', 'routes[5].cost.records']);
    expect(found?.warning).toMatch(/^gateway: false runs no gateway, so cost\.records of routes 0–3 and 5 \(5 routes\) have no effect: /);
  });

  it('names auth.forwardCredential under gateway: false: POST /v1/check forwards nothing', () => {
    expect(unusedFields(parseConfigText('gateway: false\nauth: {forwardCredential: true}\n'))).toEqual([
      {
        fields: ['auth.forwardCredential'],
        warning: 'gateway: false runs no gateway, so auth.forwardCredential has no effect (it applies once the gateway is on again: remove it, or keep it for then)',
      },
    ]);
  });
});
