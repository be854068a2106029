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

export class ConfigError extends Error {
  /** What is wrong, in a few words: the file could not be read, or what it says is not valid. */
  readonly headline: string;
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
    headline ??= lines.length > 0 && lines.every((p) => p.startsWith(UNREADABLE)) ? 'cannot read the profile' : 'invalid configuration';
    super(`${file}: ${headline}\n${lines.map((p) => `  - ${p}`).join('\n')}`);
    this.headline = headline;
    this.problems = lines;
    this.problemsByField = byField;
    this.name = 'ConfigError';
  }
}
