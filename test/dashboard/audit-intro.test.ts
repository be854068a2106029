/**
 * The audit page's intro says what the log holds, and stays true: it names the kinds of
 * things events are about (keys, accounts, members, client-address blocks), and every
 * action the code records is of one of those kinds, with words for its What column.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ACTIONS, AUDITED_KINDS } from '../../src/dashboard/pages/audit.js';
import { chromiumAvailable, expectHeading, OPERATOR, signedInPage, textOf, useDashboard } from './support.js';

const SRC = path.resolve(import.meta.dirname, '../../src');

/** Every action an `audit(…)` call in src/ records: the quoted `kind.verb` literals of its arguments before the target. */
function actionsRecorded(): Set<string> {
  const found = new Set<string>();
  for (const file of readdirSync(SRC, { recursive: true, encoding: 'utf8' })) {
    if (!file.endsWith('.ts') || file.endsWith('.test.ts')) continue;
    const source = readFileSync(path.join(SRC, file), 'utf8');
    for (const call of source.matchAll(/\baudit\(/g)) {
      const window = source.slice(call.index, call.index + 300);
      const end = window.indexOf("', {");
      if (end === -1) continue;
      for (const literal of window.slice(0, end + 1).matchAll(/'([a-z_]+\.[a-z_]+)'/g)) found.add(literal[1] as string);
    }
  }
  return found;
}

describe('audit log: the kinds of events', () => {
  it('has every action recorded in src/ of a kind the intro names, and in words', () => {
    const recorded = actionsRecorded();
    // The scan finds the calls (one per action at least: key.created … address.unblocked).
    expect(recorded.size).toBeGreaterThanOrEqual(18);
    for (const action of recorded) {
      expect(Object.keys(AUDITED_KINDS), `the kind of ${action}`).toContain(action.split('.')[0]);
      expect(Object.keys(ACTIONS), `the words for ${action}`).toContain(action);
    }
  });
});

describe.skipIf(!chromiumAvailable())('dashboard: the audit page’s intro', () => {
  const fixture = useDashboard('keygate-dashboard-audit-intro');
  let operator: Page;

  beforeAll(async () => {
    operator = await signedInPage(fixture, fixture.browser, OPERATOR, null, { role: 'operator' });
  });

  it('says what the log holds by kind, not a few of its actions', async () => {
    await operator.goto('/audit');
    await expectHeading(operator, 'Audit log');
    expect(await textOf(operator.locator('main > p').first())).toBe('What happened to keys, accounts, members and client-address blocks: who did it, from where and when — newest first, 200 to a page.');
    // The operator's own joining is there, an event the intro did not name before.
    expect(await textOf(operator.getByRole('cell', { name: 'Joined (set a password)' }))).toBe('Joined (set a password)');
  });
});
