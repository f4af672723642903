// The `gatehouse` command. Server verbs (up, gateway, engine) start processes; client verbs call
// the HTTP API like any other client and arrive with their issues.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/index.js';
import { startEngine } from '../compute/index.js';
import { ensureServiceCertificates, startDevIdp } from '../auth/index.js';
import { startGateway } from '../gateway/index.js';
import { VERSION } from '../version.js';
import { resolveTarget } from './client/target.js';
import { auditCommand } from './audit-commands.js';
import { configCommand } from './config-command.js';
import { certificate, login, logout, whoami } from './identity-commands.js';
import { fail, UsageError } from './fail.js';
import { datasets } from './dataset-commands.js';
import { get, preview } from './dataset-read-commands.js';
import { cancel, jobs, logs, status, submit } from './job-commands.js';
import { policyCommand } from './policy-commands.js';
import { quota } from './quota-command.js';
import { serve } from './serve.js';
import { up } from './up.js';

const USAGE = `gatehouse ${VERSION}: a governance and access gateway in front of shared compute

usage: gatehouse <command> [options]

  login --sso        log in with your company's SSO (prints a URL and a code; opens a browser when there is one)
  login --ldap       log in with your directory password [--user NAME] [--password-stdin]
  whoami             who the gateway thinks you are
  cert               a short-lived client certificate for tools that speak TLS [--ttl SECONDS]
  logout             end the login: its tokens and certificates stop working
  datasets           the datasets you may use, and what you may do with each
  get NAME           download a dataset's partitions into DIR/part-NNNNN.<format> [-o DIR (default ./NAME)]
                     [--partitions 0,2-3]; run again after an interruption to continue where it stopped
  preview NAME       the first rows of a partition as a table [--rows N (10; at most 1000)] [--partition N (0)]

  submit job.yaml    submit a job described in a file (flags given with it override its fields)
  submit --input NAME --output NAME (--python FILE | --node FILE | --command 'argv...' | FILE [--runtime R])
                     submit a job from flags [--entrypoint F] [--cores N] [--memory 1024|512m|4g]
                     [--time 3600|30m|2h] [--name NAME] [--partitions 0,1,5-9] [--overwrite]
                     [--labels a,b] [--backend bundled]
                     --wait: follow it to the end (exit 0 succeeded, 1 failed, 3 cancelled; Ctrl-C stops watching)
  jobs               your jobs, newest first [--all: other users' too, where you may see them] [--state STATE]
  status ID          a job's state, progress, rows and cost; the reason while pending, the error if failed
  logs ID            a job's log [-f: follow it until the job ends]
  cancel ID          cancel a job that has not ended
  quota              your limits, what is in use, where each limit comes from, and your pending jobs

  policy lint        check policies/ as the gateway would (file:line and a hint; non-zero on error) [--dir DIR]
  policy test        run policies/tests.yaml and print a pass/fail table [--dir DIR]
  policy explain U A OBJECT
                     may user U do action A on OBJECT, which rule decided, through which roles, and U's quota
                     [--groups a,b] [--labels pii] [--dir DIR | --remote]
  policy diff OLD NEW
                     the access and quota changes between two policy folders
  policy reload      make the running gateway reload policies/ now (it also reloads by itself on change)

  audit query        audit events, newest first, a page at a time (times in your local zone)
                     [--user U] [--group G] [--action A] [--object O] [--decision allow|deny|error]
                     [--since 7d|2024-05-01T09:00:00Z] [--until T] [--request-id R] [--limit N]
                     [--cursor C] [--all: every page]
                     --action/--object match exactly; a prefix when they end in . : or / (job., dataset:);
                     a glob with * or ? (dataset:scratch/*)
  audit export       every matching event, oldest first in chain order, to stdout [--format jsonl|csv]
                     [--output FILE] [the filters of audit query]
  audit verify       check that the trail is intact: hashes, links, checkpoints (exit 1 when not);
                     --file ARCHIVE checks a retention archive here, with the gateway's key when reachable;
                     --witness FILE checks the trail on this host (audit.dir, or --dir DIR) against a witness
  audit chains       every gateway's chain over a shared store: live, gone (missing from merged
                     answers) or retired
  audit retire NAME  --reason TEXT: a gone gateway's chain is no longer expected (admin; recorded)
  audit rotate-key   a new audit signing key from the gateway's next start; the old public key is kept
                     (certs.dir/audit-keys, the JWKS), so older checkpoints still verify

  up                 start the engine, the gateway (and the development SSO provider) on the embedded defaults (npm start)
  gateway            run the gateway alone (HTTPS, server.host:server.port)
  engine             run the bundled engine alone (mTLS, engine.host:engine.port)
  dev-idp            run the DEVELOPMENT OIDC provider alone (127.0.0.1:dev_idp.port)
  config check       validate the configuration and exit
  config docs        print the configuration reference (--write README.md updates it there)

options:
  --url URL          the gateway (or GATEHOUSE_URL; default: from ./gatehouse.yaml, else https://127.0.0.1:8443)
  --ca FILE          the CA that signed the gateway's certificate (or GATEHOUSE_CA; default: certs/ca.crt)
  --no-browser       login --sso: only print the URL
  --config FILE      configuration file (or GATEHOUSE_CONFIG; default ./gatehouse.yaml)
  --json             machine-readable output
  -h, --help         this text
  -v, --version      the version`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string' },
      json: { type: 'boolean', default: false },
      write: { type: 'string' },
      url: { type: 'string' },
      ca: { type: 'string' },
      sso: { type: 'boolean', default: false },
      ldap: { type: 'boolean', default: false },
      user: { type: 'string' },
      'password-stdin': { type: 'boolean', default: false },
      'no-browser': { type: 'boolean', default: false },
      ttl: { type: 'string' },
      dir: { type: 'string' },
      groups: { type: 'string' },
      labels: { type: 'string' },
      remote: { type: 'boolean', default: false },
      // submit
      input: { type: 'string' },
      output: { type: 'string', short: 'o' },
      python: { type: 'string' },
      node: { type: 'string' },
      command: { type: 'string' },
      runtime: { type: 'string' },
      entrypoint: { type: 'string' },
      cores: { type: 'string' },
      memory: { type: 'string' },
      time: { type: 'string' },
      name: { type: 'string' },
      partitions: { type: 'string' },
      // preview
      rows: { type: 'string' },
      partition: { type: 'string' },
      overwrite: { type: 'boolean', default: false },
      backend: { type: 'string' },
      wait: { type: 'boolean', default: false },
      // jobs, logs, audit query
      all: { type: 'boolean', default: false },
      state: { type: 'string' },
      follow: { type: 'boolean', short: 'f', default: false },
      // audit
      group: { type: 'string' },
      action: { type: 'string' },
      object: { type: 'string' },
      decision: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      'request-id': { type: 'string' },
      limit: { type: 'string' },
      cursor: { type: 'string' },
      format: { type: 'string' },
      file: { type: 'string' },
      witness: { type: 'string' },
      reason: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
      version: { type: 'boolean', short: 'v', default: false },
    },
  });
  const [command, sub] = positionals;
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (values.help || !command) {
    // Asked for, it is the answer (stdout, 0); given nothing, it is the error (stderr, 2).
    (values.help ? process.stdout : process.stderr).write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const loaded = () => loadConfig({ path: values.config });
  const target = () => resolveTarget({ url: values.url, ca: values.ca, config: values.config });

  switch (command) {
    case 'up': {
      const { config, file } = loaded();
      return up({ config, configFile: file, json: values.json });
    }
    case 'gateway':
      await serve('gateway', () => startGateway(loaded().config));
      return -1; // keeps running until a signal
    case 'engine':
      await serve('engine', async () => {
        const { config } = loaded();
        // Run alone, the engine creates the certificates too; under `up` they already exist.
        ensureServiceCertificates(config);
        return startEngine(config);
      });
      return -1;
    case 'dev-idp':
      await serve('dev-idp', () => startDevIdp(loaded().config));
      return -1;
    case 'login':
      return login(target(), { sso: values.sso, ldap: values.ldap, user: values.user, passwordStdin: values['password-stdin'], browser: !values['no-browser'], json: values.json });
    case 'logout':
      return logout(target(), values.json);
    case 'whoami':
      return whoami(target(), values.json);
    case 'cert': {
      const ttl = values.ttl === undefined ? undefined : Number(values.ttl);
      if (ttl !== undefined && !(Number.isInteger(ttl) && ttl >= 60)) throw new UsageError('--ttl: a whole number of seconds, at least 60');
      return certificate(target(), { json: values.json, ttl });
    }
    case 'datasets':
      return datasets(target(), values.json);
    case 'get':
      return get(target(), argument(positionals), { output: values.output, partitions: values.partitions, json: values.json });
    case 'preview':
      return preview(target(), argument(positionals), { rows: values.rows, partition: values.partition, json: values.json });
    case 'submit':
      return submit(target(), { ...values, file: argument(positionals) }, { wait: values.wait, json: values.json });
    case 'jobs':
      noArgument(positionals);
      return jobs(target(), { all: values.all, state: values.state, json: values.json });
    case 'status':
      return status(target(), jobId(positionals), values.json);
    case 'logs':
      return logs(target(), jobId(positionals), values.follow);
    case 'cancel':
      return cancel(target(), jobId(positionals), values.json);
    case 'quota':
      noArgument(positionals);
      return quota(target(), values.json);
    case 'policy': {
      const list = (v: string | undefined) => (v === undefined ? undefined : v.split(',').map((x) => x.trim()).filter(Boolean));
      return policyCommand(sub, positionals.slice(2), {
        dir: resolve(values.dir ?? 'policies'),
        json: values.json,
        groups: list(values.groups),
        labels: list(values.labels),
        remote: values.remote || values.url !== undefined,
        target,
      });
    }
    case 'audit': {
      const { user, group, action, object, decision, since, until, limit, cursor, all, json, format, output, file, witness, dir } = values;
      return auditCommand(sub, positionals.slice(2), target, { user, group, action, object, decision, since, until, requestId: values['request-id'], limit, cursor, all, json, format, output, file, witness, dir, reason: values.reason, config: () => loaded().config });
    }
    case 'config':
      configCommand(sub, loaded, { json: values.json, write: values.write });
      return 0;
    default:
      throw new UsageError(`unknown command "${command}"; run gatehouse --help for the list`);
  }
}

/** The command's one optional argument; a second is a usage error (a stray word, a lost quote). */
function argument(positionals: string[]): string | undefined {
  const [command, first, extra] = positionals;
  if (extra !== undefined) throw new UsageError(`${command} takes one argument; got ${positionals.slice(1).join(' ')}`);
  return first;
}

function noArgument(positionals: string[]): void {
  if (positionals.length > 1) throw new UsageError(`${positionals[0]} takes no argument; got ${positionals.slice(1).join(' ')}`);
}

function jobId(positionals: string[]): string {
  const id = argument(positionals);
  if (id === undefined) throw new UsageError(`which job? gatehouse ${positionals[0]} ID (gatehouse jobs lists yours)`);
  return id;
}

const command = process.argv[2] ?? '';
main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => fail(command.startsWith('-') ? '' : command, err, err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? 2 : 1),
);
