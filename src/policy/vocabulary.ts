// The words policy lines may use. Everything else is a typo that Casbin would silently never match,
// so lint refuses it.
import { closest } from '../config/index.js';
import { isDatasetName as isWireDatasetName } from '../wire/index.js';
import { ACTIONS, type Action, QUOTA_LIMITS, type QuotaLimit } from './words.js';

export { ACTIONS, type Action, QUOTA_LIMITS, type QuotaLimit };

/** Subjects: people and directory groups come from the Identity; roles exist only in the files. */
export const SUBJECT_KINDS = ['user', 'group', 'role'] as const;

/** Objects the gateway asks about, and labels (datasets join them through g2). */
export const OBJECT_KINDS = ['dataset', 'label', 'audit', 'policy', 'cert', 'job'] as const;

/** The subject of the quota line that applies to everyone. */
export const DEFAULT_SUBJECT = 'default';

/** The names after `user:`, `role:` and `label:`. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]*$/;
/** Directory groups may have inner spaces ("Domain Admins"), as the IdP and LDAP report them. */
const GROUP = /^[A-Za-z0-9](?:[A-Za-z0-9 ._@&'()-]*[A-Za-z0-9._@)-])?$/;
/** What a name may never contain: control characters (they also separate cache keys). */
const CONTROL = /[\u0000-\u001f\u007f]/;

/** True when any of the names holds a control character (never valid; they also separate cache keys). */
export function hasControl(...names: (string | readonly string[])[]): boolean {
  return names.some((n) => (typeof n === 'string' ? CONTROL.test(n) : n.some((x) => CONTROL.test(x))));
}
/** Other objects' names: cert serials, `audit:events`, `policy:files`, job ids. */
const OTHER = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export const isName = (s: string): boolean => NAME.test(s) && s.length <= 256;
export const isGroupName = (s: string): boolean => GROUP.test(s) && s.length <= 256;
/** Dataset names follow the data root's rule (src/wire): lower case, one optional namespace. */
export const isDatasetName = (s: string): boolean => isWireDatasetName(s);

/** Checks a concrete object a request asks about; returns what is wrong, or null. */
export function objectProblem(object: string): string | null {
  const colon = object.indexOf(':');
  if (colon < 0) return `"${object}" has no kind (write e.g. dataset:${object})`;
  const kind = object.slice(0, colon);
  const name = object.slice(colon + 1);
  if (!(OBJECT_KINDS as readonly string[]).includes(kind) || kind === 'label') return `unknown object kind "${kind}" (known: ${OBJECT_KINDS.filter((k) => k !== 'label').join(', ')})`;
  if (kind === 'dataset' ? !isDatasetName(name) : !OTHER.test(name)) return `"${name}" is not a valid ${kind} name`;
  return null;
}

export { closest };
