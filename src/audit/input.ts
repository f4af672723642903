// What a room hands to record(): the event's schema, the types derived from it (so the types and
// the check cannot drift), and the check itself, compiled once. A malformed event is refused alone
// (AuditInputError, a TypeError) before it can share a group commit with others; the message names
// every field that is wrong and no value but the action's own name.
import Type, { type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { AUDIT_ACTION_NAMES } from './actions.js';

const TextOrNull = (description: string) => Type.Union([Type.String(), Type.Null()], { description });

export const AuditDecisionSchema = Type.Enum(['allow', 'deny', 'error'], { description: 'what was decided; error: the decision could not be carried out' });

export const AuditActorSchema = Type.Object(
  {
    user: TextOrNull('who; null before anyone is known (a failed login) and for the gateway itself'),
    groups: Type.Array(Type.String(), { description: 'their groups at the time, in the order the identity had them' }),
    auth_method: TextOrNull('how they proved it (oidc, ldap, mtls, system)'),
    ip: TextOrNull('the client address, null for what no request caused'),
  },
  { additionalProperties: false },
);

export const AuditInputSchema = Type.Object(
  {
    actor: AuditActorSchema,
    action: Type.Enum(AUDIT_ACTION_NAMES, { description: 'one of AUDIT_ACTIONS (src/audit/actions.ts)' }),
    object: Type.String({ description: 'what it was about: dataset:customers, job:<id>, session:<id>, ...' }),
    decision: AuditDecisionSchema,
    reason: Type.String({ description: 'why, in words: the rule, the refusal' }),
    policy_version: Type.Optional(TextOrNull('the policy version that decided')),
    request_id: Type.Optional(TextOrNull('the request it answered')),
    details: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'never a secret: no passwords, tokens, keys or cookies, not even hashed' })),
  },
  { additionalProperties: false },
);

export type AuditDecision = Static<typeof AuditDecisionSchema>;
export type AuditActor = Static<typeof AuditActorSchema>;
export type AuditInput = Static<typeof AuditInputSchema>;

const check = Compile(AuditInputSchema);

/** An event record() refuses for its shape: the caller's bug, never the trail's outage. */
export class AuditInputError extends TypeError {
  override readonly name = 'AuditInputError';
  constructor(
    /** One line per wrong field: `actor.groups[0]: must be a string`. */
    readonly problems: string[],
    action: string | null,
  ) {
    super(`audit event${action === null ? '' : ` "${action}"`}: ${problems.join('; ')}`);
  }
}

/** Throws an AuditInputError unless `given` is an AuditInput. */
export function assertAuditInput(given: unknown): asserts given is AuditInput {
  if (check.Check(given)) return;
  const action = (given as { action?: unknown } | null)?.action;
  // Named only when it is a plain name: whatever else was passed might be anything, a secret too.
  throw new AuditInputError(problemsOf(given), typeof action === 'string' && /^[a-z][a-z_.]{0,63}$/.test(action) ? action : null);
}

const FIELD_KIND: Record<string, string> = { '': 'an audit event', actor: 'the actor' };
const TYPE_WORD: Record<string, string> = { object: 'an object', string: 'a string', array: 'an array', null: 'null' };

/** The schema's complaints as one line per field, the first for each. */
function problemsOf(given: unknown): string[] {
  const errors = check.Errors(given);
  const byField = new Map<string, string>();
  const say = (field: string, problem: string) => {
    if (!byField.has(field)) byField.set(field, field === '' ? problem : `${field}: ${problem}`);
  };
  for (const e of errors) {
    const at = fieldOf(e.instancePath);
    // A required field given as undefined is as missing as one left out.
    if (e.instancePath !== '' && valueAt(given, e.instancePath) === undefined && ['enum', 'anyOf', 'type'].includes(e.keyword)) {
      say(at, 'required');
      continue;
    }
    switch (e.keyword) {
      case 'required':
        for (const name of e.params.requiredProperties) say(at === '' ? name : `${at}.${name}`, 'required');
        break;
      case 'additionalProperties':
        for (const name of e.params.additionalProperties) say(at === '' ? name : `${at}.${name}`, `not a field of ${FIELD_KIND[at] ?? at}`);
        break;
      case 'enum':
        say(at, at === 'action' ? 'not a known audit action (src/audit/actions.ts)' : `must be ${(e.params.allowedValues as string[]).slice(0, -1).join(', ')} or ${String(e.params.allowedValues.at(-1))}`);
        break;
      case 'anyOf': {
        // A text or null: the alternatives' own type errors say which types were wanted.
        const wanted = errors.filter((x) => x.keyword === 'type' && x.instancePath === e.instancePath && x.schemaPath.startsWith(`${e.schemaPath}/anyOf/`)).flatMap((x) => (x.keyword === 'type' ? [x.params.type].flat() : []));
        say(at, `must be ${wanted.map((t) => TYPE_WORD[t] ?? t).join(' or ')}`);
        break;
      }
      case 'type':
        if (/\/anyOf\/[0-9]+$/.test(e.schemaPath)) break; // one alternative of an anyOf: said with the anyOf
        say(at, `must be ${[e.params.type].flat().map((t) => TYPE_WORD[t] ?? t).join(' or ')}`);
        break;
      case 'boolean':
        break; // additionalProperties: false, said with its additionalProperties error
      default:
        say(at, e.message);
    }
  }
  return byField.size > 0 ? [...byField.values()] : ['malformed'];
}

/** The value a JSON pointer names in `given`, or undefined. */
function valueAt(given: unknown, pointer: string): unknown {
  let v = given;
  for (const p of pointer.split('/').slice(1)) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[p.replaceAll('~1', '/').replaceAll('~0', '~')] : undefined;
  return v;
}

/** `/actor/groups/0` as `actor.groups[0]`. */
function fieldOf(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'))
    .reduce((path, p) => (/^[0-9]+$/.test(p) ? `${path}[${p}]` : path === '' ? p : `${path}.${p}`), '');
}
