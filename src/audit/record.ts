// The one way a decision is recorded: when the trail cannot take the event, the request fails
// closed with 503 audit_unavailable, and the cause goes to the operator's log only.
import { GatehouseError } from '../wire/index.js';
import type { AuditActor, AuditInput, AuditRecorder } from './event.js';

export async function recordOrFail(audit: AuditRecorder, event: AuditInput, log?: { error(o: object, m: string): void }): Promise<void> {
  try {
    await audit.record(event);
  } catch (err) {
    log?.error({ err, action: event.action }, 'audit record failed');
    throw new GatehouseError('audit_unavailable', 'the audit trail cannot be written; refusing to decide unaudited');
  }
}

/** The audit actor for a known person (an Identity, or who a login just proved), or nobody yet. */
export function actorOf(identity: { user: string; groups: readonly string[]; auth_method: string } | undefined, ip: string | null): AuditActor {
  return identity ? { user: identity.user, groups: [...identity.groups], auth_method: identity.auth_method, ip } : { user: null, groups: [], auth_method: null, ip };
}

/** The gateway itself, for what no request caused (a policy file changed on disk). */
export const SYSTEM_ACTOR: AuditActor = { user: null, groups: [], auth_method: 'system', ip: null };
