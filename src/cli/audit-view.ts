// What `gatehouse audit` prints for people: pure functions of the events and reports, so tests read
// the same text the auditor does. Trail text is what users typed (object names, reasons): control
// characters are shown escaped (src/cli/safe-text.ts), so nothing in it can move the cursor or
// recolour a terminal, and the auditor sees that they were there.
import type { AuditEvent, VerifyReport } from '../audit/index.js';
import { visible } from './safe-text.js';

/** GET /v1/audit/verify (and an archive's check): the trail's own check of itself. */
export type { VerifyReport };

const pad2 = (n: number) => String(n).padStart(2, '0');

/** 2024-05-01 11:30:05 in the local zone: seconds are enough to read, --json keeps the rest. */
export function localTime(iso: string): string {
  const d = new Date(iso);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

const clean = visible;
const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, Math.max(0, n - 1))}…` : s);

/** Column widths, from the first page so that later pages line up under the same header. */
export interface Layout {
  user: number;
  action: number;
  object: number;
  /** The reason takes what is left of the terminal; Infinity when not printing to one. */
  reason: number;
}

const CAP = { user: 20, action: 24, object: 40 };
const TIME_WIDTH = 19;
const DECISION_WIDTH = 8;
const REASON_MIN = 20;

export function layoutFor(events: AuditEvent[], columns: number | undefined): Layout {
  const widest = (header: string, cap: number, cell: (e: AuditEvent) => string) => Math.min(cap, Math.max(header.length, ...events.map((e) => clean(cell(e)).length)));
  const user = widest('user', CAP.user, userOf);
  const action = widest('action', CAP.action, (e) => e.action);
  const object = widest('object', CAP.object, (e) => e.object);
  const used = TIME_WIDTH + user + action + object + DECISION_WIDTH + 5 * 2;
  return { user, action, object, reason: columns === undefined ? Infinity : Math.max(REASON_MIN, columns - used) };
}

const userOf = (e: AuditEvent) => e.actor.user ?? '-';

export function headerLine(layout: Layout): string {
  return row(layout, ['time (local)', 'user', 'action', 'object', 'decision', 'reason']);
}

export function eventLines(events: AuditEvent[], layout: Layout): string[] {
  return events.map((e) => row(layout, [localTime(e.time), userOf(e), e.action, e.object, e.decision, e.reason]));
}

function row(layout: Layout, [time, user, action, object, decision, reason]: string[]): string {
  const cell = (s: string, n: number) => clip(clean(s), n).padEnd(n);
  return [cell(time!, TIME_WIDTH), cell(user!, layout.user), cell(action!, layout.action), cell(object!, layout.object), cell(decision!, DECISION_WIDTH), clip(clean(reason!), layout.reason)].join('  ').trimEnd();
}

/** verify for people: one line when intact; each problem with its event when not. */
export function renderVerify(r: VerifyReport): string {
  const span = r.first_id === null ? 'no events yet' : `${r.events} events #${r.first_id}..#${r.last_id}`;
  const facts = [
    r.last_checkpoint ? `last checkpoint #${r.last_checkpoint.event_id} at ${localTime(r.last_checkpoint.time)}` : 'no checkpoint yet',
    ...(r.unsigned_tail > 0 ? [`${r.unsigned_tail} event${r.unsigned_tail === 1 ? '' : 's'} after it not yet signed`] : []),
    ...(r.anchor ? [`starts after #${r.anchor.event_id}, archived in ${clean(r.anchor.file)}`] : []),
  ];
  const took = `checked in ${r.elapsed_ms} ms`;
  if (r.ok) return `trail intact: ${span}, ${facts.join(', ')} (${took})`;
  const lines = r.problems.map((p) => `  ${p.event_id === null ? '-' : `#${p.event_id}`}  ${p.kind}: ${clean(p.message)}`);
  const more = r.more_problems ?? 0;
  if (more > 0) lines.push(`  ... and ${more} more`);
  const total = r.problems.length + more;
  return [`trail NOT intact: ${total} problem${total === 1 ? '' : 's'} in ${span}, ${facts.join(', ')} (${took})`, ...lines].join('\n');
}

/**
 * Counts the records of an export body as it streams by: a JSON line ends at every newline; a CSV
 * record at a newline outside quotes (RFC 4180 fields may hold line breaks; "" toggles twice).
 */
export class RecordCounter {
  count = 0;
  private quoted = false;
  private header: boolean;
  constructor(private readonly format: 'csv' | 'jsonl') {
    this.header = format === 'csv';
  }

  add(chunk: Buffer): void {
    for (const b of chunk) {
      if (this.format === 'csv' && b === 0x22) this.quoted = !this.quoted;
      else if (b === 0x0a && !this.quoted) {
        if (this.header) this.header = false;
        else this.count++;
      }
    }
  }
}
