// Compute, for IT: each backend's slots in use and in all, everyone's pending queue with why each
// job waits (GET /v1/compute/slots), and every user's usage against their limits with the policy
// line each limit comes from (GET /v1/quota/users). Refreshes while the page is open.
import { api } from '../api.js';
import { formatTime, h, notice, pageHeader, replace } from '../dom.js';
import { table } from '../admin-ui.js';

const EVERY_MS = 5000;

function meter(used, max, label) {
  const share = max > 0 ? Math.min(1, used / max) : used > 0 ? 1 : 0;
  const tone = share >= 1 ? 'full' : share >= 0.8 ? 'high' : '';
  return h(`div.meter${tone ? `.${tone}` : ''}`, h('div.progress', { role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': max, 'aria-valuenow': used, 'aria-label': label }, h('span', { style: undefined, dataset: { width: Math.round(share * 100) } })), h('span.meter-text', `${used} / ${max}`));
}

/** Widths set from script (the CSP forbids inline style attributes in markup, not CSSOM). */
function sizeMeters(root) {
  for (const bar of root.querySelectorAll('.progress > span[data-width]')) bar.style.width = `${bar.dataset.width}%`;
}

const LIMITS = [
  ['max_concurrent_jobs', 'Jobs', (u) => u.running_jobs],
  ['max_cores', 'Cores', (u) => u.cores],
  ['max_memory_mb', 'Memory MB', (u) => u.memory_mb],
  ['core_hours_per_day', 'Core-hours / 24 h', (u) => Math.round((u.core_seconds_24h / 3600) * 100) / 100],
];

function limitCell(user, [key, label, used]) {
  const limit = user.limits[key];
  // policy.csv:63: p2, role:admins, max_concurrent_jobs, 8 → "policy.csv:63 · role:admins" (the whole line on hover).
  const [ref, text] = limit.line ? limit.line.split(/: (.*)/s) : [];
  const subject = text?.split(',')[1]?.trim();
  return h('div', meter(used(user.usage), limit.value, `${user.user}: ${label}`), h('span.muted.small.limit-line', { title: limit.line ?? 'built-in default' }, ref ? `${ref} · ${subject ?? ''}` : 'built-in default'));
}

export function render(main) {
  const slots = h('div', { 'aria-live': 'polite' });
  const queue = h('div');
  const users = h('div');
  const stamp = h('p.muted.small');
  let timer;

  async function draw() {
    try {
      const [s, q] = await Promise.all([api('/v1/compute/slots'), api('/v1/quota/users')]);
      replace(
        slots,
        h('div.slot-cards', s.backends.map((b) => h('section.panel.slot-card', h('h3', b.name), meter(b.slots_busy, b.slots_total, `${b.name}: slots in use`), h('p.muted.small', `${b.slots_busy} of ${b.slots_total} slots in use (${b.slots_busy_source === 'engine' ? "the engine's count" : 'granted to running jobs'}); ${b.running} running, ${b.queued} queued`)))),
      );
      replace(
        queue,
        table(
          [
            { label: 'Waiting since', cell: (j) => formatTime(j.created_at) },
            { label: 'User', cell: (j) => j.user },
            { label: 'Job', cell: (j) => h('span', h('code', j.id), j.name ? ` ${j.name}` : '') },
            { label: 'Asks', cell: (j) => `${j.resources.cores} cores × ${j.resources.memory_mb} MB` },
            { label: 'Why it waits', cell: (j) => j.reason },
          ],
          s.pending,
          { caption: 'Pending jobs, oldest first', empty: 'No job is waiting.' },
        ),
      );
      replace(
        users,
        table(
          [
            { label: 'User', cell: (u) => h('div', h('strong', u.user), h('span.muted.small', ` ${u.groups.join(', ') || 'no groups'}`)) },
            ...LIMITS.map((l) => ({ label: l[1], cell: (u) => limitCell(u, l) })),
            { label: 'Pending', num: true, cell: (u) => String(u.pending.length) },
          ],
          q.users,
          { caption: 'Usage against limits, per user', empty: 'Nobody has logged in yet.' },
        ),
        q.truncated ? notice('info', 'Only the 500 people seen most recently are shown.') : null,
      );
      sizeMeters(main);
      replace(stamp, `Updated ${new Date().toLocaleTimeString()}; refreshes every ${EVERY_MS / 1000} s.`);
    } catch (err) {
      replace(slots, notice('error', err.message));
    }
  }

  replace(
    main,
    pageHeader('Compute', 'Engine slots, the pending queue and everyone’s usage against the limits policy gives them.'),
    h('h2', 'Slots'),
    slots,
    h('h2', 'Pending queue'),
    queue,
    h('h2', 'Usage per user'),
    users,
    stamp,
  );
  draw();
  timer = setInterval(draw, EVERY_MS);
  return () => clearInterval(timer);
}
