// IT's and auditors' verbs in the command definition (program.ts): policy, audit, the servers,
// configuration, and shell completion.
import { resolve } from 'node:path';
import { Argument, type Command, Option } from 'commander';
import { writeCommandList } from './command-list.js';
import { completionScript } from './completion.js';
import { goFromParent } from './up-handshake.js';
import { printLine } from './safe-text.js';
import { act, type Invocation, withConfig, withConnection, withOutput } from './verb.js';

// Each verb's work is imported when that verb runs, not when the command line is defined: help and
// the client verbs must not load the gateway, the engine, the policy engine or the audit trail.
const policyCommands = () => import('./policy-commands.js');
const contextCommands = () => import('./context-commands.js');
const auditCommands = () => import('./audit-commands.js');
const servers = async () => ({ ...(await import('./serve.js')), ...(await import('./up.js')) });
const parseList = async (v: string) => (await import('./job-flags.js')).parseList(v);
/** The configuration's code (its schema library is most of it), loaded ahead of reading the file. */
const preloadConfig = () => import('../config/index.js');

type Result = { code?: number };

export function addAdminVerbs(program: Command, result: Result): void {
  program.commandsGroup('Policy (IT):');
  addPolicy(program, result);
  program.commandsGroup('Audit:');
  addAudit(program, result);
  program.commandsGroup('Run the services:');
  addServers(program, result);
  program.commandsGroup('Shell:');
  act(
    program
      .command('completion')
      .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
      .summary('shell completion: source <(gatehouse completion bash)')
      .description('Prints a completion script for bash or zsh. Load it in the current shell with source <(gatehouse completion bash), or for every shell add that line to ~/.bashrc (zsh: source <(gatehouse completion zsh) in ~/.zshrc, after compinit).'),
    ({ args }) => {
      process.stdout.write(completionScript(program, args[0] as 'bash' | 'zsh'));
      return 0;
    },
    result,
  );
  // The context names for completion (--context, use-context, delete-context): the script asks the
  // command instead of parsing contexts.json in shell. Hidden: not a verb people type.
  act(program.command('__contexts', { hidden: true }), async () => (await contextCommands()).contextNames(), result);
  // Keeps README's command list generated from this definition (npm run docs:cli).
  act(
    program.command('command-list', { hidden: true }).option('--write <file>', 'refresh the list between the markers in FILE'),
    ({ opts }) => {
      printLine(writeCommandList(program, opts.write));
      return 0;
    },
    result,
  );
}

const list = async (v: unknown) => (typeof v === 'string' ? parseList(v) : undefined);

function addPolicy(program: Command, result: Result): void {
  const policy = program.command('policy').summary('lint, test, explain, diff and reload the policy files; the serving version');
  const run = (sub: string) => async (c: Invocation) =>
    (await policyCommands()).policyCommand(sub, c.args, { dir: resolve(c.opts.dir ?? 'policies'), json: Boolean(c.opts.json), groups: await list(c.opts.groups), labels: await list(c.opts.labels), remote: Boolean(c.opts.remote) || c.opts.url !== undefined, target: c.target });
  const dir = (c: Command) => c.option('--dir <dir>', 'the policy folder (default policies/)');
  act(withOutput(dir(policy.command('lint').summary('check policies/ as the gateway would: file:line, message, hint; exit 1 on an error'))), run('lint'), result);
  act(withOutput(dir(policy.command('test').summary('run policies/tests.yaml: a PASS/FAIL table, exit 1 on any failure'))), run('test'), result);
  act(
    withConnection(
      dir(
        policy
          .command('explain')
          .argument('<user>')
          .addArgument(new Argument('<action>', 'read, write or admin'))
          .argument('<object>', 'dataset:NAME, policy:files, ...')
          .summary("may USER do ACTION on OBJECT: the deciding rule, every match with its role chain, USER's quota")
          .description("Why USER may or may not do ACTION on OBJECT, from the files in --dir (offline: pass USER's --groups and the dataset's --labels), or from the running gateway with --remote (their groups from their latest login, the dataset's own labels). For yourself, gatehouse can-i is shorter.")
          .option('--groups <a,b>', "USER's groups (offline, none unless given)")
          .option('--labels <a,b>', "the dataset's labels (offline, none unless given)"),
      ).option('--remote', 'ask the running gateway instead of reading --dir (also implied by --url)'),
    ),
    run('explain'),
    result,
  );
  act(withOutput(policy.command('diff').argument('<old>', 'a policy folder').argument('<new>', 'a policy folder').summary('the access grants and revocations between two policy folders, and quota changes')), run('diff'), result);
  act(withConnection(policy.command('reload').summary('make the running gateway reload now (it also reloads by itself on change)')), run('reload'), result);
  act(withConnection(policy.command('status').summary('the serving version, its last reload and any problems (GET /v1/policy)')), run('status'), result);
}

/** kubectl's contexts: a name for a gateway, its CA and the login made through it. */
function addContexts(config: Command, result: Result): void {
  act(
    withOutput(
      config
        .command('set-context')
        .argument('<name>', 'letters, digits, . _ -')
        .summary('name a gateway and its CA (created, or updated: only the flags given change)')
        .description('Creates or updates the context NAME: the gateway --url and the CA --ca to trust there (kept as an absolute path; --ca "" removes it). A login made while a context is in use is kept under its name, so two contexts can hold two logins.')
        .option('--url <url>', "the gateway, https://host:port (needed for a new context)")
        .option('--ca <file>', "the CA that signed the gateway's certificate"),
    ),
    async ({ args, opts }) => (await contextCommands()).setContext(args[0]!, { url: opts.url, ca: opts.ca }),
    result,
  );
  act(withOutput(config.command('use-context').argument('<context>').summary('make NAME the current context: the gateway every command uses by default')), async ({ args }) => (await contextCommands()).useContext(args[0]!), result);
  act(withOutput(config.command('get-contexts').summary('the contexts, the current one marked *, and who is logged in through each')), async () => (await contextCommands()).getContexts(), result);
  act(withOutput(config.command('current-context').summary('the current context\'s name (exit 1 when there is none)')), async () => (await contextCommands()).currentContext(), result);
  act(withOutput(config.command('delete-context').argument('<context>').summary('forget a context and its saved login')), async ({ args }) => (await contextCommands()).deleteContext(args[0]!), result);
}

/** The filters audit query and audit export share. */
function withFilters(c: Command): Command {
  return c
    .option('--user <user>', 'events by this user')
    .option('--group <group>', 'events by members of this group')
    .option('--action <action>', 'this action; a prefix when it ends in . : or / (job.); a glob with * or ?')
    .option('--object <object>', 'this object; a prefix when it ends in . : or / (dataset:); a glob with * or ? (dataset:scratch/*)')
    .addOption(new Option('--decision <decision>', 'allow, deny or error').choices(['allow', 'deny', 'error']))
    .option('--since <time>', 'from: an age (7d, 2h) or a time (2024-05-01T09:00:00Z)')
    .option('--until <time>', 'up to: an age or a time')
    .option('--request-id <id>', "one request's events");
}

function addAudit(program: Command, result: Result): void {
  const audit = program.command('audit').summary('query, export and verify the audit trail; its chains and signing key');
  const run = (sub: string) => async (c: Invocation) => {
    const o = c.opts;
    // verify --witness and rotate-key read this host's configuration; loaded only if they get there.
    const { loadConfig } = sub === 'verify' || sub === 'rotate-key' ? await import('../config/index.js') : { loadConfig: undefined };
    const config = () => {
      if (loadConfig === undefined) throw new Error(`audit ${sub} does not read the configuration`);
      return loadConfig({ path: o.config as string | undefined }).config;
    };
    return (await auditCommands()).auditCommand(sub, c.args, c.target, { ...o, all: Boolean(o.all), json: Boolean(o.json), config });
  };
  act(
    withConnection(
      withFilters(audit.command('query').summary('audit events, newest first, a page at a time (times in your local zone)'))
        .option('--limit <n>', 'events per page, 1 to 1000')
        .option('--cursor <cursor>', 'the page after this one (as the previous page said)')
        .option('--all', 'every page'),
    ),
    run('query'),
    result,
  );
  act(
    withConnection(
      withFilters(audit.command('export').summary('every matching event, oldest first in chain order, to stdout or a file'))
        .addOption(new Option('--format <format>', 'jsonl or csv (default jsonl; csv for an --output ending in .csv)').choices(['jsonl', 'csv']))
        .option('--output <file>', 'write to FILE (complete, or not at all) instead of stdout'),
    ),
    run('export'),
    result,
  );
  act(
    withConnection(
      audit
        .command('verify')
        .summary('check that the trail is intact: hashes, links, checkpoints (exit 1 when not)')
        .option('--file <archive>', "check a retention archive here, with the gateway's key when reachable")
        .option('--witness <file>', 'check the trail on this host (audit.dir) against a witness file')
        .option('--dir <dir>', '--witness: a copy of audit.dir instead of the configured one'),
    ),
    run('verify'),
    result,
  );
  act(withConnection(audit.command('chains').summary("every gateway's chain over a shared store: live, gone or retired")), run('chains'), result);
  act(
    withConnection(audit.command('retire').argument('<name>', 'the gateway, as audit chains lists it').summary("a gone gateway's chain is no longer expected (admin; recorded)").option('--reason <text>', 'why, and where its trail was exported to (required)')),
    run('retire'),
    result,
  );
  act(withConfig(audit.command('rotate-key').summary("a new audit signing key from the gateway's next start; older checkpoints still verify"), true), run('rotate-key'), result);
}

function addServers(program: Command, result: Result): void {
  // up's --json is its ready line for a supervisor, not a result: no -o.
  act(withConfig(program.command('up').summary('the engine, the gateway (and the development SSO provider) on this machine, as npm start does'), false).option('--json', 'the ready line as JSON'), async ({ loaded, opts }) => {
    // The children first (they load their code meanwhile), then `up`'s own code (the certificates,
    // the demo data) alongside the configuration's.
    const { dropChildren, forkEarly } = await import('./up-fork.js');
    const early = forkEarly(opts.config as string | undefined);
    let loadedConfig: Awaited<ReturnType<typeof loaded>>;
    let up: Awaited<ReturnType<typeof servers>>['up'];
    try {
      [loadedConfig, { up }] = await Promise.all([loaded(), servers()]);
    } catch (err) {
      if (early) await dropChildren(early.children);
      throw err;
    }
    return up({ config: loadedConfig.config, configFile: loadedConfig.file, json: Boolean(opts.json), early });
  }, result);
  act(withConfig(program.command('gateway').summary('the gateway alone (HTTPS, server.host:server.port)'), false), async ({ loaded }) => {
    // The code first (under `up`, while the engine and the SSO provider start), then the configuration.
    const [{ startGateway }, , go] = await Promise.all([import('../gateway/index.js'), preloadConfig(), goFromParent()]);
    const { config } = await loaded();
    // Under `up`, the engine's and the provider's ports come later: read again (every key checked again) then.
    const ports = go.ports;
    const ready = ports
      ? async () => {
          await ports;
          return (await loaded()).config;
        }
      : undefined;
    await (await servers()).serve('gateway', () => startGateway(config, ready, { certificatesEnsured: Boolean(go.certificatesEnsured) }));
    return -1; // keeps running until a signal
  }, result);
  act(withConfig(program.command('engine').summary('the bundled engine alone (mTLS, only the gateway\'s client certificate)'), false), async ({ loaded }) => {
    const [{ ensureServiceCertificates }, { closeInheritedDescriptors, startEngine }, , go] = await Promise.all([import('../auth/boot.js'), import('../compute/index.js'), preloadConfig(), goFromParent()]);
    // Before any task exists: a descriptor its parent left open would reach every task (review36).
    closeInheritedDescriptors();
    const { config } = await loaded();
    await (await servers()).serve('engine', async () => {
      // Run alone, the engine creates the certificates too; under `up` they were checked a moment ago.
      if (!go.certificatesEnsured) ensureServiceCertificates(config);
      return startEngine(config);
    });
    return -1;
  }, result);
  act(withConfig(program.command('dev-idp').summary('the DEVELOPMENT OIDC provider alone (127.0.0.1:dev_idp.port)'), false), async ({ loaded }) => {
    // Its signing key is made on the thread pool while the configuration's code loads and `up` is not ready yet.
    const auth = import('../auth/boot.js').then(async (boot) => {
      const m = await boot.devIdpModule();
      m.prepareDevIdpSigningKey();
      return m;
    });
    const [{ startDevIdp }] = await Promise.all([auth, preloadConfig(), goFromParent()]);
    const { config } = await loaded();
    await (await servers()).serve('dev-idp', () => startDevIdp(config));
    return -1;
  }, result);
  const config = program.command('config').summary("contexts (which gateway, CA and login); check the configuration, print its reference");
  addContexts(config, result);
  act(withConfig(config.command('check').summary('validate the configuration and exit (--json: the resolved values, secrets masked)'), true), async ({ loaded, opts }) => {
    await (await import('./config-command.js')).configCommand('check', loaded, { json: Boolean(opts.json) });
    return 0;
  }, result);
  act(config.command('docs').summary('the configuration reference (--write README.md refreshes it there)').option('--write <file>', 'refresh the reference between the markers in FILE'), async ({ loaded, opts }) => {
    await (await import('./config-command.js')).configCommand('docs', loaded, { json: false, write: opts.write });
    return 0;
  }, result);
}
