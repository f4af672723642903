// The data scientist's verbs in the command definition (program.ts): logging in, datasets, jobs,
// quota, and asking whether one may.
import { Argument, type Command, Option } from 'commander';
import { ACTIONS } from '../policy/lean.js';
import { JOB_STATES, RUNTIMES } from '../wire/lean.js';
import { UsageError } from './fail.js';
import { act, withConnection } from './verb.js';

// Each verb's work is imported when that verb runs, not when the command line is defined, so help
// and a verb load only what they use (test/cli-startup.test.ts holds this).
const identity = () => import('./identity-commands.js');
const jobCommands = () => import('./job-commands.js');
const reads = () => import('./dataset-read-commands.js');
const parseList = async (v: string) => (await import('./job-flags.js')).parseList(v);

export function addUserVerbs(program: Command, result: { code?: number }): void {
  program.commandsGroup('Log in:');
  act(
    withConnection(
      program
        .command('login')
        .summary("log in with your company's SSO (--sso) or your directory password (--ldap)")
        .description("Log in to the gateway. --sso prints a URL and a code and opens a browser when there is one; --ldap asks for your directory password (or reads it from stdin with --password-stdin). The tokens are kept under ~/.config/gatehouse and renew themselves.")
        .option('--sso', "your company's SSO: a URL and a code to approve in a browser")
        .option('--ldap', 'your directory user name and password')
        .option('--user <name>', '--ldap: the user name (asked for when not given)')
        .option('--password-stdin', '--ldap: read the password from standard input')
        .option('--no-browser', '--sso: only print the URL, do not open a browser'),
    ),
    async ({ target, opts }) => (await identity()).login(target(), { sso: Boolean(opts.sso), ldap: Boolean(opts.ldap), user: opts.user, passwordStdin: Boolean(opts.passwordStdin), browser: opts.browser !== false, json: Boolean(opts.json) }),
    result,
  );
  act(withConnection(program.command('whoami').summary('who the gateway thinks you are: user, groups, how you logged in')), async ({ target, opts }) => (await identity()).whoami(target(), Boolean(opts.json)), result);
  act(
    withConnection(
      program
        .command('cert')
        .summary('a short-lived client certificate for tools that speak TLS')
        .description('A short-lived client certificate and its key under ~/.config/gatehouse/certs, and the CA that signed the gateway; prints the curl line that uses them.')
        .option('--ttl <seconds>', 'how long it stays valid, at least 60 (default: the gateway\'s certs.client_ttl)'),
    ),
    async ({ target, opts }) => {
      const ttl = opts.ttl === undefined ? undefined : Number(opts.ttl);
      if (ttl !== undefined && !(Number.isInteger(ttl) && ttl >= 60)) throw new UsageError('--ttl: a whole number of seconds, at least 60');
      return (await identity()).certificate(target(), { json: Boolean(opts.json), ttl });
    },
    result,
  );
  act(withConnection(program.command('logout').summary('end the login: its tokens and certificates stop working')), async ({ target, opts }) => (await identity()).logout(target(), Boolean(opts.json)), result);

  program.commandsGroup('Data and jobs:');
  act(withConnection(program.command('datasets').summary('the datasets you may use, and what you may do with each')), async ({ target, opts }) => (await import('./dataset-commands.js')).datasets(target(), Boolean(opts.json)), result);
  act(
    withConnection(
      program
        .command('get')
        .argument('<name>', 'the dataset (gatehouse datasets lists yours)')
        .summary("download a dataset's partitions into DIR/part-NNNNN.<format>; run again to continue after an interruption")
        .option('-o, --output <dir>', 'the folder to write into (default ./NAME)')
        .option('--partitions <list>', 'only these partitions: 0,2-3'),
    ),
    async ({ target, args, opts }) => (await reads()).get(target(), args[0], { output: opts.output, partitions: opts.partitions, json: Boolean(opts.json) }),
    result,
  );
  act(
    withConnection(
      program
        .command('preview')
        .argument('<name>', 'the dataset (gatehouse datasets lists yours)')
        .summary('the first rows of a partition as a table')
        .option('--rows <n>', 'how many rows, at most 1000 (default 10)')
        .option('--partition <n>', 'which partition (default 0)'),
    ),
    async ({ target, args, opts }) => (await reads()).preview(target(), args[0], { rows: opts.rows, partition: opts.partition, json: Boolean(opts.json) }),
    result,
  );
  act(
    withConnection(
      program
        .command('put')
        .argument('<dir>', 'a folder of .csv files: each one a partition, in name order, each starting with the same header')
        .argument('<name>', 'the dataset to create (or replace, if it is yours), in a namespace you may write')
        .summary('upload DIR/*.csv as a dataset you own, committed at once when every partition is in')
        .option('--labels <list>', 'labels the dataset carries (such as pii): a,b'),
    ),
    async ({ target, args, opts }) => (await import('./dataset-write-commands.js')).put(target(), args[0], args[1], { labels: opts.labels, json: Boolean(opts.json) }),
    result,
  );
  act(
    withConnection(program.command('rm').argument('<name>', 'the dataset (yours, or one you administer)').summary('remove a dataset: its owner or an admin; refused while a job uses it')),
    async ({ target, args, opts }) => (await import('./dataset-write-commands.js')).rm(target(), args[0], Boolean(opts.json)),
    result,
  );
  act(
    withConnection(
      program
        .command('can-i')
        .addArgument(new Argument('<action>', 'read, write or admin').choices(ACTIONS))
        .argument('<object>', 'dataset:NAME, policy:files, ...')
        .summary('may I do ACTION on OBJECT? exit 0 yes, 1 no; the deciding rule on stderr')
        .description("Whether you may do ACTION on OBJECT, decided by the gateway with your real groups and the dataset's labels. Prints yes or no; the rule that decided goes to stderr. Exit 0 for yes, 1 for no. --as asks for someone else (needs read on policy:files).")
        .option('--as <user>', "someone else's access (needs read on policy:files); their groups from their latest login unless --groups")
        .option('--groups <a,b>', 'decide with these groups instead (needs read on policy:files)')
        .option('--labels <a,b>', "decide with these dataset labels instead of the dataset's own"),
    ),
    async ({ target, args, opts }) =>
      (await import('./can-i.js')).canI(target(), {
        action: args[0]!,
        object: args[1]!,
        as: opts.as,
        groups: opts.groups === undefined ? undefined : await parseList(opts.groups),
        labels: opts.labels === undefined ? undefined : await parseList(opts.labels),
        json: Boolean(opts.json),
      }),
    result,
  );
  act(
    withConnection(
      program
        .command('submit')
        .argument('[file]', 'a job file (job.yaml, .json), or a source file to run with --runtime')
        .summary('submit a job from a job file, or from flags')
        .description(
          'Submit a job described in a file (flags given with it override its fields), or from flags: --input NAME --output NAME and one of --python FILE, --node FILE, --command \'argv...\' or FILE --runtime R. With --wait, follow it to its end: exit 0 succeeded, 1 failed, 3 cancelled (Ctrl-C stops watching, never the job).',
        )
        .option('--input <name>', 'the dataset to read')
        .option('--output <name>', 'the dataset to write')
        .option('--python <file>', 'run this Python file (its process(rows))')
        .option('--node <file>', 'run this JavaScript module (its process(rows))')
        .option('--command <argv>', "run a program on each partition: 'sort -o {output} {input}'")
        .option('--runtime <runtime>', `the runtime for FILE: ${RUNTIMES.join(', ')}`)
        .option('--entrypoint <function>', 'the function to call (default process)')
        .option('--cores <n>', 'cores per worker (default 1)')
        .option('--memory <size>', 'memory: 1024 (MB), 512m or 4g (default 1024)')
        .option('--time <limit>', 'time limit: 3600 (seconds), 30m or 2h (default 1h)')
        .option('--name <name>', 'a name for the job (default: the file name)')
        .option('--partitions <list>', 'only these partitions: 0,1,5-9')
        .option('--overwrite', 'replace an existing output dataset')
        .option('--labels <a,b>', 'labels for the output dataset')
        .option('--backend <name>', 'bundled or slurm (default: the gateway\'s)')
        .option('--wait', 'follow the job to its end: exit 0 succeeded, 1 failed, 3 cancelled'),
    ),
    async ({ target, args, opts }) => (await jobCommands()).submit(target(), { ...opts, file: args[0] }, { wait: Boolean(opts.wait), json: Boolean(opts.json) }),
    result,
  );
  act(
    withConnection(
      program
        .command('jobs')
        .summary('your jobs, newest first')
        .option('--all', "other users' jobs too, where you may see them")
        .addOption(new Option('--state <state>', 'only jobs in this state').choices(JOB_STATES)),
    ),
    async ({ target, opts }) => (await jobCommands()).jobs(target(), { all: Boolean(opts.all), state: opts.state, json: Boolean(opts.json) }),
    result,
  );
  act(
    withConnection(program.command('status').argument('<id>', 'the job (gatehouse jobs lists yours)').summary("a job's state, progress, rows and cost; why it waits, or why it failed")),
    async ({ target, args, opts }) => (await jobCommands()).status(target(), args[0]!, Boolean(opts.json)),
    result,
  );
  act(
    withConnection(program.command('logs').argument('<id>', 'the job (gatehouse jobs lists yours)').summary("a job's log").option('-f, --follow', 'follow it until the job ends'), false),
    async ({ target, args, opts }) => (await jobCommands()).logs(target(), args[0]!, Boolean(opts.follow)),
    result,
  );
  act(
    withConnection(program.command('cancel').argument('<id>', 'the job (gatehouse jobs lists yours)').summary('cancel a job that has not ended')),
    async ({ target, args, opts }) => (await jobCommands()).cancel(target(), args[0]!, Boolean(opts.json)),
    result,
  );
  act(withConnection(program.command('quota').summary('your limits, what is in use, where each limit comes from, your pending jobs')), async ({ target, opts }) => (await import('./quota-command.js')).quota(target(), Boolean(opts.json)), result);
}
