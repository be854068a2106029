/**
 * docs/quick-reference.md stays true: each of its tables is compared with what keygate
 * itself answers. The profile's fields with the JSON Schema `keygate schema` prints, the
 * denial reasons with what each example profile's dialect renders, the CLI with the
 * commands and flags it parses, the admin API with the OpenAPI document a running keygate
 * serves (and the paths outside it, called), the metrics with those keygate exports, the
 * examples' built-in endpoints with their profiles, the environment variables with those
 * src/ reads. A row missing, one too many, or a wrong default or status fails here.
 */
import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configJsonSchema, loadConfigFile } from '../../src/config/load.js';
import { DENIAL_REASONS } from '../../src/denial/reasons.js';
import { createDialect, DEFAULT_RENDERINGS } from '../../src/dialect/dialect.js';
import { buildCli } from '../../src/cli/main.js';
import { createMetrics } from '../../src/metrics.js';
import { startKeygate, type TestKeygate } from '../support/keygate.js';
import { refusedUrl } from '../support/refused.js';
import { tempDir } from '../support/temp.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const PAGE_FILE = path.join(ROOT, 'docs/quick-reference.md');
const page = readFileSync(PAGE_FILE, 'utf8');

/** The cells of each row of the first table under `## heading` (header row and rule left out). */
function tableUnder(markdown: string, heading: string): string[][] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => line === `## ${heading}`);
  if (start < 0) throw new Error(`no "## ${heading}" section`);
  const rows: string[][] = [];
  let inTable = false;
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('## ')) break;
    if (line.startsWith('|')) {
      inTable = true;
      // A `|` inside a cell is written `\|`.
      rows.push(line.slice(1, line.endsWith('|') ? -1 : undefined).split(/(?<!\\)\|/).map((cell) => cell.trim().replaceAll('\\|', '|')));
    } else if (inTable) break;
  }
  return rows.slice(2);
}

/** The header row of that table. */
function headerUnder(markdown: string, heading: string): string[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => line === `## ${heading}`);
  const header = lines.slice(start + 1).find((line) => line.startsWith('|')) as string;
  return header.slice(1, -1).split('|').map((cell) => cell.trim());
}

/** What a cell holds between its first pair of backticks. */
function code(cell: string): string {
  const match = /`([^`]+)`/.exec(cell);
  if (!match) throw new Error(`no \`code\` in "${cell}"`);
  return match[1] as string;
}

const EXAMPLES = readdirSync(path.join(ROOT, 'examples')).filter((name) => existsSync(path.join(ROOT, 'examples', name, 'keygate.yaml')));

describe('docs/quick-reference.md: keygate.yaml', () => {
  type Schema = { type?: string; default?: unknown; required?: string[]; properties?: Record<string, Schema>; additionalProperties?: Schema | boolean; items?: Schema; anyOf?: Schema[]; oneOf?: Schema[]; pattern?: string };
  const schema = configJsonSchema() as Schema;
  const rows = tableUnder(page, 'keygate.yaml');
  const fields = rows.map((row) => code(row[0] as string));

  /** The schema of a field named as the page names it: `plans.<id>.meters.<meter>.kind`, `routes[].cost`. */
  function fieldSchema(field: string): Schema | undefined {
    let at: Schema | undefined = schema;
    for (const segment of field.split('.')) {
      const name = segment.replace(/\[\]$/, '');
      if (at === undefined) return undefined;
      at = name.startsWith('<') ? (typeof at.additionalProperties === 'object' ? at.additionalProperties : undefined) : at.properties?.[name];
      if (at && segment.endsWith('[]')) at = at.items;
    }
    return at;
  }

  it('has a row for every top-level field of the JSON Schema, and none it lacks', () => {
    const topLevel = fields.filter((field) => !field.includes('.') && !field.includes('['));
    expect(topLevel.toSorted()).toEqual(Object.keys(schema.properties ?? {}).toSorted());
  });

  it('names only fields the schema has', () => {
    expect(fields.filter((field) => fieldSchema(field) === undefined)).toEqual([]);
  });

  it("gives the schema's default wherever it has one (a section's {} aside), in `code` at the start of the cell", () => {
    const wrong = rows.flatMap((row) => {
      const field = code(row[0] as string);
      const declared = fieldSchema(field)?.default;
      const cell = row[2] as string;
      if (declared === undefined || (typeof declared === 'object' && declared !== null && !Array.isArray(declared) && Object.keys(declared).length === 0)) return [];
      const shown = /^`([^`]+)`/.exec(cell)?.[1];
      return shown !== undefined && JSON.stringify(parseYaml(shown)) === JSON.stringify(declared) ? [] : [`${field}: the schema's default is ${JSON.stringify(declared)}, the page says "${cell}"`];
    });
    expect(wrong).toEqual([]);
  });

  it('says "required" where the schema requires the field, and only there', () => {
    const wrong = rows.flatMap((row) => {
      const segments = code(row[0] as string).split('.');
      const name = (segments.pop() as string).replace(/\[\]$/, '');
      const parent = segments.length === 0 ? schema : fieldSchema(segments.join('.'));
      const required = parent?.required?.includes(name) ?? false;
      const says = (row[2] as string).startsWith('required');
      return required === says ? [] : [`${row[0]}: ${required ? 'required' : 'optional'} in the schema, the page says "${row[2]}"`];
    });
    expect(wrong).toEqual([]);
  });

  it("says boolean, integer and duration where the schema's type is", () => {
    const kindOf = (s: Schema): string | undefined => {
      if (s.type === 'boolean' || s.type === 'integer') return s.type;
      if (s.anyOf?.some((branch) => branch.pattern?.includes('ms|s|m|h|d'))) return 'duration';
      return undefined;
    };
    const wrong = rows.flatMap((row) => {
      const field = fieldSchema(code(row[0] as string));
      const kind = field === undefined ? undefined : kindOf(field);
      return kind === undefined || row[1] === kind ? [] : [`${row[0]}: ${kind}, the page says ${row[1]}`];
    });
    expect(wrong).toEqual([]);
  });
});

describe('docs/quick-reference.md: denial reasons', () => {
  const rows = tableUnder(page, 'Denial reasons');
  const header = headerUnder(page, 'Denial reasons');
  const exampleColumns = header.slice(3);

  it('lists every reason once, in the order of the table in docs/configuration.md', () => {
    const reasons = rows.map((row) => code(row[1] as string));
    expect(reasons.toSorted()).toEqual([...DENIAL_REASONS].toSorted());
    const configurationOrder = tableUnder(readFileSync(path.join(ROOT, 'docs/configuration.md'), 'utf8'), 'The denial reasons').map((row) => code(row[1] as string));
    expect(reasons).toEqual(configurationOrder);
  });

  it("gives each reason's default status and code", () => {
    expect(rows.map((row) => [code(row[1] as string), row[2]])).toEqual(rows.map((row) => {
      const reason = code(row[1] as string) as keyof typeof DEFAULT_RENDERINGS;
      return [reason, `${DEFAULT_RENDERINGS[reason].status} \`${DEFAULT_RENDERINGS[reason].code}\``];
    }));
  });

  it('has a column for each example profile', () => {
    expect(exampleColumns.toSorted()).toEqual(EXAMPLES.toSorted());
  });

  it("gives each example's status, and its code or message, as its profile renders them", () => {
    const wrong: string[] = [];
    exampleColumns.forEach((example, i) => {
      const { config } = loadConfigFile(path.join(ROOT, 'examples', example, 'keygate.yaml'));
      const dialect = createDialect(config.errors, config.auth.credentials);
      // These envelopes carry the message alone; the others show the code.
      const showsMessageOnly = ['message', 'error_description', 'error'].includes(config.errors.envelope);
      for (const row of rows) {
        const reason = code(row[1] as string) as keyof typeof DEFAULT_RENDERINGS;
        const cell = row[3 + i] as string;
        const rendering = dialect.rendering(reason);
        const match = /^(\d{3}) (?:`([^`]+)`|“([^”]*)”|\*default\*)$/.exec(cell);
        const message = match?.[3];
        const agrees =
          match !== null &&
          Number(match[1]) === rendering.status &&
          (showsMessageOnly
            ? match[2] === undefined &&
              (message === undefined
                ? rendering.message === DEFAULT_RENDERINGS[reason].message
                : message.endsWith('…')
                  ? rendering.message.startsWith(message.slice(0, -1)) && rendering.message !== message.slice(0, -1)
                  : rendering.message === message)
            : match[2] === rendering.code);
        if (!agrees) wrong.push(`${example} ${reason}: renders ${rendering.status} ${showsMessageOnly ? `“${rendering.message}”` : rendering.code}, the page says "${cell}"`);
      }
    });
    expect(wrong).toEqual([]);
  });
});

describe('docs/quick-reference.md: CLI', () => {
  const rows = tableUnder(page, 'CLI');

  /** Every command that runs (not a group), as `accounts show <id>`, with its own flags. */
  function commands(parent: Command, prefix: string[] = []): { name: string; flags: string[]; required: string[] }[] {
    return parent.commands.flatMap((command) => {
      const words = [...prefix, command.name()];
      if (command.commands.length > 0) return commands(command, words);
      const name = [...words, ...command.registeredArguments.map((argument) => `<${argument.name()}>`)].join(' ');
      return [{ name, flags: command.options.map((option) => option.long as string), required: command.options.filter((option) => option.mandatory).map((option) => option.long as string) }];
    });
  }
  const known = commands(buildCli());

  it('has a row for every command the CLI knows, and none it does not', () => {
    expect(rows.map((row) => code(row[0] as string)).toSorted()).toEqual(known.map((command) => command.name).toSorted());
  });

  it("names each command's flags, the required ones in bold", () => {
    const onPage = rows.map((row) => {
      const cell = row[1] as string;
      return {
        name: code(row[0] as string),
        flags: [...cell.matchAll(/`(--[a-z-]+)`/g)].map((m) => m[1] as string).toSorted(),
        required: [...cell.matchAll(/\*\*`(--[a-z-]+)`\*\*/g)].map((m) => m[1] as string).toSorted(),
      };
    });
    expect(onPage.toSorted((a, b) => a.name.localeCompare(b.name))).toEqual(
      known.map((command) => ({ ...command, flags: command.flags.toSorted(), required: command.required.toSorted() })).toSorted((a, b) => a.name.localeCompare(b.name)),
    );
  });
});

describe('docs/quick-reference.md: admin API, metrics', () => {
  const dir = tempDir('quick-reference');
  let kg: TestKeygate;
  beforeAll(async () => {
    kg = await startKeygate({ upstream: { url: await refusedUrl() } }, { dir });
  });
  afterAll(() => kg?.close());

  /** The paths the admin API serves outside its OpenAPI document. */
  const OUTSIDE_THE_DOCUMENT = ['GET /health', 'GET /health/ready', 'GET /openapi.json', 'GET /metrics'];

  it('has a row for every operation of the OpenAPI document the admin API serves, and the paths outside it', async () => {
    const doc = (await (await fetch(`${kg.adminUrl}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const operations = Object.entries(doc.paths).flatMap(([p, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${p}`));
    const rows = tableUnder(page, 'Admin API').map((row) => `${row[0]} ${code(row[1] as string)}`);
    expect(rows.toSorted()).toEqual([...operations, ...OUTSIDE_THE_DOCUMENT].toSorted());
  });

  it('the paths outside the document answer 200 (with the token)', async () => {
    const statuses = await Promise.all(
      OUTSIDE_THE_DOCUMENT.map(async (operation) => {
        const response = await kg.admin(operation.split(' ')[1] as string);
        await response.arrayBuffer();
        return [operation, response.status];
      }),
    );
    expect(statuses).toEqual(OUTSIDE_THE_DOCUMENT.map((operation) => [operation, 200]));
  });

  /** Every metric family of an exposition text, with its type and label names. */
  function families(text: string): Map<string, { type: string; labels: string[] }> {
    const found = new Map<string, { type: string; labels: Set<string> }>();
    for (const line of text.split('\n')) {
      const type = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (type) found.set(type[1] as string, { type: type[2] as string, labels: new Set() });
      const series = /^([a-z_]+?)(?:_bucket|_sum|_count)?\{(.*)\} /.exec(line);
      if (series) {
        const family = found.get(series[1] as string) ?? found.get(line.slice(0, line.indexOf('{')));
        for (const label of (series[2] as string).matchAll(/([a-z_]+)="/g)) if (label[1] !== 'le') family?.labels.add(label[1] as string);
      }
    }
    return new Map([...found].map(([name, { type, labels }]) => [name, { type, labels: [...labels].toSorted() }]));
  }

  it('has a row for every metric keygate exports (every optional one turned on), with its type and labels', async () => {
    const metrics = createMetrics({
      defaults: false,
      storeLookups: { found: 0, unknown: 0, failed: 0 },
      roundTrips: { count: 0, seconds: 0 },
      heldUnits: () => ({ inFlight: 0, undelivered: 0, unreleased: 0 }),
      blocksStarted: new Map([['100-per-1s', 0]]),
      addressBlocks: { started: 0 },
      profileDigest: () => '0123456789abcdef',
      keyCache: { knownKeys: 0, drops: { message: 0, resubscribed: 0, store_mark: 0, store_file: 0 } },
      spawnedUpstream: { down: () => undefined, restarts: () => 0 },
      logLinesDropped: () => 0,
    });
    // One of each so that every labelled series shows.
    metrics.request('forwarded', '', 0.01, 200);
    metrics.units('credits', 1);
    metrics.connectionDropped('gateway');
    metrics.backends({ store: 'ok', counters: 'ok' });
    const exported = families(await metrics.text());
    const rows = tableUnder(page, 'Metrics').map((row) => [code(row[0] as string), { type: row[1], labels: [...(row[2] as string).matchAll(/`([a-z_]+)`/g)].map((m) => m[1]).toSorted() }]);
    expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(exported));
  });

  it("a running keygate's /metrics shows nothing else but Node's process metrics", async () => {
    const text = await (await kg.admin('/metrics')).text();
    const listed = new Set(tableUnder(page, 'Metrics').map((row) => code(row[0] as string)));
    const others = [...families(text).keys()].filter((name) => !listed.has(name) && !/^keygate_(process|nodejs)_/.test(name));
    expect(others).toEqual([]);
    expect(page).toContain('`keygate_process_*` and `keygate_nodejs_*`');
  });
});

describe('docs/quick-reference.md: built-in endpoints, environment variables, links', () => {
  it("lists each example's built-in endpoints as its profile declares them", () => {
    const declared = EXAMPLES.flatMap((example) =>
      loadConfigFile(path.join(ROOT, 'examples', example, 'keygate.yaml')).config.builtins.map((builtin) => [example, builtin.method, builtin.path, builtin.allowWhenApiDisabled ? 'yes' : 'no']),
    );
    const rows = tableUnder(page, 'Built-in endpoints').map((row) => [row[0], row[1], code(row[2] as string), row[3]]);
    expect(rows.toSorted()).toEqual(declared.toSorted());
  });

  it('lists every environment variable src/ reads, and no other', () => {
    const files = (readdirSync(path.join(ROOT, 'src'), { recursive: true }) as string[]).filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'));
    const read = new Set<string>();
    for (const file of files) {
      for (const m of readFileSync(path.join(ROOT, 'src', file), 'utf8').matchAll(/\benv\.([A-Z][A-Z0-9_]*)\b/g)) read.add(m[1] as string);
    }
    // The variables the profile names by default (admin.tokenEnv, admin.readTokenEnv, pepperEnv).
    const schema = configJsonSchema() as { properties: Record<string, { default?: unknown; properties?: Record<string, { default?: unknown }> }> };
    for (const named of [schema.properties.pepperEnv?.default, schema.properties.admin?.properties?.tokenEnv?.default, schema.properties.admin?.properties?.readTokenEnv?.default]) read.add(named as string);
    const rows = tableUnder(page, 'Environment variables').map((row) => code(row[0] as string));
    expect(rows.toSorted()).toEqual([...read].toSorted());
  });

  /** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
  const anchor = (heading: string) => heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replaceAll(' ', '-');
  function anchorsOf(file: string): Set<string> {
    const anchors = new Set<string>();
    let fenced = false;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (line.startsWith('```')) fenced = !fenced;
      const heading = /^#{1,6} (.*)$/.exec(line);
      if (heading && !fenced) anchors.add(anchor(heading[1] as string));
    }
    return anchors;
  }

  it('links only to files and headings that exist, as do the README, every page of docs/, the examples\' READMEs and bench/README.md', () => {
    const examples = path.join(ROOT, 'examples');
    const exampleReadmes = readdirSync(examples, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => path.join(examples, entry.name, 'README.md')).filter((file) => existsSync(file));
    const pages = [PAGE_FILE, path.join(ROOT, 'README.md'), ...readdirSync(path.join(ROOT, 'docs')).filter((file) => file.endsWith('.md')).map((file) => path.join(ROOT, 'docs', file)), path.join(examples, 'README.md'), ...exampleReadmes, path.join(ROOT, 'bench/README.md')];
    const broken = [...new Set(pages)].flatMap((from) =>
      [...readFileSync(from, 'utf8').matchAll(/\]\(([^)\s]+)\)/g)].flatMap((m) => {
        const target = m[1] as string;
        if (/^https?:/.test(target)) return [];
        const [file, hash] = target.split('#') as [string, string | undefined];
        const resolved = file === '' ? from : path.resolve(path.dirname(from), file);
        const named = `${path.relative(ROOT, from)}: ${target}`;
        if (!existsSync(resolved)) return [named];
        if (hash === undefined || statSync(resolved).isDirectory()) return [];
        return anchorsOf(resolved).has(hash) ? [] : [named];
      }),
    );
    expect(broken).toEqual([]);
  });

  it('is linked from the README and from every other page of docs/', () => {
    expect(readFileSync(path.join(ROOT, 'README.md'), 'utf8').includes('](docs/quick-reference.md)')).toBe(true);
    const pages = readdirSync(path.join(ROOT, 'docs')).filter((file) => file.endsWith('.md') && file !== 'quick-reference.md');
    expect(pages.filter((file) => !readFileSync(path.join(ROOT, 'docs', file), 'utf8').split('\n').slice(0, 4).join('\n').includes('](quick-reference.md)'))).toEqual([]);
  });
});
