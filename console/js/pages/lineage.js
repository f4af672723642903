// A job's lineage (GET /v1/audit/lineage/:job): inputs → job → output as a small diagram, then each
// step with who, when, the policy version it was decided under and the deciding rule's text as that
// version had it (which may differ from policies/ today).
import { api } from '../api.js';
import { badge, field, formatTime, h, notice, pageHeader, replace } from '../dom.js';
import { hashQuery, objectName, setHashQuery, short, table } from '../admin-ui.js';

function node(kind, title, ...lines) {
  return h(`div.lineage-node.lineage-${kind}`, h('span.lineage-kind', kind), h('strong.wrap', title), lines.filter(Boolean).map((l) => h('span.muted.small', l)));
}

function diagram(l) {
  const arrow = () => h('div.lineage-arrow', { 'aria-hidden': 'true' });
  const inputs = l.inputs.length ? l.inputs.map((i) => node('input', i.dataset, 'read')) : [node('input', 'none recorded')];
  const job = node('job', l.job.name || l.job.id, `by ${l.job.owner ?? '?'}`, l.job.submitted_at ? `submitted ${formatTime(l.job.submitted_at)}` : null, l.job.state ? `state: ${l.job.state}` : null);
  const output = l.output ? node('output', l.output.dataset, l.job.state === 'succeeded' ? 'written' : 'decided, not written') : node('output', 'none recorded');
  const text = `Inputs ${l.inputs.map((i) => i.dataset).join(', ') || 'none'}, read by job ${l.job.id} of ${l.job.owner}, which wrote ${l.output?.dataset ?? 'nothing recorded'}.`;
  return h('figure.lineage', h('div.lineage-flow', { role: 'img', 'aria-label': text }, h('div.lineage-col', inputs), arrow(), h('div.lineage-col', job), arrow(), h('div.lineage-col', output)), h('figcaption.visually-hidden', text));
}

export function render(main) {
  const query = hashQuery();
  const input = h('input', { name: 'job', value: query.get('job') ?? '', placeholder: 'a job id', autocomplete: 'off', spellcheck: false, required: true, pattern: '[A-Za-z0-9_-]{1,64}' });
  const out = h('div', { 'aria-live': 'polite' });

  async function load(job) {
    setHashQuery('lineage', new URLSearchParams({ job }));
    replace(out, h('p.muted', 'Reading the trail…'));
    let l;
    try {
      l = await api(`/v1/audit/lineage/${encodeURIComponent(job)}`);
    } catch (err) {
      replace(out, notice(err.status === 404 ? 'warn' : 'error', err.message));
      return;
    }
    const versions = l.policy_versions.map((v) => h('li', h('code', v.version), v.stored ? ` first served ${formatTime(v.first_served_at)}` : ' (its text is not stored here)'));
    replace(
      out,
      h('section.panel', h('h2', `Job ${l.job.id}`), diagram(l), h('p.muted.small', `Decided under policy version${l.policy_versions.length === 1 ? '' : 's'}:`), h('ul.plain', versions)),
      h('h2.subhead', 'Steps, in chain order'),
      table(
        [
          { label: 'When', cell: (s) => h('time.nowrap', { datetime: s.time, title: formatTime(s.time) }, new Date(s.time).toLocaleTimeString()) },
          { label: 'Who', cell: (s) => s.user ?? 'system' },
          { label: 'Step', cell: (s) => h('span', h('code.nowrap', s.action), s.requested ? ` (${s.requested})` : '') },
          { label: 'Object', cell: (s) => objectName(s.object) },
          { label: 'Decision', cell: (s) => badge(s.decision) },
          { label: 'Policy version', cell: (s) => short(s.policy_version, 8) },
          { label: 'Deciding rule, as it was', cell: (s) => (s.rule_line ? h('div', h('code', s.rule_line), s.rule_text ? h('span.rule', s.rule_text) : h('span.muted', ' (text not stored)')) : h('span.muted.small', s.reason)) },
        ],
        l.steps,
        { caption: `Steps of job ${l.job.id}` },
      ),
    );
  }

  replace(
    main,
    pageHeader('Lineage', 'Where a job’s data came from and went: inputs → job → output, each decision with the rule that made it, as that policy version had it.'),
    h('form.panel.inline-form', { onsubmit: (ev) => { ev.preventDefault(); if (input.value.trim()) load(input.value.trim()); } }, field('Job', input, 'Open one from the audit trail, or paste its id.'), h('button.button.button-primary', { type: 'submit', id: 'show-lineage' }, 'Show lineage')),
    out,
  );
  if (input.value) load(input.value);
}
