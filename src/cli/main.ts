// The `gatehouse` command. The verbs, their flags and their help are defined once (program.ts);
// here the command line is parsed, the verb run, and any error turned into one line and an exit
// code from the documented set (exit-codes.ts).
import type { CommanderError } from 'commander';
import { exitCodeOf, EXIT } from './exit-codes.js';
import { fail, UsageError } from './fail.js';
import { buildProgram } from './program.js';
import { pathOf, walk } from './verb.js';

/** A command-line mistake, with the verb it was made on. */
class ParseError extends UsageError {
  constructor(
    message: string,
    readonly path: string,
    readonly exitCode: number,
    readonly helpShown: boolean,
  ) {
    super(message);
  }
}

/** `error: unknown option '--bogus'\n(Did you mean --json?)` → `unknown option '--bogus' (did you mean --json?)`. */
function oneLine(err: CommanderError): string {
  return err.message
    .replace(/^error: /, '')
    .replace(/\s*\n\s*\(Did you mean/, ' (did you mean')
    .replace(/\s*\n\s*/g, ' ')
    .replace(/\.$/, '');
}

/** The verb that is running, to name in its error line. */
let verb = '';

async function main(argv: string[]): Promise<number> {
  const result: { code?: number } = {};
  const program = buildProgram(result);
  program.hook('preAction', (_root, action) => {
    verb = pathOf(action);
  });
  for (const command of walk(program)) {
    const path = pathOf(command);
    // Help and the version are printed by commander; its error lines are ours, with the verb named.
    command.configureOutput({ outputError: () => {} });
    command.exitOverride((err) => {
      const help = err.code === 'commander.help' || err.code === 'commander.helpDisplayed' || err.code === 'commander.version';
      throw new ParseError(oneLine(err), path, help && err.exitCode === 0 ? EXIT.ok : EXIT.usage, help);
    });
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    // Asked for, help is the answer (stdout, 0); a group without its subcommand gets it as the error (stderr, 2).
    if (err.helpShown) return err.exitCode;
    const where = err.path ? `gatehouse ${err.path}` : 'gatehouse';
    fail(err.path, new UsageError(`${err.message}; run ${where} --help`), EXIT.usage);
  }
  return result.code ?? EXIT.ok;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => fail(verb, err, exitCodeOf(err)),
);
