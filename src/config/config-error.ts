/**
 * A profile's problems as keygate says them. Apart from load.ts so that what only reports
 * them (the CLI's error output) need not load the schema, YAML and zod.
 */

/** The problem of a profile file that could not be read at all. */
export const UNREADABLE = 'cannot read the file';

/**
 * One problem of a profile, as `keygate check --json` gives it to scripts. `field`: where
 * it is, as a path (`plans.free.rateLimits[0].window`); `""` for the profile's top level
 * (a field it does not take); null for the file as a whole (it could not be read, or is
 * not YAML, or nested too deeply to be read). `message`: what is wrong, without the path.
 */
export interface ConfigProblem {
  field: string | null;
  message: string;
}

/** A problem as one line: `plans.free: unknown field "apiAcess" (…)`. */
function problemLine({ field, message }: ConfigProblem): string {
  return field === null ? message : `${field === '' ? '(top level)' : field}: ${message}`;
}

/** The first problem for a one-line summary (the rest counted); why a file could not be read without repeating that it could not. */
function firstProblem([line = '', ...rest]: readonly string[], unreadable: boolean): string {
  const first = unreadable ? line.slice(`${UNREADABLE}: `.length) : line;
  return rest.length > 0 ? `${first} (and ${rest.length} more)` : first;
}

export class ConfigError extends Error {
  /** What is wrong, in a few words: the file could not be read, or what it says is not valid. */
  readonly headline: string;
  /**
   * The file, the headline and, where the headline does not name a field itself, the first
   * problem, in one line: what a log viewer that shows only `msg` shows, so it says which field.
   * `keygate.yaml: invalid configuration: plans.free: unknown field "apiAcess" (…) (and 1 more)`.
   */
  readonly summary: string;
  /** Each problem as one line, naming its field. */
  readonly problems: string[];
  /** The same problems, each as its field and its message. */
  readonly problemsByField: readonly ConfigProblem[];

  /**
   * `problems`: a line given as text is about the file as a whole (no field). `headline`:
   * for a profile that is valid but not for this use (one `keygate serve` cannot run).
   */
  constructor(
    readonly file: string,
    problems: readonly (ConfigProblem | string)[],
    headline?: string,
  ) {
    const byField = problems.map((p) => (typeof p === 'string' ? { field: null, message: p } : p));
    const lines = byField.map(problemLine);
    const unreadable = lines.length > 0 && lines.every((p) => p.startsWith(UNREADABLE));
    // A headline given names what is wrong and its field already (serve's refusals): said alone.
    const named = headline !== undefined;
    headline ??= unreadable ? 'cannot read the profile' : 'invalid configuration';
    super(`${file}: ${headline}\n${lines.map((p) => `  - ${p}`).join('\n')}`);
    this.headline = headline;
    this.summary = named || lines.length === 0 ? `${file}: ${headline}` : `${file}: ${headline}: ${firstProblem(lines, unreadable)}`;
    this.problems = lines;
    this.problemsByField = byField;
    this.name = 'ConfigError';
  }
}
