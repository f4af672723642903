// The auditor's trail: search with the API's filters (GET /v1/audit), a page of events at a time
// (user, action, object, decision, rule, job at a glance), one event's detail with its place in the
// chain (GET /v1/audit/events/:id), export of the current search as CSV or JSON lines
// (GET /v1/audit/export), and a badge from verifying the trail with its last signed checkpoint.
import { api } from '../api.js';
import { badge, field, formatTime, h, notice, pageHeader, replace } from '../dom.js';
import { hashQuery, kv, mono, objectName, setHashQuery, table } from '../admin-ui.js';

const FILTERS = [
  { name: 'user', label: 'User', hint: 'exactly, e.g. alice' },
  { name: 'action', label: 'Action', hint: 'job.submit; job. for every job event; auth.login*' },
  { name: 'object', label: 'Object', hint: 'job:…, dataset:customers, dataset: for every dataset' },
  { name: 'group', label: 'Group', hint: 'a group the actor had' },
  { name: 'since', label: 'Since', hint: '2024-05-01, or an age: 24h, 7d' },
  { name: 'until', label: 'Until', hint: 'ISO 8601 or an age' },
  { name: 'request_id', label: 'Request id', hint: 'the request that caused it' },
];
/** Shown at once; the others fold under "More filters". */
const MAIN = FILTERS.filter((f) => ['user', 'action', 'object'].includes(f.name));
const PAGE = 25;

/** The job an event is about: its object, or details.job for a dataset decision. */
function jobOf(e) {
  if (e.object.startsWith('job:')) return e.object.slice(4);
  return typeof e.details?.job === 'string' ? e.details.job : null;
}

export function render(main, ctx) {
  const query = hashQuery();
  const inputs = {};
  for (const f of FILTERS) inputs[f.name] = h('input', { name: f.name, value: query.get(f.name) ?? '', autocomplete: 'off', spellcheck: false });
  const decision = h('select', { name: 'decision' }, h('option', { value: '' }, 'any'), ['allow', 'deny', 'error'].map((d) => h('option', { value: d, selected: query.get('decision') === d }, d)));
  const verify = h('div.verify-badge', { role: 'status' }, h('span.muted', 'Verifying the trail…'));
  const exports = h('div.actions');
  const results = h('div.results', { 'aria-live': 'polite' });
  const detail = h('div.event-detail');
  let cursors = [null]; // the cursor of each page shown so far: back goes one down
  let pageIndex = 0;

  const filters = () => {
    const p = new URLSearchParams();
    for (const f of FILTERS) if (inputs[f.name].value.trim() !== '') p.set(f.name, inputs[f.name].value.trim());
    if (decision.value) p.set('decision', decision.value);
    return p;
  };

  const drawExports = () => {
    const p = filters();
    const link = (format, text) => {
      const q = new URLSearchParams(p);
      q.set('format', format);
      return h('a.button', { href: `/v1/audit/export?${q}`, download: `audit.${format}`, id: `export-${format}` }, text);
    };
    replace(exports, ctx.can('export_audit') ? [link('csv', 'Export CSV'), link('jsonl', 'Export JSON lines')] : null);
  };

  async function load() {
    const p = filters();
    setHashQuery('audit', p);
    drawExports();
    p.set('limit', String(PAGE));
    const cursor = cursors[pageIndex];
    if (cursor) p.set('cursor', cursor);
    replace(results, h('p.muted', 'Searching…'));
    let page;
    try {
      page = await api(`/v1/audit?${p}`);
    } catch (err) {
      replace(results, notice('error', err.message));
      return;
    }
    cursors = cursors.slice(0, pageIndex + 1);
    if (page.next_cursor) cursors.push(page.next_cursor);
    const rows = page.events;
    replace(
      results,
      table(
        [
          { label: 'Time', cell: (e) => h('time', { datetime: e.time }, formatTime(e.time)) },
          { label: 'User', cell: (e) => e.actor.user ?? h('span.muted', e.actor.auth_method ?? 'system') },
          { label: 'Action', cell: (e) => h('code', e.action) },
          { label: 'Object', cell: (e) => objectName(e.object) },
          { label: 'Decision', cell: (e) => badge(e.decision) },
          { label: 'Rule', cell: (e) => (e.details?.rule_line ? h('code', { title: e.reason }, e.details.rule_line) : h('span.muted', '—')) },
          { label: 'Job', cell: (e) => (jobOf(e) ? h('a', { href: `#/lineage?job=${encodeURIComponent(jobOf(e))}`, title: 'Open its lineage' }, jobOf(e)) : '—') },
          { label: 'Event', cell: (e) => h('button.button.button-small', { type: 'button', 'aria-label': `Details of event ${e.id}`, onclick: () => showEvent(e.id) }, `#${e.id}`) },
        ],
        rows,
        { caption: 'Audit events, newest first', empty: 'No event matches this search.' },
      ),
      h(
        'nav.pager',
        { 'aria-label': 'Pages of results' },
        h('button.button.button-small', { type: 'button', disabled: pageIndex === 0, onclick: () => { pageIndex--; load(); } }, '← Newer'),
        h('span.muted', `Page ${pageIndex + 1} · ${rows.length} event${rows.length === 1 ? '' : 's'}`),
        h('button.button.button-small', { type: 'button', id: 'next-page', disabled: !page.next_cursor, onclick: () => { pageIndex++; load(); } }, 'Older →'),
      ),
    );
  }

  async function showEvent(id) {
    replace(detail, h('p.muted', `Loading event #${id}…`));
    let answer;
    try {
      answer = await api(`/v1/audit/events/${id}`);
    } catch (err) {
      replace(detail, notice('error', err.message));
      return;
    }
    const { event: e, chain } = answer;
    const cp = chain.checkpoint;
    replace(
      detail,
      h(
        'section.panel#event-panel',
        { 'aria-labelledby': 'event-title' },
        h('div.panel-head', h('h2#event-title', `Event #${e.id}`), h('button.button.button-small', { type: 'button', onclick: () => replace(detail) }, 'Close')),
        kv([
          ['When', formatTime(e.time)],
          ['Who', `${e.actor.user ?? 'system'}${e.actor.groups.length ? ` (groups: ${e.actor.groups.join(', ')})` : ''} · ${e.actor.auth_method ?? ''}${e.actor.ip ? ` from ${e.actor.ip}` : ''}`],
          ['Action', h('code', e.action)],
          ['Object', e.object],
          ['Decision', h('span', badge(e.decision), ' ', e.reason)],
          ['Policy version', e.policy_version ? mono(e.policy_version) : null],
          ['Request', e.request_id ? mono(e.request_id) : null],
        ]),
        h('h3.subhead', 'Place in the chain'),
        kv([
          ['Chain', mono(chain.chain_id)],
          ['Sequence', String(chain.sequence)],
          ['Previous hash', mono(chain.prev_hash)],
          ['Hash', mono(chain.hash)],
          ['Signed checkpoint', cp ? h('span', badge('signed', 'ok'), ` checkpoint ${cp.seq ?? '(unnumbered)'} at event #${cp.event_id}, ${formatTime(cp.time)}, key `, h('code', cp.kid)) : h('span', badge('not yet signed', 'pending'), ' the next checkpoint will cover it')],
        ]),
        h('details', h('summary', 'Details as recorded'), h('pre.log', JSON.stringify(e.details, null, 2))),
      ),
    );
    detail.querySelector('h2')?.setAttribute('tabindex', '-1');
    detail.querySelector('h2')?.focus();
  }

  async function loadVerify() {
    try {
      const report = await api('/v1/audit/verify');
      const cp = report.last_checkpoint;
      replace(
        verify,
        report.ok ? badge('✓ chain verified', 'ok') : badge('✗ chain NOT intact', 'deny'),
        h('span.muted', ` ${report.events ?? '?'} events; `, cp ? `last signed checkpoint at event #${cp.event_id}, ${formatTime(cp.time)}` : 'no checkpoint signed yet'),
      );
    } catch (err) {
      replace(verify, badge('not verified', 'pending'), h('span.muted', ` ${err.message}`));
    }
  }

  const form = h(
    'form.panel.search',
    { role: 'search', 'aria-label': 'Search the audit trail', onsubmit: (ev) => { ev.preventDefault(); cursors = [null]; pageIndex = 0; load(); } },
    h('div.form-grid', MAIN.map((f) => field(f.label, inputs[f.name], f.hint)), field('Decision', decision)),
    h('details.more-filters', { open: FILTERS.some((f) => !MAIN.includes(f) && query.get(f.name)) }, h('summary', 'More filters'), h('div.form-grid', FILTERS.filter((f) => !MAIN.includes(f)).map((f) => field(f.label, inputs[f.name], f.hint)))),
    h('div.form-actions', h('button.button.button-primary', { type: 'submit', id: 'search' }, 'Search'), h('button.button', { type: 'button', onclick: () => { for (const i of Object.values(inputs)) i.value = ''; decision.value = ''; cursors = [null]; pageIndex = 0; load(); } }, 'Clear')),
  );

  replace(main, pageHeader('Audit trail', 'Every decision the gateway made, hash-chained and signed. Search, open an event, follow a job, export what you found.', exports), verify, form, detail, results);
  drawExports();
  loadVerify();
  load();
}
