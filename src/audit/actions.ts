// Every action the trail records, with what it means: a closed list, so a typo in a room is a
// compile error (AuditAction) and a refusal at run time (the input schema, input.ts). A new audit
// action is added here, with its meaning, before any room records it.

/** Each audit action and its meaning, for auditors (README's table is this list). */
export const AUDIT_ACTIONS = {
  'auth.login': 'a person logged in (OIDC in a browser or by device code, or an LDAP password); details.method, details.flow, details.session_id',
  'auth.login_failed': 'a login attempt was refused (wrong credentials, a provider error, throttled); details.attempted_user when it is a plain username',
  'auth.rejected': "a request's credential was refused before its route ran (missing, expired, revoked, forged)",
  'auth.logout': 'a login was ended by its owner; details.certificates_revoked names the certificates it took along',
  'token.refresh': 'a refresh token was traded for a new pair (allow), or refused (deny; a reused one ends its login)',
  'cert.issue': 'a client certificate was issued for a CSR, or refused',
  'cert.list': "listing everyone's client certificates (?all=1) was decided",
  'cert.revoke': 'a client certificate was revoked (by its owner, by an admin, or because its login ended), or the revocation refused',
  'dataset.list': "the datasets the caller may use were listed",
  'dataset.authorize': "a permission a job needs on a dataset was decided, or a person's read of one through GET /v1/datasets/… (details.via; a missing dataset is recorded as a deny); details.requested is read, write or overwrite, details.job the job",
  'dataset.read': "a job started reading its input dataset, or a person was served a partition through the gateway: details.partition, details.bytes served, details.range, details.complete (false: the download stopped early), or details.preview_rows for a preview",
  'dataset.write': "a job's output dataset was committed (created or replaced), with its labels; details.via is upload for one a person uploaded",
  'dataset.delete': "a person asked to remove a dataset (DELETE /v1/datasets/…): the decision (owner, or admin by policy; a refusal, or a live job using it, is a deny), then the outcome (details.outcome removed or failed)",
  'dataset.upload': "a partition of a person's upload was staged (PUT /v1/datasets/…/partitions/n): details.partition and details.bytes, or the refusal (namespace, ownership, storage quota)",
  'job.submit': 'a job was submitted: admitted to a backend at once, or queued as pending',
  'job.admit': 'a pending job was admitted out of the queue; or, as it left the queue, refused because the directory no longer has its owner (deny, reason owner_gone) or the login that submitted it has ended (deny, reason login_ended)',
  'job.start': 'a job was seen started on its backend',
  'job.finish': 'a job ended: succeeded, failed or cancelled (state, rows, core-seconds), or could not be started',
  'job.cancel': "a job was cancelled, or cancelling someone else's job was refused",
  'job.read': "looking at someone else's job (status, logs) was decided",
  'job.preview': 'a dry run of a job (POST /v1/jobs/preview): what the policy and the quota would decide, with the rule or limit; nothing ran or was held',
  'job.list': "listing everyone's jobs (?all=1) was decided",
  'quota.pending': 'a job over its running quota was queued as pending',
  'quota.list': "listing every user's usage against their limits was decided",
  'compute.slots': "looking at the backends' slots and everyone's pending queue was decided",
  'quota.reject': 'a job was refused by quota (at submit, or from the queue when the quota was lowered)',
  'policy.view': 'reading the policy files was decided',
  'policy.reload_request': "an admin's request to reload the policy was decided",
  'policy.reload': 'a policy version was put in service (or a reload found it already serving)',
  'policy.reload_failed': 'a policy reload was refused; the version in service keeps serving',
  'policy.explain': 'explaining why a user may or may not do an action was decided',
  'audit.query': "an auditor's query, export or verify of the trail was decided; details.kind says which",
  'audit.chains': "listing every gateway's chain over the shared store (live, gone, retired) was decided",
  'audit.chain_retire': "retiring a gone gateway's chain (no longer expected in merged answers) was decided; details.gateway, details.reason",
  'audit.chain_resumed': "a gateway whose chain had been retired runs again: its chain counts again; details.gateway and the retirement it undoes (retired_at, retired_by, retired_reason)",
  'audit.recovered': 'the trail could be written again after an outage: for how long, why, how many decisions were refused',
  'audit.witness_reset': 'the witness file was started again from the trail\'s newest checkpoint (GATEHOUSE_AUDIT_WITNESS_RESET)',
} as const satisfies Record<string, string>;

export type AuditAction = keyof typeof AUDIT_ACTIONS;

/** The actions, in the order above. */
export const AUDIT_ACTION_NAMES = Object.keys(AUDIT_ACTIONS) as [AuditAction, ...AuditAction[]];

/** True for a listed action (never for an inherited name such as `toString`). */
export function isAuditAction(name: unknown): name is AuditAction {
  return typeof name === 'string' && Object.hasOwn(AUDIT_ACTIONS, name);
}
