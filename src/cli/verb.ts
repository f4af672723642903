// The pieces every verb of the command definition (program.ts) is made with: what its action
// gets, the flags client verbs share, and walking the tree of commands.
import type { Command, OptionValues } from 'commander';
import type { LoadedConfig } from '../config/index.js';
import type { Target } from './client/api.js';
import { resolveTarget } from './client/target.js';
import { chooseFormat, FORMATS, type Format, isFormatOption, outputOption } from './output.js';

/** What a verb's action gets: its arguments, its flags, and the gateway and configuration they name. */
export interface Invocation {
  args: string[];
  opts: OptionValues;
  /** The gateway to call (--url, --ca, --context, ..., in the order of client/target.ts). */
  target(): Target;
  /** The configuration (--config, GATEHOUSE_CONFIG, ./gatehouse.yaml, else built-in); loaded on demand, it is the heaviest import. */
  loaded(): Promise<LoadedConfig>;
  /** The verb's full name, `policy explain`. */
  path: string;
}

/** A verb's exit code, or -1 for a server verb that runs until a signal. */
export type Action = (call: Invocation) => Promise<number> | number;

/** Flags every gateway client verb takes: where the gateway is, and the output form. */
export const CONNECTION_FLAGS = ['context', 'url', 'ca', 'config', 'json', 'output'] as const;

/** The verb's name from the root: `policy explain`. */
export function pathOf(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Adds --context, --url, --ca, --config and --json, in their own group of the verb's help. */
export function withConnection(command: Command, json = true): Command {
  command
    .optionsGroup('Gateway options:')
    .option('--url <url>', 'the gateway (or GATEHOUSE_URL; default: the context\'s, else from ./gatehouse.yaml, else https://127.0.0.1:8443)')
    .option('--ca <file>', "the CA that signed the gateway's certificate (or GATEHOUSE_CA; default: the context's, else certs/ca.crt, else the one gatehouse cert saved)")
    .option('--context <context>', 'the gateway, CA and login of this context (or GATEHOUSE_CONTEXT; default: the current one, gatehouse config use-context)')
    .option('--config <file>', 'configuration file that names the local gateway (or GATEHOUSE_CONFIG; default ./gatehouse.yaml)');
  if (json) withOutput(command);
  return command;
}

/** Adds --config (and the output flags) for the verbs that read this host's configuration. */
export function withConfig(command: Command, json: boolean): Command {
  command.option('--config <file>', 'configuration file (or GATEHOUSE_CONFIG; default ./gatehouse.yaml)');
  if (json) withOutput(command);
  return command;
}

/**
 * Adds -o/--output json|yaml|table and --json (short for -o json) to a verb that prints a result;
 * where --output already names a destination (get, submit, audit export), --json alone.
 */
export function withOutput(command: Command): Command {
  const taken = command.options.some((o) => o.long === '--output');
  if (!taken) command.addOption(outputOption());
  return command.option('--json', taken ? 'machine-readable output (JSON; --output here is a destination)' : 'short for -o json');
}

/** The format this run asked for: -o when it is the format flag, else --json, else table. */
function formatOf(command: Command, opts: OptionValues): Format {
  const formatFlag = command.options.some(isFormatOption);
  if (formatFlag && typeof opts.output === 'string' && (FORMATS as readonly string[]).includes(opts.output)) return opts.output as Format;
  return opts.json ? 'json' : 'table';
}

/** Sets the verb's action; its exit code goes to `result`. */
export function act(command: Command, action: Action, result: { code?: number }): Command {
  return command.action(async (...params: unknown[]) => {
    const self = params.at(-1) as Command;
    const opts = self.opts();
    const config = opts.config as string | undefined;
    const format = formatOf(self, opts);
    await chooseFormat(format);
    // Verbs branch on `json` for "a script reads this": -o json and -o yaml alike.
    if (format !== 'table') opts.json = true;
    result.code = await action({
      args: self.args,
      opts,
      path: pathOf(self),
      target: () => resolveTarget({ url: opts.url as string | undefined, ca: opts.ca as string | undefined, context: opts.context as string | undefined, config }),
      loaded: async () => (await import('../config/index.js')).loadConfig({ path: config }),
    });
  });
}

/** The command and every command under it, parents first. */
export function* walk(command: Command): Generator<Command> {
  yield command;
  for (const sub of command.commands) yield* walk(sub);
}

/** Commands kept out of help, completion and README (the one that writes README's list). */
export const isHidden = (c: Command) => Boolean((c as unknown as { _hidden?: boolean })._hidden);

/** The verbs that do something (no subcommands of their own), in the order help lists them. */
export const leaves = (program: Command) => [...walk(program)].filter((c) => c.parent && c.commands.length === 0 && !isHidden(c));
