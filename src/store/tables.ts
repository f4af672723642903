// Row types of the tables the migrations create.
export interface InstanceTable {
  id: string;
  created_at: string;
}

export interface SigningKeyTable {
  kid: string;
  alg: string;
  public_jwk: string;
  private_pkcs8: string;
  created_at: string;
  signs_until: string;
  published_until: string;
}

export interface TokenFamilyTable {
  id: string;
  user: string;
  groups: string;
  auth_method: string;
  created_at: string;
  expires_at: string;
  revoked_at: string | null;
  revoke_reason: string | null;
  /** The person's POSIX account on the cluster, from the login (0005); null: none. */
  posix_user: string | null;
}

export interface RefreshTokenTable {
  hash: string;
  family_id: string;
  kind: 'refresh' | 'session';
  csrf_hash: string | null;
  issued_at: string;
  expires_at: string;
  used_at: string | null;
}

export interface OidcRequestTable {
  state: string;
  nonce: string;
  code_verifier: string;
  return_to: string;
  expires_at: string;
  /** sha256 of the value in the starting browser's cookie; null on rows from before it was kept. */
  binding_hash: string | null;
}

export interface ClientCertificateTable {
  serial: string;
  user: string;
  groups: string;
  auth_method: string;
  family_id: string | null;
  fingerprint: string;
  not_before: string;
  not_after: string;
  revoked_at: string | null;
  revoked_by: string | null;
}

export interface JobTable {
  id: string;
  seq: number;
  user: string;
  groups: string;
  auth_method: string;
  /** The POSIX account the job runs as on a cluster (from the submitter's login); null: none. */
  posix_user: string | null;
  name: string;
  input: string;
  output: string;
  backend: string;
  backend_id: string | null;
  spec: string;
  spec_hash: string;
  cores: number;
  memory_mb: number;
  time_limit_s: number;
  /** pending | dispatching | queued | running | succeeded | failed | cancelled */
  state: string;
  held: number;
  reason: string | null;
  error: string | null;
  status: string | null;
  core_seconds: number;
  policy_version: string;
  created_at: string;
  admitted_at: string | null;
  finished_at: string | null;
  /** Who cancelled it (0012): its owner or another user policy allowed; null unless cancelled by a person. */
  cancelled_by: string | null;
  /** The login (token family) that submitted it (0014); null: none kept. */
  login_id: string | null;
  /** The audit chain that owes its end its job.finish (0015): set with the end, cleared once that is durable; null otherwise. */
  end_owed: string | null;
}

/** A failed login (locked_until null) or a lockout, for one hashed throttle key (0007). Times in ms. */
export interface LoginThrottleTable {
  key_hash: string;
  at: number;
  locked_until: number | null;
  /** The login in flight this row was reserved for (null: a failure recorded after the fact, or a lockout). */
  attempt: string | null;
}

export interface Tables {
  instance: InstanceTable;
  signing_keys: SigningKeyTable;
  token_families: TokenFamilyTable;
  refresh_tokens: RefreshTokenTable;
  oidc_requests: OidcRequestTable;
  client_certificates: ClientCertificateTable;
  jobs: JobTable;
  login_throttle: LoginThrottleTable;
  gateways: GatewayTable;
  audit_chains: AuditChainTable;
  slurm_jobs: SlurmJobTable;
  slurm_job_logs: SlurmJobLogTable;
  policy_versions: PolicyVersionTable;
}

/** The text of a policy version that served (0013), by its content hash. */
export interface PolicyVersionTable {
  version: string;
  model: string;
  policy: string;
  first_served_at: string;
}

/** Every gateway's audit chain seen over this store (src/store/gateways.ts), kept until retired. */
export interface AuditChainTable {
  /** The chain's identity, drawn in its audit.db when the trail was made. */
  chain_id: string;
  /** The gateway's name (its peer_url's host:port), as its events are labelled. */
  name: string;
  /** Where it was last reached. */
  url: string;
  /** Milliseconds since the epoch. */
  first_seen_at: number;
  seen_at: number;
  /** Set when an admin retired the chain (gateway gone for good, its trail exported); null while it counts. */
  retired_at: number | null;
  retired_by: string | null;
  retired_reason: string | null;
}

/** The gateways over this store now (src/store/gateways.ts): how they reach each other. */
export interface GatewayTable {
  /** Random per process start. */
  id: string;
  /** For people: host:port, or the configured name. */
  name: string;
  /** Where other gateways reach this one (server.peer_url). */
  url: string;
  started_at: string;
  /** Milliseconds since the epoch of the last heartbeat. */
  seen_at: number;
  /** The policy version it served at its last heartbeat. */
  policy_version: string | null;
}

/** The Slurm backend's record of one job (0011), shared by every gateway over the store. */
export interface SlurmJobTable {
  id: string;
  /** 1 until the job's final status is recorded. */
  live: number;
  /** JSON SlurmJobRecord (src/proxy/slurm/job-records.ts). */
  record: string;
  updated_at: string;
}

/** One partition's log of a finished Slurm job, as kept (bounded) once its folder is removed. */
export interface SlurmJobLogTable {
  job_id: string;
  partition: number;
  content: Buffer;
}
