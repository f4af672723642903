// Quota: each limit as a gauge of what I hold now against it, with the policy line it comes from
// (GET /v1/quota: limits with their source and line, usage, pending jobs with their reasons).
import { api } from '../api.js';
import { formatTime, h, pageHeader, replace } from '../dom.js';
import { formatDuration, formatNumber } from '../format.js';

const GAUGES = [
  { limit: 'max_concurrent_jobs', title: 'Jobs running at once', used: (u) => u.running_jobs, unit: '' },
  { limit: 'max_cores', title: 'Cores in use', used: (u) => u.cores, unit: ' cores' },
  { limit: 'max_memory_mb', title: 'Memory held', used: (u) => u.memory_mb, unit: ' MB' },
  { limit: 'core_hours_per_day', title: 'Core-hours, last 24 hours', used: (u) => Math.round((u.core_seconds_24h / 3600) * 100) / 100, unit: ' core-hours' },
];

export async function render(main) {
  const q = await api('/v1/quota');
  const gauges = GAUGES.map((g) => gauge(g, q.limits[g.limit], g.used(q.usage)));
  const runtime = q.limits.max_job_runtime_s;
  replace(
    main,
    pageHeader('Quota', 'What you hold now against each of your limits, and the policy line each limit comes from.'),
    h('section.panel', { 'aria-labelledby': 'gauges-title' }, h('h2#gauges-title', 'Your limits'), gauges, h('div.gauge-note', h('strong', 'Longest job: '), formatDuration(runtime.value), ' ', source(runtime))),
    h(
      'section.panel',
      { 'aria-labelledby': 'pending-title' },
      h('h2#pending-title', 'Waiting jobs'),
      q.pending.length === 0
        ? h('p.muted', 'None of your jobs is waiting.')
        : h('ul.decisions', q.pending.map((p) => h('li', h('a', { href: `#/jobs/${encodeURIComponent(p.id)}` }, p.name || p.id), ` — ${p.reason} (since ${formatTime(p.created_at)})`))),
    ),
    h('p.muted.small', `Policy version ${q.policy_version}.`),
  );
}

function gauge(g, limit, used) {
  const max = limit.value;
  const pct = max > 0 ? Math.min(100, Math.round((used / max) * 100)) : 100;
  const tone = pct >= 100 ? '.full' : pct >= 75 ? '.high' : '';
  const id = `gauge-${g.limit}`;
  return h(
    `div.gauge${tone}`,
    h('div.gauge-head', h('strong', { id }, g.title), h('span', `${formatNumber(used)} of ${formatNumber(max)}${g.unit}`)),
    h('div.progress', { role: 'meter', 'aria-labelledby': id, 'aria-valuemin': 0, 'aria-valuemax': max, 'aria-valuenow': used, 'aria-valuetext': `${used} of ${max}${g.unit}` }, h('span', { style: `width: ${pct}%` })),
    h('div.gauge-source', source(limit)),
  );
}

function source(limit) {
  return limit.line ? h('span.rule-inline', { title: `from the ${limit.source} line` }, limit.line) : h('span.muted.small', limit.source === 'built-in' ? 'built-in default (no policy line)' : `from ${limit.source}`);
}

