// The one definition of the `gatehouse` command line: every verb, its arguments, its flags and
// their help. Parsing, `gatehouse VERB --help`, the README's command list (command-list.ts) and
// shell completion (completion.ts) all read this tree, so they cannot drift apart.
import { Command, Option } from 'commander';
import { VERSION } from '../version.js';
import { EXIT_MEANINGS } from './exit-codes.js';
import { UsageError } from './fail.js';
import { act, pathOf, walk } from './verb.js';
import { addAdminVerbs } from './verbs-admin.js';
import { addUserVerbs } from './verbs-user.js';

const EPILOGUE = `
Run gatehouse COMMAND --help for a command's own flags (gatehouse policy explain --help).

Exit codes:
${EXIT_MEANINGS.map(([code, meaning]) => `  ${String(code).padEnd(4)}${meaning}`).join('\n')}

GATEHOUSE_DEBUG=1 adds the stack trace to an error, for bug reports.`;

/** The whole command tree. `result.code` holds the exit code of the verb that ran. */
export function buildProgram(result: { code?: number }): Command {
  const program = new Command('gatehouse')
    .description(`gatehouse ${VERSION}: a governance and access gateway in front of shared compute`)
    .usage('<command> [options]')
    .version(VERSION, '-v, --version', 'the version')
    .addHelpText('after', EPILOGUE);
  addUserVerbs(program, result);
  addAdminVerbs(program, result);
  // Commander's own help command looks one level down; this one follows the whole path (help policy explain).
  program.helpCommand(false);
  act(
    program
      .command('help')
      .argument('[command...]', 'a command, as typed: policy explain')
      .summary("a command's help: gatehouse help policy explain"),
    ({ args }) => {
      let command = program;
      for (const name of args) {
        const sub = command.commands.find((c) => c.name() === name);
        if (!sub) throw new UsageError(`no command ${[pathOf(command), name].filter(Boolean).join(' ')}; run gatehouse --help for the list`);
        command = sub;
      }
      command.outputHelp();
      return 0;
    },
    result,
  );
  for (const command of walk(program)) {
    command.addHelpOption(new Option('-h, --help', 'this help').helpGroup('Options:'));
    if (!command.description()) command.description(command.summary());
    if (command.parent && command.commands.length > 0) command.usage('<command> [options]').helpCommand('help [command]', "a command's help");
    command.showHelpAfterError(false);
    command.showSuggestionAfterError(true);
    // A verb's line in a listing shows its arguments; its flags are in its own --help.
    command.configureHelp({ sortOptions: false, sortSubcommands: false, subcommandTerm: (c) => [c.name(), ...c.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`))].join(' ') });
  }
  return program;
}
