// Until the tamper-evident trail lands, events go to the process log as one JSON line each, with
// the same shape they will have in the store. The secret guard already applies.
import { randomUUID } from 'node:crypto';
import type { AuditEvent, AuditInput, AuditRecorder } from './event.js';
import { assertNoSecrets } from './secrets.js';

export interface AuditLog {
  info(obj: object, msg: string): void;
}

export function logRecorder(log: AuditLog): AuditRecorder {
  return {
    async record(input) {
      assertNoSecrets(input);
      const event: AuditEvent = {
        id: randomUUID(),
        time: new Date().toISOString(),
        policy_version: null,
        request_id: null,
        details: {},
        ...input,
      };
      log.info({ audit: event }, `audit ${event.action} ${event.decision}`);
      return event;
    },
  };
}
