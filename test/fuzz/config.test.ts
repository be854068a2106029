/**
 * Property-based fuzzing of the profile loader `keygate check` runs (parseConfigText on
 * the file's text, parseConfigObject on what YAML made of it), and of what `check` does
 * with a profile that loads (its route table, scope gaps, warnings, the dialect). Each
 * example profile is mutated at random: a field deleted, a value replaced by another type,
 * huge and NaN-like numbers, deep nesting, unknown and misspelt names. The loader either
 * loads the profile or throws the documented ConfigError, each problem naming the field
 * it is about; never a TypeError, a RangeError or another crash.
 *
 * A failure prints fast-check's seed and path: see fuzz-settings.ts to replay it.
 */
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify as stringifyYaml } from 'yaml';
import { rawProfile, REPO_DIR } from '../../examples/support/example.js';
import { parseConfigObject, parseConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/config-error.js';
import { createDialect } from '../../src/dialect/dialect.js';
import { describeScopeGap, describeWildcardRootGap, profileRouteTable, scopeGaps, wildcardRootGaps } from '../../src/routes/route-table.js';
import { describeWeakImportedKeys, weakImportedKeys } from '../../src/keys/format.js';
import { cookiesInClearWarning } from '../../src/dashboard/cookie-security.js';
import type { Config } from '../../src/config/schema.js';
import { fuzzSettings } from './fuzz-settings.js';

const PROFILES = ['ranktracker', 'ranksy', 'seranking-project', 'seranking-data', 'trakkr'];
const RUNS = 200;

type Path = (string | number)[];

/** Every place in a profile: each mapping's fields and each list's items, at any depth. */
function placesOf(value: unknown, at: Path = []): Path[] {
  if (value === null || typeof value !== 'object') return [];
  const entries: [string | number, unknown][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  return entries.flatMap(([k, v]) => [[...at, k], ...placesOf(v, [...at, k])]);
}

/** A value nested `depth` mappings or lists deep. */
function nested(depth: number, list: boolean, inner: unknown): unknown {
  let value = inner;
  for (let i = 0; i < depth; i++) value = list ? [value] : { x: value };
  return value;
}

/** What a place's value can be replaced by: another type, extremes, NaN-like text, deep nesting. */
const replacement = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(null, '', ' ', 0, -1, -0, 0.5, 1e308, -1e308, 2 ** 53 + 1, 2 ** 64, 1e15, 1e16, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 'NaN', '.nan', 'Infinity', '1e999', '-1', '0x10', '1_000', 'true', 'yes', 'null', '~', '__proto__', 'constructor', '{{x}}', '%', '\u0000', [], {}, [[]], { '': '' }),
  // Long runs of what patterns scan: a quadratic pattern takes seconds here (the '{' run did).
  fc.tuple(fc.integer({ min: 1_000, max: 50_000 }), fc.constantFrom('x', '{', '{{x', '}', ' ', '/', 'a:', '%', '1', '.')).map(([n, unit]) => unit.repeat(n)),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.tuple(fc.integer({ min: 10, max: 200 }), fc.boolean()).map(([depth, list]) => nested(depth, list, 1)),
);

type Mutation = { kind: 'delete'; at: number } | { kind: 'replace'; at: number; value: unknown } | { kind: 'add'; at: number; name: string; value: unknown } | { kind: 'rename'; at: number; name: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), value: replacement }),
  fc.record({ kind: fc.constant('add' as const), at: fc.nat(), name: fc.oneof(fc.constantFrom('__proto__', 'constructor', 'toString', 'limit', 'scope', 'method'), fc.string({ maxLength: 12 })), value: replacement }),
  fc.record({ kind: fc.constant('rename' as const), at: fc.nat(), name: fc.oneof(fc.constantFrom('__proto__', 'constructor', ''), fc.string({ maxLength: 12 })) }),
);

/** The profile with one mutation made, on a copy. */
function mutated(profile: unknown, m: Mutation): unknown {
  const copy = structuredClone(profile) as Record<string | number, unknown>;
  const places = placesOf(copy);
  const at = places[m.at % places.length] as Path;
  const parent = at.slice(0, -1).reduce<Record<string | number, unknown>>((node, key) => node[key] as Record<string | number, unknown>, copy);
  const last = at[at.length - 1] as string | number;
  switch (m.kind) {
    case 'delete':
      if (Array.isArray(parent)) parent.splice(last as number, 1);
      else delete parent[last];
      break;
    case 'replace':
      parent[last] = m.value;
      break;
    case 'add': {
      const target = parent[last];
      if (target !== null && typeof target === 'object' && !Array.isArray(target)) Object.defineProperty(target, m.name, { value: m.value, enumerable: true, writable: true, configurable: true });
      else if (Array.isArray(target)) target.push(m.value);
      else parent[last] = m.value;
      break;
    }
    case 'rename':
      if (!Array.isArray(parent)) {
        const value = parent[last];
        delete parent[last];
        Object.defineProperty(parent, m.name, { value, enumerable: true, writable: true, configurable: true });
      }
      break;
  }
  return copy;
}

/** What `keygate check` does with a profile that loads, besides loading it. */
function checkWarnings(config: Config): string[] {
  const table = profileRouteTable(config);
  const weak = weakImportedKeys(config.keys);
  createDialect(config.errors, config.auth.credentials);
  return [
    ...scopeGaps(table, config.routes).map(describeScopeGap),
    ...wildcardRootGaps(table, config.routes).map(describeWildcardRootGap),
    ...[cookiesInClearWarning(config.dashboard) ?? []].flat(),
    ...(weak ? [describeWeakImportedKeys(weak)] : []),
  ];
}

/** Loads or refuses as documented: a ConfigError whose every problem names its field. */
function loadsOrRefuses(load: () => Config, what: string): void {
  let config: Config;
  try {
    config = load();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw new Error(`${what}: not a ConfigError but ${String(error)}`, { cause: error });
    expect(error.problemsByField.length, what).toBeGreaterThan(0);
    for (const problem of error.problemsByField) {
      // A file YAML cannot read is named as a whole, with the line and column (docs/cli.md); any other problem names its field.
      if (problem.field === null && problem.message.startsWith('not valid YAML: ')) continue;
      expect(problem.field, `${what}: ${error.message.slice(0, 2_000)}`).toEqual(expect.any(String));
      expect(problem.message, what).not.toMatch(/\[object Object\]|undefined/);
    }
    return;
  }
  checkWarnings(config);
}

describe.each(PROFILES)('fuzzing the profile of examples/%s', (name) => {
  const profile = rawProfile(name);

  it('any mutation of the profile object: loads, or a ConfigError naming the field', () => {
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (mutations) => {
        const changed = mutations.reduce<unknown>((p, m) => mutated(p, m), profile);
        loadsOrRefuses(() => parseConfigObject(changed, `${name}.yaml`), JSON.stringify(mutations).slice(0, 500));
      }),
      fuzzSettings({ numRuns: RUNS }),
    );
  });

  it('the same mutations written as YAML and read as keygate check reads the file', () => {
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (mutations) => {
        const changed = mutations.reduce<unknown>((p, m) => mutated(p, m), profile);
        let text: string;
        try {
          text = stringifyYaml(changed, { aliasDuplicateObjects: false });
        } catch {
          // Nothing a user could have written (YAML has no way to write it).
          return;
        }
        loadsOrRefuses(() => parseConfigText(text, `${name}.yaml`), JSON.stringify(mutations).slice(0, 500));
      }),
      fuzzSettings({ numRuns: RUNS }),
    );
  });
});

describe('what fuzzing the profile found', () => {
  /**
   * Loads `text` as `keygate check` would, in a child process (dist/, as the CLI's tests
   * use) given at most `NO_ANSWER_S`: a loader that backtracks over a long value does
   * not answer in hours, and must not hold this test file with it. The work is a few
   * milliseconds; the limit is there only to end a hang.
   */
  const NO_ANSWER_S = 60;
  function checkInChild(text: string): { outcome: string; signal: NodeJS.Signals | null } {
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', CHECK_FROM_STDIN], { input: text, encoding: 'utf8', timeout: NO_ANSWER_S * 1_000, cwd: REPO_DIR });
    return { outcome: `${child.stdout}${child.stderr}`.trim(), signal: child.signal };
  }

  it("a reason's message of a megabyte of '{' is checked at once, not backtracked over for hours", () => {
    const profile = rawProfile('trakkr');
    const reasons = (profile.errors as { reasons: Record<string, unknown> }).reasons;
    for (const message of ['{'.repeat(1_000_000), `{{${' '.repeat(1_000_000)}`, `${'{{x'.repeat(300_000)}`]) {
      reasons.missing_key = { status: 401, message };
      const { outcome, signal } = checkInChild(stringifyYaml(profile));
      expect(signal, `no answer within ${NO_ANSWER_S} s`).toBeNull();
      expect(outcome).toBe('loaded');
    }
    // A placeholder is still one, spaces inside it allowed, and an unknown one named.
    reasons.missing_key = { status: 401, message: 'Missing {{ parameter }} and {{ scopes}}' };
    expect(checkInChild(stringifyYaml(profile)).outcome).toBe(
      'ConfigError: errors.reasons.missing_key.message: {{ parameter }} would be sent as written: nothing is filled in in this message | errors.reasons.missing_key.message: {{ scopes}} would be sent as written: nothing is filled in in this message',
    );
  });
});

/** The child's script: the profile's text on stdin, `loaded` or the ConfigError's problems on stdout. */
const CHECK_FROM_STDIN = `
import { parseConfigText } from './dist/config/load.js';
let text = '';
for await (const chunk of process.stdin) text += chunk;
try {
  parseConfigText(text);
  console.log('loaded');
} catch (error) {
  console.log(error.name === 'ConfigError' ? 'ConfigError: ' + error.problems.join(' | ') : String(error));
}
`;
