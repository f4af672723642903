// What access an edit changes: the (subject, object, action) triples whose decision flips between
// two versions, and the quota lines that change, summarised the way a reviewer reads them
// ("role:contractors gains read on 3 datasets labelled pii"). Only the subjects and objects an
// edit can reach are compared, so a one-line change to a large policy stays quick; a changed
// model compares everything.
import { lineText } from './lines.js';
import type { PolicySnapshot } from './snapshot.js';
import { ACTIONS } from './vocabulary.js';

export interface AccessChange {
  subject: string;
  object: string;
  action: string;
  change: 'granted' | 'revoked';
  /** The line that decides in the new version (granted) or decided in the old one (revoked). */
  rule: string | null;
}

export interface QuotaChange {
  subject: string;
  limit: string;
  before: number | null;
  after: number | null;
}

export interface PolicyDiff {
  from_version: string;
  to_version: string;
  /** Subjects × objects × actions compared. */
  compared: number;
  changes: AccessChange[];
  quotas: QuotaChange[];
  /** One line per group of changes, for people. */
  summary: string[];
}

const isSubject = (n: string) => n.startsWith('user:') || n.startsWith('group:') || n.startsWith('role:');

export function diffPolicies(before: PolicySnapshot, after: PolicySnapshot): PolicyDiff {
  const texts = (p: PolicySnapshot) => new Set(p.lines.map(lineText));
  const [oldTexts, newTexts] = [texts(before), texts(after)];
  const changed = [...before.lines.filter((l) => !newTexts.has(lineText(l))), ...after.lines.filter((l) => !oldTexts.has(lineText(l)))];
  const modelChanged = before.model.matcher.source !== after.model.matcher.source || before.model.effect !== after.model.effect;
  const versions = [before, after];

  // Every subject and object either version names.
  const allSubjects = new Set<string>();
  const allObjects = new Set<string>();
  for (const p of versions) {
    for (const l of p.lines) {
      if (l.type === 'p') {
        allSubjects.add(l.fields[p.model.fields.sub]!);
        allObjects.add(l.fields[p.model.fields.obj]!);
      } else if (l.type === p.model.subjectRoles) for (const f of l.fields) allSubjects.add(f);
      else if (l.type === p.model.objectRoles) allObjects.add(l.fields[0]!);
      else if (l.type === 'p2' && isSubject(l.fields[0]!)) allSubjects.add(l.fields[0]!);
    }
  }
  const concrete = (o: string) => !o.startsWith('label:');

  let subjects: Set<string>;
  let objects: Set<string>;
  if (modelChanged) {
    subjects = allSubjects;
    objects = new Set([...allObjects].filter(concrete));
  } else {
    // Names the changed lines touch; labels bring the datasets that carry them.
    const touchedSubjects = new Set<string>();
    const touchedObjects = new Set<string>();
    for (const l of changed) {
      for (const p of versions) {
        if (l.type === 'p') {
          touchedSubjects.add(l.fields[p.model.fields.sub]!);
          touchedObjects.add(l.fields[p.model.fields.obj]!);
        } else if (l.type === p.model.subjectRoles) for (const f of l.fields) touchedSubjects.add(f);
        else if (l.type === p.model.objectRoles) for (const f of l.fields) touchedObjects.add(f);
      }
    }
    for (const p of versions) {
      for (const l of p.lines) {
        if (l.type === p.model.objectRoles && touchedObjects.has(l.fields[1]!)) touchedObjects.add(l.fields[0]!);
        if (l.type === 'p' && touchedObjects.has(l.fields[p.model.fields.obj]!)) touchedSubjects.add(l.fields[p.model.fields.sub]!);
      }
    }
    // Subjects that reach a touched name, in either version, and the objects their rules name.
    subjects = new Set([...allSubjects].filter((s) => touchedSubjects.has(s) || versions.some((p) => [...p.nameClosure(s).keys()].some((n) => touchedSubjects.has(n)))));
    objects = new Set([...touchedObjects].filter(concrete));
    for (const p of versions) {
      const reach = new Set<string>();
      for (const s of subjects) for (const n of p.nameClosure(s).keys()) reach.add(n);
      for (const l of p.rules) if (reach.has(l.fields[p.model.fields.sub]!) && concrete(l.fields[p.model.fields.obj]!)) objects.add(l.fields[p.model.fields.obj]!);
    }
  }

  const changes: AccessChange[] = [];
  for (const subject of subjects) {
    const closures = versions.map((p) => p.nameClosure(subject));
    for (const object of objects) {
      for (const action of ACTIONS) {
        const [a, b] = versions.map((p, i) => p.evaluateAs(subject, closures[i]!, object, action, []));
        if (a!.allowed === b!.allowed) continue;
        const decisive = b!.allowed ? after.rules[b!.deciding ?? -1] : (before.rules[a!.deciding ?? -1] ?? after.rules[b!.deciding ?? -1]);
        changes.push({ subject, object, action, change: b!.allowed ? 'granted' : 'revoked', rule: decisive ? lineText(decisive) : null });
      }
    }
  }
  changes.sort((x, y) => (x.subject + x.action + x.object < y.subject + y.action + y.object ? -1 : 1));

  const quotas = quotaChanges(before, after);
  return { from_version: before.version, to_version: after.version, compared: subjects.size * objects.size * ACTIONS.length, changes, quotas, summary: summarize(changes, quotas, after, before) };
}

function quotaChanges(before: PolicySnapshot, after: PolicySnapshot): QuotaChange[] {
  const table = (p: PolicySnapshot) => new Map(p.lines.filter((l) => l.type === 'p2').map((l) => [`${l.fields[0]}\0${l.fields[1]}`, Number(l.fields[2])]));
  const [a, b] = [table(before), table(after)];
  const out: QuotaChange[] = [];
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    const [x, y] = [a.get(key) ?? null, b.get(key) ?? null];
    if (x === y) continue;
    const [subject, limit] = key.split('\0') as [string, string];
    out.push({ subject, limit, before: x, after: y });
  }
  return out.sort((x, y) => (x.subject + x.limit < y.subject + y.limit ? -1 : 1));
}

function labelsOf(p: PolicySnapshot, object: string): string[] {
  const graph = p.model.objectRoles ? p.graphs.get(p.model.objectRoles) : undefined;
  return graph ? [...graph.closure(object).keys()].filter((n) => n.startsWith('label:')).map((n) => n.slice(6)) : [];
}

function summarize(changes: AccessChange[], quotas: QuotaChange[], after: PolicySnapshot, before: PolicySnapshot): string[] {
  const groups = new Map<string, AccessChange[]>();
  for (const c of changes) {
    const key = `${c.change}\0${c.subject}\0${c.action}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  const lines: string[] = [];
  for (const list of groups.values()) {
    const { change, subject, action } = list[0]!;
    const objects = list.map((c) => c.object);
    const labels = new Map<string, number>();
    for (const o of objects) for (const l of new Set([...labelsOf(after, o), ...labelsOf(before, o)])) labels.set(l, (labels.get(l) ?? 0) + 1);
    const labelled = [...labels].filter(([, n]) => n > 0).map(([l, n]) => `${n} labelled ${l}`);
    const what = objects.length === 1 ? objects[0]! : `${objects.length} objects (${objects.slice(0, 5).join(', ')}${objects.length > 5 ? ', ...' : ''})`;
    lines.push(`${change === 'granted' ? '+' : '-'} ${subject} ${change === 'granted' ? 'gains' : 'loses'} ${action} on ${what}${labelled.length ? `; ${labelled.join(', ')}` : ''}`);
  }
  for (const q of quotas) lines.push(`~ ${q.subject} ${q.limit}: ${q.before ?? '(none)'} → ${q.after ?? '(none)'}`);
  return lines;
}
