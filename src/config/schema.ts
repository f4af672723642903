// The configuration schema: the single source of truth for validation, defaults, the
// environment overrides and the README's configuration reference.
import Type, { type Static } from 'typebox';
import { DURATION_PATTERN } from './duration.js';

const Port = (def: number, description: string) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: def, description });

const Host = (def: string, description: string) =>
  Type.String({ minLength: 1, default: def, description });

const Dir = (def: string, description: string) =>
  Type.String({ minLength: 1, default: def, description });

/** A lifetime such as 90s, 15m, 12h or 7d (see durationSeconds). */
const Duration = (def: string, description: string) =>
  Type.String({ pattern: DURATION_PATTERN, default: def, description: `${description} (a number and s, m, h or d)` });

/** A string that may be empty: empty means "not configured". */
const Optional = (description: string, def = '') => Type.String({ default: def, description });

const Section = <T extends Parameters<typeof Type.Object>[0]>(properties: T) =>
  Type.Object(properties, { additionalProperties: false, default: {} });

export const ConfigSchema = Type.Object(
  {
    server: Type.Object(
      {
        host: Host('127.0.0.1', 'address the gateway listens on'),
        port: Port(8443, 'HTTPS port of the gateway (0 picks a free port)'),
        hostnames: Type.Array(Type.String({ minLength: 1 }), {
          default: [],
          description: 'extra DNS names or IPs for the gateway certificate (127.0.0.1, ::1 and localhost are always in it)',
        }),
        public_url: Optional('the URL browsers and IdPs reach the gateway at, for the OIDC callback (empty: https://server.host:server.port)'),
        peer_url: Optional('the URL other gateways over the same store reach this one at, to read its audit trail (empty: https://server.host:server.port, or this machine\'s host name when server.host is 0.0.0.0 or ::); its host must be in the gateway certificate (server.hostnames)'),
        body_limit_bytes: Type.Integer({
          minimum: 1024,
          maximum: 64 * 1024 * 1024,
          default: 2 * 1024 * 1024,
          description: 'largest request body accepted (a job carries up to 1 MiB of source); larger ones get 413 payload_too_large',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    engine: Type.Object(
      {
        host: Host('127.0.0.1', 'address the bundled engine listens on (mTLS only)'),
        port: Port(8444, 'port of the bundled engine (0 picks a free port)'),
        slots: Type.Integer({
          minimum: 0,
          maximum: 4096,
          default: 0,
          description: 'worker processes the engine runs at once, shared fairly between users (0: one per CPU core)',
        }),
        sandbox: Type.Union([Type.Literal('auto'), Type.Literal('bwrap'), Type.Literal('none')], {
          default: 'auto',
          description: 'auto: run tasks inside bubblewrap when it works here, else (as root) in namespaces of their own, with a warning; bwrap: refuse to start without it; none: never use it (see Isolation)',
        }),
        task_uids: Type.String({
          pattern: '^[0-9]+-[0-9]+$',
          default: '200000-265535',
          description: 'when the engine runs as root, each running job gets its own unprivileged uid (and gid) from this range; two engines on one host need ranges that do not overlap (an engine kills every process of the range as it starts, and of a job uid as its job ends)',
        }),
        spare_sandboxes: Type.Boolean({
          default: true,
          description: 'under bubblewrap, start python workers in a spare sandbox (its own area and uid, at nice 19) once the engine has been idle for 250 ms, so the next python job with the same limits skips their start; each spare is given to one job only (see Isolation)',
        }),
        python: Type.String({ minLength: 1, default: 'python3', description: "the python runtime's interpreter, found on the tasks' PATH (/usr/local/bin:/usr/bin:/bin)" }),
        max_output_mb: Type.Integer({ minimum: 1, maximum: 16 * 1024 * 1024, default: 10240, description: "largest output a job may write, in MiB (also each output file's limit)" }),
        log_max_kb: Type.Integer({ minimum: 16, maximum: 1024 * 1024, default: 4096, description: "largest log kept per job, in KiB; beyond it lines are counted, not kept" }),
      },
      { additionalProperties: false, default: {} },
    ),
    jobs: Section({
      max_pending_per_user: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 1000, description: 'jobs a user may have waiting for quota at once; beyond it a submission gets 403 quota_exceeded' }),
      poll_ms: Type.Integer({ minimum: 20, maximum: 60_000, default: 250, description: "how often, in ms, the gateway asks the backends about live jobs (their ends free quota for the pending ones); the safety net behind the bundled engine's pushed changes" }),
      status_cache_ms: Type.Integer({ minimum: 0, maximum: 60_000, default: 500, description: "how long, in ms, a job's status from its backend is reused by GET /v1/jobs/:id" }),
    }),
    data: Section({
      root: Dir('data', 'where datasets live: a folder per dataset with its partition files and _dataset.json (one namespace level allowed, as in scratch/alice); running jobs stage their output in its .staging/ folder; `gatehouse up` adds the demo datasets that are missing'),
      upload_idle_timeout: Duration('60s', 'an upload (PUT of a partition) whose bytes stop coming for this long is stopped and its partial file removed, so it cannot hold its person\'s staging turn (one partition at a time per person) forever'),
      gateway_reads: Type.Union([Type.Literal('auto'), Type.Literal('local'), Type.Literal('engine')], {
        default: 'auto',
        description:
          "who reads a partition a person downloads from the bundled engine: `local`, the gateway opens data.root itself (one TLS pass fewer; the gateway's user needs read access to data.root; it does not start without); `engine`, the engine streams it to the gateway over mTLS (a gateway on another machine); `auto`, local when the engine listens on a loopback address (this machine, this data.root), else engine. The same link-refusing opens either way; what the gateway may not open itself (a folder closed to its user, a partition with a second link the engine made for a running job) is asked of the engine",
      }),
    }),
    policies: Type.Object(
      {
        dir: Dir('policies', 'the policy folder IT edits (model.conf, policy.csv, tests.yaml); a change is reloaded within a second'),
        require_tests: Type.Boolean({ default: true, description: "run the folder's tests.yaml on every load and refuse a version that fails a case (the previous one keeps serving; at start-up the gateway does not start)" }),
      },
      { additionalProperties: false, default: {} },
    ),
    state: Type.Object(
      {
        dir: Dir('var', 'where the embedded store, the engine\'s job database and the job logs live'),
      },
      { additionalProperties: false, default: {} },
    ),
    store: Type.Object(
      {
        url: Type.String({
          default: '',
          description: 'empty for the embedded SQLite store (state.dir/gatehouse.db); postgres://user@host:port/database[?sslmode=require|verify-full] for PostgreSQL (a password in it is taken, but prefer store.password_file)',
        }),
        password_file: Type.String({ default: '', description: "a file holding the PostgreSQL user's password (mode 0600 or 0400, the gateway's own); never logged" }),
      },
      { additionalProperties: false, default: {} },
    ),
    certs: Type.Object(
      {
        dir: Dir('certs', 'the CA and the service certificates, created at first start'),
        client_ttl: Duration('12h', 'lifetime of a user client certificate; a request may ask for less, never more'),
      },
      { additionalProperties: false, default: {} },
    ),
    tokens: Section({
      access_ttl: Duration('15m', 'lifetime of an access token'),
      refresh_ttl: Duration('12h', 'how long one login lasts: refresh tokens rotate on every use, the login ends this long after it began'),
      key_rotation: Duration('24h', 'how often a new token signing key replaces the current one (old keys stay in the JWKS until their tokens expire)'),
    }),
    login: Section({
      max_failures: Type.Integer({ minimum: 1, maximum: 1000, default: 5, description: 'failed logins for one username, within login.failure_window, before its logins are refused' }),
      max_failures_per_address: Type.Integer({ minimum: 1, maximum: 100000, default: 20, description: 'failed logins from one client address (many people may share one behind a NAT) before its logins are refused' }),
      failure_window: Duration('15m', 'the window failures are counted in'),
      lockout: Duration('15m', 'how long logins stay refused after login.max_failures'),
      slowdown_after: Type.Integer({ minimum: 0, maximum: 1000, default: 2, description: 'failures of one username after which each further attempt for it waits longer (0.25 s, doubling, at most 4 s) before its answer' }),
      max_sign_ins_per_address: Type.Integer({ minimum: 1, maximum: 100000, default: 60, description: 'pending browser sign-ins kept per client address (IPv6 by /64) for up to 10 minutes; a start beyond it is never refused, it evicts that address\'s oldest pending sign-in (whoever finishes that one is told to start again)' }),
    }),
    oidc: Section({
      issuer: Optional('issuer URL of an external OpenID Connect provider (empty with dev_idp.enabled uses the development provider; empty without it disables SSO)'),
      client_id: Optional('the gateway\'s client id at the provider'),
      client_secret: Optional('the client secret (empty: a public client with PKCE)'),
      client_secret_file: Optional('a file holding the client secret, instead of oidc.client_secret'),
      scopes: Type.Array(Type.String({ minLength: 1 }), { default: ['openid', 'profile', 'email', 'groups'], description: 'scopes asked of the provider' }),
      username_claim: Type.String({ minLength: 1, default: 'preferred_username', description: 'the ID token claim that names the user' }),
      groups_claim: Type.String({ minLength: 1, default: 'groups', description: 'the ID token claim that lists the user\'s groups' }),
    }),
    dev_idp: Section({
      enabled: Type.Boolean({ default: false, description: 'DEVELOPMENT ONLY: `gatehouse up` also starts an OpenID Connect provider with demo users on 127.0.0.1' }),
      port: Port(8445, 'port of the development provider (0 picks a free port)'),
      users_file: Dir('dev-idp/users.yaml', 'the development provider\'s demo users, passwords and groups'),
    }),
    ldap: Section({
      url: Optional('ldap://host:389 or ldaps://host:636 of the directory (empty disables LDAP login)'),
      start_tls: Type.Boolean({ default: false, description: 'upgrade an ldap:// connection with StartTLS before any bind' }),
      ca_file: Optional('CA certificate(s) that sign the directory\'s TLS certificate (empty: the system CAs)'),
      bind_dn: Optional('the service account that searches for users'),
      bind_password: Optional('the service account\'s password'),
      bind_password_file: Optional('a file holding the service account\'s password, instead of ldap.bind_password'),
      user_base: Optional('where users are searched (for example ou=people,dc=example,dc=org)'),
      user_filter: Type.String({ minLength: 1, default: '(uid={username})', description: 'the search filter for a user; {username} is replaced by the escaped input (Active Directory: (sAMAccountName={username}))' }),
      posix_user_attribute: Type.String({ minLength: 1, default: 'uid', description: 'the attribute whose value becomes the Gatehouse username' }),
      group_attribute: Type.String({ minLength: 1, default: 'memberOf', description: 'the user attribute that lists group DNs' }),
      group_base: Optional('where groups are searched when the user has no group attribute (groupOfNames, posixGroup); empty: no group search'),
      group_filter: Type.String({ minLength: 1, default: '(|(member={dn})(uniqueMember={dn})(memberUid={username}))', description: 'the group search filter; {dn} and {username} are escaped' }),
      timeout_ms: Type.Integer({ minimum: 100, maximum: 60000, default: 5000, description: 'connect and operation timeout' }),
    }),
    slurm: Section({
      url: Optional('base URL of slurmrestd, http(s)://host[:port] (empty: no Slurm backend)'),
      api_version: Type.String({ pattern: '^v0\\.0\\.[0-9]{2}$', default: 'v0.0.38', description: "slurmrestd's OpenAPI version in its paths (/slurm/<version>/...); the one its -s openapi/<version> serves" }),
      jwt_key_file: Optional("Slurm's HS256 JWT key (the file AuthAltParameters=jwt_key= names): at least 32 bytes, readable only by the gateway's user (mode 0600 or 0400); required when slurm.url is set; never logged"),
      token_ttl: Duration('5m', 'lifetime of each Slurm token the gateway mints for a person (from 30s to 1h)'),
      partition: Type.String({ pattern: '^[A-Za-z0-9_.-]{0,64}$', default: '', description: "the Slurm partition jobs go to (empty: the cluster's default)" }),
      account: Type.String({ pattern: '^[A-Za-z0-9_.-]{0,64}$', default: '', description: "the Slurm account jobs are charged to (empty: each user's default account)" }),
      user_attribute: Type.String({ pattern: '^[A-Za-z][A-Za-z0-9-]{0,63}$', default: 'uid', description: "the LDAP attribute read at login that names the person's POSIX account on the cluster" }),
      user_claim: Type.String({ pattern: '^[A-Za-z0-9_.:/-]{0,128}$', default: '', description: "the OIDC ID token claim that names the person's POSIX account on the cluster (empty: people who log in by OIDC have none, and Slurm refuses them)" }),
      timeout_ms: Type.Integer({ minimum: 100, maximum: 120000, default: 10000, description: 'timeout of each request to slurmrestd' }),
      jobs_dir: Optional("where each Slurm job gets its folder (its granted input staged, its outputs and logs), at the same path on the gateway host and every node; the people's accounts must be able to traverse its parents (mode 0711 or 0755); empty: state.dir/slurm-jobs"),
      min_uid: Type.Integer({ minimum: 1, maximum: 4294967294, default: 1000, description: "the lowest uid a person's account may have on the cluster: a job is never run as an account below (system and service accounts)" }),
      max_uid: Type.Integer({ minimum: 1, maximum: 4294967294, default: 59999, description: "the highest uid a person's account may have on the cluster (sites that map ids from a directory, such as SSSD, raise it)" }),
      install_dir: Optional("the Gatehouse checkout on the nodes, built (dist/) and owned by root, whose bin/gatehouse-task.js each task runs (empty: this gateway's own checkout, at the same path)"),
      node: Optional("the node binary on the nodes (empty: the one running this gateway, at the same path)"),
      default: Type.Boolean({ default: false, description: 'Slurm is the backend of a job that names none (else the bundled engine)' }),
      status_user: Type.String({ pattern: '^[a-z_][a-z0-9_-]{0,31}$', default: 'nobody', description: "the account the gateway asks Slurm's health and nodes as (read-only requests; no job ever runs as it)" }),
    }),
    audit: Section({
      dir: Optional('where the audit trail lives (its own SQLite file, audit.db); empty: state.dir/audit. A volume of its own keeps a full disk elsewhere from stopping it'),
      checkpoint_interval: Duration('5s', 'how often the head of the chain is signed (when it moved); a truncated tail is detected back to the last checkpoint'),
      retention: Type.String({ pattern: '^$|^[1-9][0-9]{0,8}(s|m|h|d)$', default: '', description: 'how long events stay in the trail before they are archived to audit.archive_dir and removed, e.g. 400d; empty keeps them forever' }),
      archive_dir: Optional('where retention writes its archives (JSONL that verifies on its own); empty: audit.dir/archive'),
      witness_file: Optional('the witness: every signed checkpoint is appended to this file too (one JSON line, O_APPEND), and the gateway does not start when the trail lacks what it holds; put it where the gateway host cannot rewrite it (another volume, an append-only mount, a shipped log). Empty: state.dir/audit-witness.jsonl; it must not be inside audit.dir'),
    }),
    log: Type.Object(
      {
        level: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
          default: 'info',
          description: 'log level of the gateway and engine',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false, default: {} },
);

export type Config = Static<typeof ConfigSchema>;

/** Keys whose values are paths: relative ones are resolved against the config file's folder. */
export const PATH_KEYS = ['data.root', 'policies.dir', 'state.dir', 'certs.dir', 'dev_idp.users_file', 'oidc.client_secret_file', 'ldap.ca_file', 'ldap.bind_password_file', 'audit.dir', 'audit.archive_dir', 'audit.witness_file', 'slurm.jwt_key_file', 'slurm.jobs_dir', 'store.password_file'] as const;

/** Keys whose values are secrets: masked wherever configuration is shown. */
export const SECRET_KEYS = ['oidc.client_secret', 'ldap.bind_password', 'store.url'] as const;
