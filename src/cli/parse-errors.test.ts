import { describe, expect, it } from 'vitest';
import { Option, type Command } from 'commander';
import { KeygateCommand, withoutTyped } from './parse-errors.js';

const KEY = 'kg_live_3F9vQx0LmZ2pR7sT1uW4yB6cD8eH5jKn0a';

describe("commander's parse errors without what was typed", () => {
  it('names an argument whose value is invalid, not the value', () => {
    const message = `error: command-argument value '${KEY}' is invalid for argument 'mode'. Allowed choices are live, test.`;
    expect(withoutTyped(message, 'commander.invalidArgument', 'keygate x')).toBe("error: argument 'mode' is invalid. Allowed choices are live, test.");
  });

  it('keeps nothing of an invalid value said in a wording it does not know', () => {
    const message = `error: option '--mode <mode>' value '${KEY}' from env 'MODE' is invalid.`;
    expect(withoutTyped(message, 'commander.invalidArgument', 'keygate keys create')).toBe('error: a value given is invalid; keygate keys create --help says what each option takes');
  });

  it("keeps commander's suggestion only when it names commands or flags, not text typed to look like one", () => {
    expect(withoutTyped("error: unknown option '--limt'\n(Did you mean --limit?)", 'commander.unknownOption', 'keygate keys list')).toBe("error: unknown option '--limt'\n(Did you mean --limit?)");
    const forged = withoutTyped(`error: unknown option '--x'\n(Did you mean ${KEY}?)'`, 'commander.unknownOption', 'keygate keys list');
    expect(forged).not.toContain(KEY);
  });

  it("passes commander's errors that name only what keygate defines", () => {
    const message = "error: too many arguments for 'show'. Expected 1 argument but got 2.";
    expect(withoutTyped(message, 'commander.excessArguments', 'keygate keys show')).toBe(message);
  });
});

describe('what follows a parse error', () => {
  /** What `keygate <args>` of a small CLI of two commands writes on stderr when its parse fails. */
  function refusal(...args: string[]): string {
    let written = '';
    const program = new KeygateCommand('keygate').exitOverride().configureOutput({ writeErr: (text) => (written += text) });
    program.command('show').argument('<id>', 'the key').action(() => undefined);
    program
      .command('list')
      .option('--live', 'live keys only')
      .addOption(new Option('--test', 'test keys only').conflicts('live'))
      .action(() => undefined);
    expect(() => program.parse(args, { from: 'user' })).toThrow();
    return written;
  }

  it("follows whatever names something keygate knows (a conflict, a word too many) with the command's usage line alone", () => {
    expect(refusal('list', '--live', '--test')).toBe("error: option '--test' cannot be used with option '--live'\nUsage: keygate list [options]\n");
    expect(refusal('show', 'a', 'b')).toBe("error: too many arguments for 'show'. Expected 1 argument but got 2.\nUsage: keygate show [options] <id>\n");
  });

  it('follows a name it does not know with the whole help, whose list holds the name meant', () => {
    expect(refusal('lst')).toMatch(/^error: unknown command 'lst'\n\(Did you mean list\?\)\n\nUsage: keygate \[options\] \[command\]\n[\s\S]*\n  show <id>/);
    expect(refusal('list', '--tset')).toMatch(/^error: unknown option '--tset'\n\(Did you mean --test\?\)\n\nUsage: keygate list \[options\]\n[\s\S]*\n  --live /);
  });
});

describe('CLI help', () => {
  it('marks every required option of every command (required), and no other', async () => {
    const { buildCli } = await import('./main.js');
    const { REQUIRED_MARK } = await import('./parse-errors.js');
    const commands: Command[] = [];
    const walk = (command: Command) => {
      commands.push(command);
      command.commands.forEach(walk);
    };
    walk(buildCli());
    let required = 0;
    for (const command of commands) {
      const help = command.createHelp();
      for (const option of command.options) {
        const marked = help.optionDescription(option).endsWith(` ${REQUIRED_MARK}`);
        expect(marked, `${command.name()} ${option.flags}`).toBe(option.mandatory);
        if (option.mandatory) required++;
      }
    }
    // keys create and import, accounts create, members invite/reset/unlock/remove, gauge, store copy's --to: thirteen in all.
    expect(required).toBe(13);
  });
});
