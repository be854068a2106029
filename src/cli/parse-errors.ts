/**
 * Commander's parse errors without what was typed. Commander quotes the bad value
 * (`option '--mode <mode>' argument 'sk_live_…' is invalid`), so a key pasted in the wrong
 * place would be printed to the terminal, its scrollback and CI logs, and keygate's errors
 * never hold a key. The message is rewritten in `error`, before commander writes it or
 * throws it, so the text and `--json`'s `{"error": …}` say the same.
 *
 * - A value (an option's argument, a command's argument) is never repeated: the option is
 *   named with what it takes, and the user still has what they typed in front of them.
 *   Only the profile could say what its keys look like, and a parse error comes before it.
 * - A name typed where an option or a command belongs is repeated only when it reads as one
 *   of keygate's names (see PLAIN_NAME), as a typo does: `unknown option '--bogus'`.
 * - Commander's other errors (a missing argument, too many arguments) name only what keygate
 *   defines, and pass unchanged; but an unknown option is said before a required one left
 *   out, as the typo it most often is.
 * - What follows the error is the command's usage line, or its whole help after an unknown
 *   name (UNKNOWN_NAMES).
 */
import { Command, Help, type ErrorOptions, type Option, type ParseOptionsResult } from 'commander';

/**
 * A name keygate repeats: lowercase letters and hyphens, at most 24 of them (a flag with
 * its dashes), the shape of every command and flag keygate has. No key has that shape:
 * keygate's own are longer (30 base62 characters after the prefix, or 32 hex and more),
 * and a key of another shape (`keys.imported`) is random letters and digits, never all
 * lowercase letters but by a chance of one in tens of thousands or less.
 */
const PLAIN_NAME = /^-{0,2}[a-z][a-z-]{0,23}$/;

/** Commander's `(Did you mean …?)` line: it names keygate's own commands or flags only. */
const SUGGESTION = /^\n\(Did you mean (?:one of )?[a-z, -]+\?\)$/;

/** `option '<flags>' argument '<value>' is invalid.<why>`: flags and why are keygate's. */
const INVALID_OPTION_VALUE = /^error: option '([^']+)' argument '.*' is invalid\.(.*)$/s;
/** `command-argument value '<value>' is invalid for argument '<name>'.<why>`. */
const INVALID_ARGUMENT_VALUE = /^error: command-argument value '.*' is invalid for argument '([^']+)'\.(.*)$/s;
/** `unknown option '<typed>'` or `unknown command '<typed>'`, with commander's suggestion, if any. */
const UNKNOWN_NAME = /^error: unknown (?:option|command) '(.*)'(\n[^\n]*)?$/s;

/**
 * `message` (commander's, for the error `code`, raised in the command `path` such as
 * `keygate keys list`) with nothing typed in it that could be a secret.
 *
 * @example
 * withoutTyped("error: option '--mode <mode>' argument 'sk_live_…' is invalid. Allowed choices are live, test.", 'commander.invalidArgument', 'keygate keys create')
 * // "error: option '--mode <mode>' argument is invalid. Allowed choices are live, test."
 */
export function withoutTyped(message: string, code: string | undefined, path: string): string {
  switch (code) {
    case 'commander.invalidArgument':
      return invalidValue(message, path);
    case 'commander.unknownOption':
      return unknownName(message, 'option', path);
    case 'commander.unknownCommand':
      return unknownName(message, 'command', path);
    default:
      return message;
  }
}

/** An invalid value, said by its option or argument and what it takes. */
function invalidValue(message: string, path: string): string {
  const option = INVALID_OPTION_VALUE.exec(message);
  if (option) return `error: option '${option[1]}' argument is invalid.${option[2]}`;
  const argument = INVALID_ARGUMENT_VALUE.exec(message);
  if (argument) return `error: argument '${argument[1]}' is invalid.${argument[2]}`;
  // A wording this module does not know (another commander): nothing of it is kept.
  return `error: a value given is invalid; ${path} --help says what each option takes`;
}

/** An unknown option (its name, before any `=value`) or command, repeated only when it reads as a name. */
function unknownName(message: string, what: 'option' | 'command', path: string): string {
  const unknown = UNKNOWN_NAME.exec(message);
  const suggestion = unknown?.[2] !== undefined && SUGGESTION.test(unknown[2]) ? unknown[2] : '';
  const typed = unknown?.[1];
  const name = what === 'option' ? typed?.split('=')[0] : typed;
  if (name !== undefined && PLAIN_NAME.test(name)) return `error: unknown ${what} '${name}'${suggestion}`;
  return `error: unknown ${what} (what was typed is not repeated: it may be a secret); ${path} --help lists the ${what}s${suggestion}`;
}

/** A command's name with its parents': `keygate keys list`. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let at: Command | null = command; at !== null; at = at.parent) names.unshift(at.name());
  return names.join(' ');
}

/** Commander's code for a required option not given. */
const MISSING_REQUIRED = 'commander.missingMandatoryOptionValue';

/**
 * Commander's codes for a name keygate does not know: an unknown option or command. Their
 * error is followed by the command's whole help, whose list of options or commands holds
 * the name that was meant (a group's, `keygate keys bogus`, lists its commands).
 *
 * Every other error (something left out, a word too many, a value refused, options that
 * conflict, keygate's own refusals) is followed by the command's usage line alone: the
 * error says what is wrong, the usage line where each thing goes, and the rest of the
 * help would bury both.
 */
const UNKNOWN_NAMES = new Set(['commander.unknownOption', 'commander.unknownCommand']);

/**
 * Commander's own refusal of an unknown option, with its "did you mean" (a method of every
 * Command that its typings leave out); it returns without a word where the command allows
 * unknown options.
 */
type UnknownOptionSaying = { unknownOption(flag: string): void };

/** What a command's help appends to an option it cannot run without. */
export const REQUIRED_MARK = '(required)';

/**
 * Commander's help, with the options a command cannot run without (`requiredOption`) marked
 * `(required)`: commander lists them exactly as it lists optional ones.
 */
class MarkedRequiredHelp extends Help {
  override optionDescription(option: Option): string {
    const description = super.optionDescription(option);
    return option.mandatory ? `${description} ${REQUIRED_MARK}` : description;
  }
}

/**
 * A commander Command whose parse errors, its subcommands' too, go through `withoutTyped`
 * before they are written or thrown.
 */
export class KeygateCommand extends Command {
  /** What this command's last parse did not know (options it does not define, a subcommand's arguments). */
  private notUnderstood: readonly string[] = [];

  override createCommand(name?: string): KeygateCommand {
    return new KeygateCommand(name);
  }

  override parseOptions(argv: string[]): ParseOptionsResult {
    const parsed = super.parseOptions(argv);
    this.notUnderstood = parsed.unknown;
    return parsed;
  }

  override createHelp(): Help {
    // With the command's help settings (configureHelp), as commander's own createHelp applies them.
    return Object.assign(new MarkedRequiredHelp(), this.configureHelp());
  }

  /**
   * Commander's unknownOption, with the name alone: given `--acount=acc_…` it looked for a flag
   * like the whole of it, and so suggested none, where `--acount acc_…` had "Did you mean
   * --account?". The value is not needed for the error either (it is never repeated).
   */
  unknownOption(flag: string): void {
    const name = flag.startsWith('--') && flag.includes('=') ? flag.slice(0, flag.indexOf('=')) : flag;
    (Command.prototype as unknown as UnknownOptionSaying).unknownOption.call(this, name);
  }

  override error(message: string, errorOptions?: ErrorOptions): never {
    // Commander checks the required options before the unknown ones: `--acount acc_…` was
    // "required option '--account <id>' not specified", hiding the typo and its "did you mean".
    const mistyped = errorOptions?.code === MISSING_REQUIRED ? this.notUnderstood.find((arg) => arg.startsWith('-')) : undefined;
    if (mistyped !== undefined) this.unknownOption(mistyped);
    // Written after the error (not at all with --json, whose output writes nothing).
    const unknownName = errorOptions?.code !== undefined && UNKNOWN_NAMES.has(errorOptions.code);
    this.showHelpAfterError(unknownName ? true : `Usage: ${this.createHelp().commandUsage(this)}`);
    return super.error(withoutTyped(message, errorOptions?.code, commandPath(this)), errorOptions);
  }
}
