/**
 * Reads keygate.yaml, validates it against the one schema and turns every problem into
 * a message that names the field: `keygate.yaml: plans.free.rateLimits[0].window: ...`.
 */
import { isUtf8 } from 'node:buffer';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isPair, isScalar, isSeq, parseDocument, visit, YAMLError, type Document } from 'yaml';
import { z } from 'zod';
import { configSchema, type Config } from './schema.js';
import { closestName, didYouMean } from './closest-name.js';
import { readAny, readsOf } from './sound-fields.js';
import { WINDOW_SPEC } from '../limits/overrides.js';

import { ConfigError, UNREADABLE, type ConfigProblem } from './config-error.js';

export { ConfigError, UNREADABLE, type ConfigProblem };

/**
 * Where a `scheme://user:` begins, for masking its password. Tried only where a run of
 * scheme characters begins (its leading digits or signs, no scheme's, are kept as they
 * are): tried from each character of a long run of letters, each try ran to the run's end
 * (a 120 KB value took 17 s to quote).
 */
const URL_USER = /(?<![a-z0-9+.-])[0-9+.-]*[a-z][a-z0-9+.-]*:\/\/[^:/@\s"]*:/gi;

/**
 * The passwords of `scheme://user:password@` masked. A password runs to the last `@`
 * before a space or an unescaped quote (in a value quoted back, a `"` of the password is
 * `\"`), so one with `/`, `?`, `#` or `"` in it (unescaped, as generated passwords often
 * are) is masked whole; a later `@` in the path or query is masked with it. Each stretch
 * of the text is read once, however many `x://y:` it holds.
 */
function withoutUrlPasswords(text: string): string {
  let out = '';
  let copied = 0;
  URL_USER.lastIndex = 0;
  for (let match = URL_USER.exec(text); match !== null; match = URL_USER.exec(text)) {
    const from = match.index + match[0].length;
    // To the next space or unescaped quote, noting the last `@` on the way.
    let at = -1;
    let i = from;
    for (; i < text.length; i++) {
      const c = text[i] as string;
      if (c === '\\') i++;
      else if (c === '"' || /\s/.test(c)) break;
      else if (c === '@') at = i;
    }
    if (at !== -1) {
      out += `${text.slice(copied, from)}***`;
      copied = at;
    }
    URL_USER.lastIndex = Math.max(i, from);
  }
  return out + text.slice(copied);
}

/** `password=...` in a query string. */
const PASSWORD_PARAM = /([?&]password=)[^&\s]*/gi;

/** Text about the profile with the passwords of URLs in it masked: it goes to terminals, logs and CI. */
function withoutPasswords(text: string): string {
  return withoutUrlPasswords(text).replace(PASSWORD_PARAM, '$1***');
}

/** A loaded profile plus the directory its relative paths are resolved against. */
export interface LoadedConfig {
  config: Config;
  file: string;
  dir: string;
}

export function loadConfigFile(file: string): LoadedConfig {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const hint = code === 'ENOENT' ? ` (no file at ${path.resolve(file)})` : code === 'EISDIR' ? ` (${path.resolve(file)} is a directory: name the profile file in it)` : code === 'EACCES' ? ` (no permission to read ${path.resolve(file)})` : '';
    throw new ConfigError(file, [`${UNREADABLE}: ${code ?? String(error)}${hint}`]);
  }
  const notUtf8 = encodingProblem(bytes);
  if (notUtf8 !== undefined) throw new ConfigError(file, [notUtf8]);
  return { config: parseConfigText(bytes.toString('utf8'), file), file, dir: path.dirname(path.resolve(file)) };
}

/**
 * Why a profile's bytes are not UTF-8 text, or undefined when they are (a byte-order mark
 * is allowed). Read as UTF-8 regardless, a Latin-1 "é" in a denial's message would be
 * served as "\ufffd", and a UTF-16 file would be refused as a string of NULs.
 */
function encodingProblem(bytes: Buffer): string | undefined {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) return 'the file is UTF-16: save it as UTF-8';
  if (isUtf8(bytes)) return undefined;
  // The first line holding a byte that is no part of UTF-8 text.
  let line = 1;
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i < bytes.length && bytes[i] !== 0x0a) continue;
    if (!isUtf8(bytes.subarray(start, i))) break;
    line++;
    start = i + 1;
  }
  return `the file is not UTF-8: line ${line} has bytes that are not (a file saved as Latin-1 or Windows-1252?): save it as UTF-8`;
}

export function parseConfigText(text: string, file = 'keygate.yaml'): Config {
  let raw: unknown;
  let twice: GivenTwice[] | undefined;
  try {
    const doc = parseDocument(text, { prettyErrors: true });
    // A name given twice in one mapping (a plan, a route's field) is named with its path,
    // as a schema problem is, rather than by YAML's "Map keys must be unique".
    twice = namesGivenTwice(doc, text);
    // A warning (a tag no YAML schema here knows, `!!js/function`) would be a value read
    // as something else than written: refused as an error is.
    const [problem] = [...doc.errors, ...doc.warnings];
    if (problem && !twice) throw problem.code === 'MULTIPLE_DOCS' ? new ConfigError(file, [moreThanOneDocument(text, problem)]) : problem;
    // With a name given twice, YAML keeps the second: checked as any other, but for what
    // the two could make differ (checkedProfile).
    raw = doc.toJS();
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const deep = nestedTooDeeply(error);
    if (deep !== undefined) throw new ConfigError(file, [deep]);
    // Aliases that copy aliases (a "billion laughs"): the yaml library's words are for its own callers.
    if (error instanceof ReferenceError && error.message.startsWith(EXCESSIVE_ALIASES)) throw new ConfigError(file, [TOO_MANY_ALIASES]);
    // The message, then the offending line with a caret under the place: all of it.
    // (Passwords in URLs on that line masked: the message goes to terminals and CI logs.)
    const detail =
      error instanceof YAMLError
        ? error.message
            .trimEnd()
            .split('\n')
            .filter((line) => line.trim() !== '')
            .map(withoutPasswords)
            .join('\n      ')
        : String(error);
    // A value that ends in ":" (a counters URL's `?prefix=kg:`) reads to YAML as a key:
    // the usual cause of this message, which does not say so.
    const hint = error instanceof YAMLError && /:\/\/\S*:[\s}\],]*$/.test(lineOf(text, error)) ? '\n      (a value that ends in ":", such as a URL with ?prefix=kg:, must be quoted: "redis://…?prefix=kg:")' : '';
    throw new ConfigError(file, [`not valid YAML: ${detail}${hint}`]);
  }
  return checkedProfile(raw ?? {}, file, twice ?? []);
}

/**
 * A file of several YAML documents, said in a profile's terms: YAML's own message tells
 * its library's callers to call another function.
 */
function moreThanOneDocument(text: string, error: YAMLError): string {
  const line = error.linePos?.[0].line;
  // The parser points at the first document; the "---" that starts the second is the line to remove.
  const lines = text.split('\n');
  const separator = lines.findIndex((l, i) => i > 0 && /^---(\s|$)/.test(l));
  const at = separator >= 0 ? ` at line ${separator + 1}` : line === undefined ? '' : ` near line ${line}`;
  return `not valid YAML: the file holds more than one YAML document (a "---" line${at} starts another): a profile is one document; remove the "---" line and merge the two`;
}

/** The start of the yaml library's refusal of aliases that would expand too far (its maxAliasCount, 100). */
const EXCESSIVE_ALIASES = 'Excessive alias count';
const TOO_MANY_ALIASES =
  'not valid YAML: its aliases (*name) expand, one inside another, into far more than the file holds (a "billion laughs"): write the values out';

/**
 * What to say of a YAML text nested deeper than the parser's stack goes (about 800 flow
 * levels, `[[[[…`, or as many indented ones): the yaml library catches its own stack
 * overflow as a RESOURCE_EXHAUSTION error, and "Maximum call stack size exceeded" with a
 * line of brackets under it said nothing of the cause. The line is where the stack ran
 * out, somewhere inside the nesting. Undefined for any other error.
 */
function nestedTooDeeply(error: unknown): string | undefined {
  const overflow = error instanceof YAMLError ? error.code === 'RESOURCE_EXHAUSTION' : error instanceof RangeError && /call stack/i.test(error.message);
  if (!overflow) return undefined;
  const line = error instanceof YAMLError ? error.linePos?.[0].line : undefined;
  return `nested too deeply${line === undefined ? '' : ` at line ${line}`}: lists or mappings hundreds deep, one inside another (no field of a profile goes more than ${MAX_NESTING} deep): write it flatter`;
}

/** A name given twice in one mapping: where (its path), and the problem that says so. */
interface GivenTwice {
  at: PropertyKey[];
  problem: ConfigProblem;
}

/**
 * When every error of `doc` is a name given twice in one mapping (and nothing else is
 * wrong with the YAML), one problem for each, naming the field and both places:
 * `plans.scale: given twice, at lines 3 and 5 (…)`; otherwise undefined.
 */
function namesGivenTwice(doc: Document, text: string): GivenTwice[] | undefined {
  if (doc.errors.length === 0 || doc.warnings.length > 0 || !doc.errors.every((error) => error.code === 'DUPLICATE_KEY')) return undefined;
  const at = new Set(doc.errors.map((error) => error.pos[0]));
  const problems: GivenTwice[] = [];
  visit(doc, {
    Pair(_, pair, ancestors) {
      if (!isScalar(pair.key) || !pair.key.range || !at.has(pair.key.range[0])) return;
      const key = pair.key;
      const offset = pair.key.range[0];
      const map = ancestors[ancestors.length - 1];
      const first = map && 'items' in map ? (map.items as unknown[]).find((other) => isPair(other) && isScalar(other.key) && other.key.value === key.value) : undefined;
      const firstAt = isPair(first) && isScalar(first.key) ? (first.key.range?.[0] ?? undefined) : undefined;
      const segments: PropertyKey[] = [];
      ancestors.forEach((node, i) => {
        if (isPair(node) && isScalar(node.key)) segments.push(String(node.key.value));
        else if (isSeq(node)) segments.push(node.items.indexOf(ancestors[i + 1] as never));
      });
      segments.push(String(key.value));
      const [line, column] = lineAndColumn(text, offset);
      let where = `at line ${line}`;
      if (firstAt !== undefined && firstAt !== offset) {
        const [firstLine, firstColumn] = lineAndColumn(text, firstAt);
        where = firstLine === line ? `at line ${line}, columns ${firstColumn} and ${column}` : `at lines ${firstLine} and ${line}`;
      }
      problems.push({ at: segments, problem: { field: formatPath(segments), message: `given twice, ${where} (a name appears once in a mapping): merge the two into one, or rename one` } });
    },
  });
  // Each error accounted for, or YAML's own words stand.
  return problems.length === at.size ? problems : undefined;
}

/** The 1-based line and column of an offset of `text`. */
function lineAndColumn(text: string, offset: number): [number, number] {
  const before = text.slice(0, offset);
  const lineStart = before.lastIndexOf('\n') + 1;
  return [before.split('\n').length, offset - lineStart + 1];
}

/** The line of `text` a YAML error points at ('' when it points nowhere). */
function lineOf(text: string, error: YAMLError): string {
  const line = error.linePos?.[0].line;
  return line === undefined ? '' : (text.split('\n')[line - 1] ?? '');
}

/** What messages call a profile written in code, given without a name: it is no file. */
const INLINE_PROFILE = 'the profile given to parseConfigObject';

/**
 * Validates a profile already read (or written in code). `file` names it in a `ConfigError`'s
 * messages: the file it was read from, else a name of the caller's choosing.
 */
export function parseConfigObject(raw: unknown, file = INLINE_PROFILE): Config {
  return checkedProfile(raw, file, []);
}

/**
 * A profile validated, with the names its file gives twice (`twice`): those are said first,
 * then every problem of the rest, but none that the field given twice could make (at it or
 * inside it, or found between sections reading it): which of its two values is meant is
 * not known.
 */
function checkedProfile(raw: unknown, file: string, twice: readonly GivenTwice[]): Config {
  const said = twice.map(({ problem }) => problem);
  const odd = oddlyNestedField(raw, [], []);
  if (odd?.why === 'circular') throw new ConfigError(file, [...said, { field: formatPath(odd.at), message: 'refers to a mapping or list it is itself inside of (a YAML alias, *name, of an &name anchor above it): write the value out instead' }]);
  if (odd?.why === 'deep') throw new ConfigError(file, [...said, { field: formatPath(odd.at), message: `nested more than ${MAX_NESTING} mappings or lists deep (no field of a profile is): write it flatter` }]);
  const reserved = fieldsNamedProto(raw, []);
  const variables = variablesWritten(raw, []);
  const result = configSchema.safeParse(raw, { reportInput: true });
  if (result.success && reserved.length === 0 && twice.length === 0 && variables.length === 0) return result.data;
  const givenTwice = twice.map(({ at }) => at);
  const within = (path: readonly PropertyKey[]) => (at: readonly PropertyKey[]) => at.length <= path.length && at.every((segment, i) => String(segment) === String(path[i]));
  const issues = result.success
    ? []
    : result.error.issues.filter((issue) => {
        // What the schema says about a mapping that held a __proto__ field (it lost it: "at
        // least one plan", say) is left to the line about that field.
        if (reserved.some((where) => startsWith(where, issue.path))) return false;
        if (givenTwice.some(within(issue.path))) return false;
        const reads = readsOf(issue);
        return reads === undefined || !readAny(reads, givenTwice);
      });
  // A variable in a value refused anyway is said by its refusal (NO_VARIABLES), and one in an unknown field by that field's.
  const saidOtherwise = (at: PropertyKey[]) =>
    givenTwice.some(within(at)) ||
    issues.some((issue) => issue.path.length === at.length ? within(issue.path)(at) : issue.code === 'unrecognized_keys' && within(at)(issue.path) && issue.keys.includes(String(at[issue.path.length])));
  const unreplaced = variables.filter(({ at }) => !saidOtherwise(at)).map(({ at, name }) => ({ field: formatPath(at), message: variableMessage(name) }));
  throw new ConfigError(file, [...said, ...reserved.map((where) => ({ field: formatPath(where), message: '"__proto__" cannot be a name here (JavaScript reserves it); choose another' })), ...issues.map((issue) => describeIssue(issue, raw)), ...unreplaced]);
}

/**
 * Where a value the schema would take reads a variable as a shell would (`${NAME}`, or
 * `$NAME` as all of it), which keygate would use as written: its operator expects it
 * replaced. Not in the text an API sends its clients (`errors.reasons.*.message`,
 * `errors.template`, a built-in's `body`), where `${` may be the API's own words, as in
 * "send Authorization: Bearer ${API_KEY}", nor in `upstream.spawn`'s arguments, which a
 * shell it starts reads (`[sh, -c, "node up.js --port ${PORT}"]`).
 */
function variablesWritten(value: unknown, at: PropertyKey[]): { at: PropertyKey[]; name: string }[] {
  if (isTakenAsWritten(at)) return [];
  if (typeof value === 'string') {
    const found = VARIABLE_REFERENCE.exec(value);
    if (!found) return [];
    // A default or message (`${PG_PASSWORD:-hunter2}`) may be the secret itself: its operator alone is said.
    const [whole, braced, operator] = found;
    return [{ at, name: braced === undefined ? whole : `\${${braced}${operator === undefined ? '' : `${operator}…`}}` }];
  }
  if (value === null || typeof value !== 'object') return [];
  const entries = Array.isArray(value) ? [...value.entries()] : Object.entries(value);
  return entries.flatMap(([key, item]) => variablesWritten(item, [...at, key]));
}

/** Fields whose `${` is meant as written (see variablesWritten). */
function isTakenAsWritten(at: readonly PropertyKey[]): boolean {
  if (at[0] === 'builtins') return at.length === 3 && at[2] === 'body';
  if (at[0] === 'upstream') return at[1] === 'spawn';
  return at[0] === 'errors' && (at[1] === 'template' || (at[1] === 'reasons' && at.length === 4 && at[3] === 'message'));
}

/** Said of a variable (`name`, as written: never the rest of the value, which may hold a password) that the schema would take. */
function variableMessage(name: string): string {
  return `holds ${name}, which keygate would use as written ${NO_VARIABLES}`;
}

/**
 * How deep a profile's mappings and lists may nest. Its own fields go 6 deep (a built-in's
 * body, a template, more where its author writes it so); thousands deep, the checks that
 * follow (and zod's) ran out of stack, a RangeError instead of a field named, and took
 * seconds to get there.
 */
const MAX_NESTING = 64;

/**
 * The first field whose value is one of the mappings or lists it sits in (YAML builds one
 * from an alias inside its own anchor: `x: &a { y: *a }`), which no reading of the
 * profile would ever finish (`circular`), or that sits more than MAX_NESTING mappings or
 * lists deep (`deep`); null if there is none. Stops at that depth: its own recursion is
 * bounded too.
 */
function oddlyNestedField(value: unknown, at: PropertyKey[], inside: object[]): { why: 'circular' | 'deep'; at: PropertyKey[] } | null {
  if (value === null || typeof value !== 'object') return null;
  if (inside.includes(value)) return { why: 'circular', at };
  if (inside.length >= MAX_NESTING) return { why: 'deep', at };
  const within = [...inside, value];
  for (const [key, item] of Array.isArray(value) ? value.entries() : Object.entries(value)) {
    const found = oddlyNestedField(item, [...at, key], within);
    if (found) return found;
  }
  return null;
}

/**
 * Where the profile has a field named `__proto__`: YAML keeps it as a name, but any object
 * built from it would take it as its prototype, so a plan (or meter, or route) of that
 * name would vanish without a word, or leave "at least one plan" as the only clue. A
 * built-in endpoint's body is a template copied key by key, where it is kept: not there.
 */
function fieldsNamedProto(value: unknown, at: PropertyKey[]): PropertyKey[][] {
  if (value === null || typeof value !== 'object') return [];
  if (at.length === 3 && at[0] === 'builtins' && at[2] === 'body') return [];
  const found: PropertyKey[][] = [];
  if (Array.isArray(value)) value.forEach((item, i) => found.push(...fieldsNamedProto(item, [...at, i])));
  else {
    for (const key of Object.keys(value)) {
      if (key === '__proto__') found.push([...at, key]);
      else found.push(...fieldsNamedProto((value as Record<string, unknown>)[key], [...at, key]));
    }
  }
  return found;
}

function startsWith(path: readonly PropertyKey[], prefix: readonly PropertyKey[]): boolean {
  return prefix.length < path.length && prefix.every((segment, i) => segment === path[i]);
}

function describeIssue(issue: z.core.$ZodIssue, raw: unknown): ConfigProblem {
  const variable = typeof issue.input === 'string' && VARIABLE_REFERENCE.test(issue.input) ? ` ${NO_VARIABLES}` : '';
  return { field: formatPath(issue.path), message: `${describeProblem(issue)}${variable}${notIndentedHint(issue, raw)}` };
}

/**
 * A field written one indentation level too far left, below a section left empty
 * (`upstream:`, then `url: …` at the start of the next line): YAML reads the section as
 * empty and the field as its sibling, and the problems say only that. Said beside them:
 * ` (upstream, above it, is empty and has a field "url": indent url under upstream)`.
 * The field itself where the issue is about it (`plans.rateLimits: expected a mapping`),
 * or the unknown fields it names (`(top level): unknown field "url"`).
 */
function notIndentedHint(issue: z.core.$ZodIssue, raw: unknown): string {
  const last = issue.path.at(-1);
  const candidates: [readonly PropertyKey[], string][] = typeof last === 'string' ? [[issue.path.slice(0, -1), last]] : [];
  if (issue.code === 'unrecognized_keys') candidates.push(...issue.keys.map((key): [readonly PropertyKey[], string] => [issue.path, key]));
  // Fields by the section they belong under: `url` and `timeout` below an empty `upstream:` are said once.
  const bySection = new Map<string, { section: string; fields: string[] }>();
  for (const [parent, field] of candidates) {
    const section = emptySectionAbove(raw, parent, field);
    if (section === undefined) continue;
    const where = formatPath([...parent, section]);
    const entry = bySection.get(where) ?? { section, fields: [] };
    entry.fields.push(field);
    bySection.set(where, entry);
  }
  const hints = [...bySection].map(([where, { section, fields }]) =>
    fields.length === 1
      ? `${where}, above it, is empty and has a field "${fields[0]}": indent ${fields[0]} under ${section}`
      : `${where}, above them, is empty and has fields ${fields.map((f) => `"${f}"`).join(', ')}: indent them under ${section}`,
  );
  return hints.length > 0 ? ` (${hints.join('; ')})` : '';
}

/** The nearest field before `field` in the mapping at `parent` that is empty (null) and would take `field`, where `field` belongs not there. */
function emptySectionAbove(raw: unknown, parent: readonly PropertyKey[], field: string): string | undefined {
  const mapping = parent.reduce<unknown>((value, segment) => (value !== null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[segment] : undefined), raw);
  if (mapping === null || typeof mapping !== 'object' || Array.isArray(mapping)) return undefined;
  if (fieldsAt(parent).includes(field)) return undefined;
  const names = Object.keys(mapping);
  for (let i = names.indexOf(field) - 1; i >= 0; i--) {
    const name = names[i] as string;
    if ((mapping as Record<string, unknown>)[name] === null && fieldsAt([...parent, name]).includes(field)) return name;
  }
  return undefined;
}

/**
 * `${NAME}` anywhere in a value (also with a default or message, `${NAME:-dev}`, `${NAME:?}`,
 * as shells and Docker Compose write them), or `$NAME` as all of it: a shell's or Docker
 * Compose's way to read a variable. Groups: the braced name, then its operator.
 */
const VARIABLE_REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-=?+])[^}]*)?\}|^\$[A-Za-z_][A-Za-z0-9_]*$/;
/** Said after a value refused that reads a variable as a shell would: keygate reads the file as written. */
const NO_VARIABLES =
  '(keygate does not replace ${NAME} or $NAME with an environment variable: write the value itself, or fill the variables in before keygate reads the file, as envsubst < keygate.template.yaml > keygate.yaml does; only admin.tokenEnv, admin.readTokenEnv and pepperEnv name variables, whose values keygate reads)';

/**
 * One schema problem in words (without its path): also the admin API's, whose bodies have
 * their own fields (`knownFields`, for "did you mean"; by default the profile's).
 */
export function describeProblem(issue: z.core.$ZodIssue, knownFields: (path: readonly PropertyKey[]) => string[] = fieldsAt, format: ProblemFormat = YAML_FORMAT): string {
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = knownFields(issue.path);
      const named = issue.keys.map((key) => `"${key}"${didYouMean(key, known)}`);
      const member = format.member ?? 'field';
      // No typo near any of them (`admin: {token: …}`, `prefix: {production: …}`): the few that
      // belong there, so the one meant can be found (`tokenEnv`, `live`) without the docs.
      const near = issue.keys.some((key) => closestName(key, known) !== undefined);
      const here = !near && known.length > 0 && known.length <= MOST_FIELDS_LISTED ? ` (the ${member}s here: ${known.join(', ')})` : '';
      return `unknown ${member}${issue.keys.length > 1 ? 's' : ''} ${named.join(', ')}${here}`;
    }
    case 'invalid_type':
      if (issue.input === undefined) {
        // A field of any type (a built-in's body) says what it holds in its own message.
        if (issue.expected === 'nonoptional') return isZodDefault(issue.message) ? 'required' : issue.message;
        return `required (expected ${format.expected(issue.expected)})`;
      }
      // `5-per-1s`, as the CLI, plans list and the RateLimit headers write a window: the profile's form for it.
      if (format.echo && issue.expected === 'object' && typeof issue.input === 'string') {
        const window = WINDOW_SPEC.exec(issue.input.trim());
        if (window) return `expected a mapping, got string ${quoted(issue.input)} (a window in the profile is written { limit: ${window[1]}, window: ${window[2]}${window[3] === 'account' ? ', scope: account' : ''} })`;
      }
      // `free:` with nothing after it, for a plan with every default: YAML reads that as null.
      if (issue.input === null && format === YAML_FORMAT) {
        return EMPTY_WRITTEN[issue.expected] !== undefined
          ? `expected ${format.expected(issue.expected)}, got an empty value (an empty one is written ${emptyWritten(issue.path, issue.expected)})`
          : // `port:` with nothing after it: YAML's null, which the file does not show.
            `expected ${format.expected(issue.expected)}, got an empty value (nothing after its ${typeof issue.path.at(-1) === 'number' ? '"-"' : 'colon'})`;
      }
      // YAML's .inf and .nan, or a number too big for a double (1e400): the schema's words where it has its own ("too large: …").
      if (typeof issue.input === 'number' && !Number.isFinite(issue.input)) return isZodDefault(issue.message) ? `expected a finite number, got ${String(issue.input)}` : issue.message;
      return `expected ${format.expected(issue.expected)}, got ${format.got(issue.input)}`;
    case 'too_big':
    case 'too_small':
      if (!isZodDefault(issue.message)) return issue.message;
      return format.echo ? `${bound(issue)}, got ${quoted(issue.input)}` : bound(issue);
    case 'invalid_value':
      // An API's refusal quotes no value back, and "expected one of "live", "test", got a string" reads as if a string were wrong.
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}${!format.echo && typeof issue.input === 'string' ? `, got a string that is ${issue.values.length === 2 ? 'neither' : 'none of them'}` : given(issue.input, format)}`;
    case 'invalid_format':
      return issue.message.startsWith('Invalid') ? `expected ${issue.format === 'regex' ? 'a valid value' : `a ${issue.format}`}${given(issue.input, format)}` : `expected ${issue.message}${given(issue.input, format)}`;
    case 'invalid_union': {
      if (issue.input === undefined) return 'required';
      // A variant chosen by a field (a credential's `in`): that field was not one of them.
      const { options, discriminator } = issue as { options?: unknown[]; discriminator?: string };
      if (options && discriminator !== undefined && issue.input !== null && typeof issue.input === 'object') {
        const sent = (issue.input as Record<string, unknown>)[discriminator];
        // `{ header: X-API-Key }`: a choice written as a field name, as other gateways' settings have it.
        const asField = sent === undefined ? options.find((option) => typeof option === 'string' && Object.hasOwn(issue.input as object, option)) : undefined;
        const fields = knownFields(issue.path.at(-1) === discriminator ? issue.path.slice(0, -1) : issue.path);
        const hint = asField === undefined ? '' : ` ("${String(asField)}" is a value of ${discriminator}, not a field; the fields here: ${fields.join(', ')})`;
        return `expected one of ${options.map((o) => JSON.stringify(o)).join(', ')}${sent === undefined ? `, got nothing${hint}` : given(sent, format)}`;
      }
      return format.echo ? `${issue.message} (got ${quoted(issue.input)})` : `${issue.message} (got ${format.got(issue.input)})`;
    }
    default:
      return issue.message;
  }
}

/** The most fields an unknown one's refusal lists as those that belong there; a mapping with more (the top level) lists none. */
const MOST_FIELDS_LISTED = 12;

/** The schema as JSON Schema, built once, the first time a typo needs a hint. */
let schemaForHints: JsonSchemaNode | undefined;

type JsonSchemaNode = {
  properties?: Record<string, JsonSchemaNode>;
  additionalProperties?: JsonSchemaNode | boolean;
  /** A record keyed by a list of names (errors.reasons): `enum` holds them. */
  propertyNames?: { enum?: unknown[] };
  items?: JsonSchemaNode;
  oneOf?: JsonSchemaNode[];
  anyOf?: JsonSchemaNode[];
};

/** The field names the schema knows at a path of the profile (for "did you mean"). */
function fieldsAt(path: readonly PropertyKey[]): string[] {
  schemaForHints ??= configJsonSchema() as JsonSchemaNode;
  let nodes: JsonSchemaNode[] = [schemaForHints];
  for (const segment of path) {
    nodes = nodes.flatMap(variants).flatMap((node) => {
      if (typeof segment === 'number') return node.items ? [node.items] : [];
      const named = node.properties?.[String(segment)];
      if (named) return [named];
      return typeof node.additionalProperties === 'object' ? [node.additionalProperties] : [];
    });
  }
  return [...new Set(nodes.flatMap(variants).flatMap((node) => [...Object.keys(node.properties ?? {}), ...(node.propertyNames?.enum ?? []).map(String)]))];
}

function variants(node: JsonSchemaNode): JsonSchemaNode[] {
  return [node, ...(node.oneOf ?? []), ...(node.anyOf ?? [])];
}

/**
 * zod's own wording of a problem ("Too big: expected number to be <=65535", "Invalid
 * input: …"), not a message the schema gives ("Too big for a plan" is the schema's).
 */
export function isZodDefault(message: string): boolean {
  return /^(Invalid [A-Za-z ]+(: |$)|Too (big|small): expected |Unrecognized keys?: )/.test(message);
}

/** How problems name types (and what an object holds), and whether a refused size quotes the value back. */
export interface ProblemFormat {
  expected(type: string): string;
  got(value: unknown): string;
  echo: boolean;
  /** What an unknown key is called: "field" unless said (a query string's are parameters). */
  member?: string;
}

const COMMON_NAMES: Record<string, string> = { int: 'a whole number', number: 'a number', string: 'a string', boolean: 'true or false' };
const YAML_NAMES: Record<string, string> = { ...COMMON_NAMES, object: 'a mapping', record: 'a mapping', map: 'a mapping', array: 'a list', tuple: 'a list' };
const JSON_NAMES: Record<string, string> = { ...COMMON_NAMES, object: 'an object', record: 'an object', map: 'an object', array: 'an array', tuple: 'an array' };

/** The profile's words (YAML: mappings and lists); values quoted back, passwords masked. */
const YAML_FORMAT: ProblemFormat = { expected: (type) => YAML_NAMES[type] ?? type, got: typeName, echo: true };

/**
 * An API's words (JSON: objects and arrays). No value is quoted back, only its type: any
 * field may hold a secret sent in the wrong place or of the wrong type (a key as a number,
 * in `mode`, inside an array), and a problem's words reach the client and the log.
 */
export const JSON_FORMAT: ProblemFormat = {
  expected: (type) => JSON_NAMES[type] ?? type,
  got: jsonTypeName,
  echo: false,
};

function jsonTypeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return typeof value === 'boolean' ? 'true or false' : typeof value === 'number' || typeof value === 'bigint' ? 'a number' : typeof value === 'string' ? 'a string' : typeof value;
}

/** ", got <the value>" where the format quotes values back, else ", got <its type>" (an API's: it may be a secret). */
function given(value: unknown, format: ProblemFormat): string {
  return `, got ${format.echo ? quoted(value) : format.got(value)}`;
}

/** A size or value limit, as "at most 65535" or "at least 1 character". */
function bound(issue: z.core.$ZodIssueTooBig | z.core.$ZodIssueTooSmall): string {
  const big = issue.code === 'too_big';
  const limit = Number(big ? (issue as z.core.$ZodIssueTooBig).maximum : (issue as z.core.$ZodIssueTooSmall).minimum);
  const inclusive = issue.inclusive !== false;
  const relation = issue.exact ? 'exactly' : big ? (inclusive ? 'at most' : 'less than') : inclusive ? 'at least' : 'more than';
  const unit = issue.origin === 'string' ? ' character' : issue.origin === 'array' || issue.origin === 'set' ? ' item' : '';
  return `expected ${relation} ${limit}${unit}${unit && limit !== 1 ? 's' : ''}`;
}

/** How YAML writes an empty mapping or list, by the type zod expected. */
const EMPTY_WRITTEN: Record<string, string> = { object: '{}', record: '{}', map: '{}', array: '[]', tuple: '[]' };

/** `free: {}` for a field, `- {}` for a list's item. */
function emptyWritten(path: readonly PropertyKey[], expected: string): string {
  const last = path.at(-1);
  const empty = EMPTY_WRITTEN[expected] ?? '{}';
  return typeof last === 'number' ? `"- ${empty}"` : last === undefined ? `"${empty}"` : `"${String(last)}: ${empty}"`;
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  // What YAML's explicit tags make: none of them is a mapping, as "got a mapping" said.
  if (value instanceof Date) return `a date (${Number.isNaN(value.getTime()) ? 'not a valid one' : value.toISOString()}, a YAML !!timestamp)`;
  if (value instanceof Uint8Array) return 'binary data (a YAML !!binary)';
  if (value instanceof Set) return 'a set (a YAML !!set)';
  return typeof value === 'object' ? 'a mapping' : `${typeof value} ${quoted(value)}`;
}

/** The most of a value a problem quotes back: enough to recognise it. */
const QUOTED_MAX = 200;

/** A value from the profile quoted back (its passwords masked first, then cut short); a mistyped store or upstream URL may carry a password. */
function quoted(value: unknown): string {
  // JSON has no word for YAML's .inf (or 1e400) and .nan: it would write them "null".
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    // A BigInt, or a cycle: as its own text.
  }
  const text = withoutPasswords(json ?? String(value));
  return text.length > QUOTED_MAX ? `${text.slice(0, QUOTED_MAX)}… (${text.length} characters)` : text;
}

function formatPath(segments: readonly PropertyKey[]): string {
  return segments
    .map((segment, i) => (typeof segment === 'number' ? `[${segment}]` : `${i === 0 ? '' : '.'}${String(segment)}`))
    .join('');
}

/** The JSON Schema editors use to complete keygate.yaml (`keygate schema`). */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}
