// The pieces every verb of the command definition (program.ts) is made with: what its action
// gets, the flags client verbs share, and walking the tree of commands.
import type { Command, OptionValues } from 'commander';
import { loadConfig, type LoadedConfig } from '../config/index.js';
import type { Target } from './client/api.js';
import { resolveTarget } from './client/target.js';

/** What a verb's action gets: its arguments, its flags, and the gateway and configuration they name. */
export interface Invocation {
  args: string[];
  opts: OptionValues;
  /** The gateway to call (--url, --ca, --config, else the defaults). */
  target(): Target;
  /** The configuration (--config, GATEHOUSE_CONFIG, ./gatehouse.yaml, else built-in). */
  loaded(): LoadedConfig;
  /** The verb's full name, `policy explain`. */
  path: string;
}

/** A verb's exit code, or -1 for a server verb that runs until a signal. */
export type Action = (call: Invocation) => Promise<number> | number;

/** Flags every gateway client verb takes: where the gateway is, and the output form. */
export const CONNECTION_FLAGS = ['url', 'ca', 'config', 'json'] as const;

/** The verb's name from the root: `policy explain`. */
export function pathOf(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Adds --url, --ca, --config and --json, in their own group of the verb's help. */
export function withConnection(command: Command, json = true): Command {
  command
    .optionsGroup('Gateway options:')
    .option('--url <url>', 'the gateway (or GATEHOUSE_URL; default: from ./gatehouse.yaml, else https://127.0.0.1:8443)')
    .option('--ca <file>', "the CA that signed the gateway's certificate (or GATEHOUSE_CA; default: certs/ca.crt, else the one gatehouse cert saved)")
    .option('--config <file>', 'configuration file that names the local gateway (or GATEHOUSE_CONFIG; default ./gatehouse.yaml)');
  if (json) command.option('--json', 'machine-readable output');
  return command;
}

/** Adds --config (and --json) for the verbs that read this host's configuration. */
export function withConfig(command: Command, json: boolean): Command {
  command.option('--config <file>', 'configuration file (or GATEHOUSE_CONFIG; default ./gatehouse.yaml)');
  if (json) command.option('--json', 'machine-readable output');
  return command;
}

/** Sets the verb's action; its exit code goes to `result`. */
export function act(command: Command, action: Action, result: { code?: number }): Command {
  return command.action(async (...params: unknown[]) => {
    const self = params.at(-1) as Command;
    const opts = self.opts();
    const config = opts.config as string | undefined;
    result.code = await action({
      args: self.args,
      opts,
      path: pathOf(self),
      target: () => resolveTarget({ url: opts.url as string | undefined, ca: opts.ca as string | undefined, config }),
      loaded: () => loadConfig({ path: config }),
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
