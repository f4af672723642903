// The serving policy (GET /v1/policy): its version and counts, the latest reload and its problems
// with file:line, a reload button for whoever may reload, the access diff of the last reload
// (GET /v1/policy/diff) and the can-i box.
import { api } from '../api.js';
import { badge, formatTime, h, notice, pageHeader, replace } from '../dom.js';
import { kv, mono, problemText, table } from '../admin-ui.js';
import { canIBox } from './can-i.js';

function reloadPanel(p) {
  const r = p.last_reload;
  const failed = r.outcome === 'failed';
  const who = r.trigger.by === 'api' ? `asked by ${r.trigger.user}` : r.trigger.by === 'file-change' ? 'a change to the files' : 'start-up';
  return h(
    'section.panel#last-reload',
    { 'aria-labelledby': 'reload-title' },
    h('h2#reload-title', 'Latest reload'),
    failed
      ? notice('error', h('strong', 'The latest edit was refused. '), `Version ${r.version} keeps serving; the refused files are version ${r.attempted_version ?? '(unreadable)'}.`)
      : notice('ok', `Version ${r.version} ${r.outcome === 'unchanged' ? 'was already serving' : 'was put in service'}.`),
    kv([
      ['When', formatTime(r.at)],
      ['Trigger', who],
      ['Took', `${r.duration_ms} ms`],
    ]),
    r.problems.length
      ? h('div', h('h3.subhead', failed ? 'Problems' : 'Warnings'), h('ul.problems', r.problems.map((x) => h('li', badge(x.severity, x.severity === 'error' ? 'deny' : 'pending'), ' ', h('code.problem', problemText(x))))))
      : null,
  );
}

function diffPanel(answer) {
  const d = answer.diff;
  if (!d) return h('section.panel#policy-diff', h('h2', 'Access diff of the last reload'), h('p.muted', answer.note ?? 'No reload yet.'));
  return h(
    'section.panel#policy-diff',
    { 'aria-labelledby': 'diff-title' },
    h('h2#diff-title', 'Access diff of the last reload'),
    h('p.muted', `From ${d.from_version} to ${d.to_version}, ${formatTime(d.at)} (${d.trigger === 'api' ? `asked by ${d.user}` : d.trigger}).`),
    d.summary.length ? h('ul.diff-summary', d.summary.map((s) => h(`li.diff-${s[0] === '+' ? 'plus' : s[0] === '-' ? 'minus' : 'quota'}`, s))) : h('p', 'No access changed.'),
    d.changes.length
      ? h('details', h('summary', `${d.changes.length} change${d.changes.length === 1 ? '' : 's'} in detail`), table(
          [
            { label: 'Subject', cell: (c) => h('code', c.subject) },
            { label: 'Change', cell: (c) => badge(c.change === 'granted' ? 'gains' : 'loses', c.change === 'granted' ? 'allow' : 'deny') },
            { label: 'Action', cell: (c) => c.action },
            { label: 'Object', cell: (c) => h('span.wrap', c.object) },
            { label: 'Rule', cell: (c) => (c.rule ? h('code.wrap', c.rule) : '—') },
          ],
          d.changes,
        ))
      : null,
  );
}

export async function render(main, ctx) {
  const status = h('div#reload-status', { 'aria-live': 'polite' });
  const body = h('div');
  const reloadButton = ctx.can('reload_policy') ? h('button.button.button-primary', { type: 'button', id: 'reload-policy', onclick: () => reload() }, 'Reload now') : null;

  async function reload() {
    reloadButton.disabled = true;
    replace(status, h('p.muted', 'Reloading…'));
    try {
      const o = await api('/v1/policy/reload', { method: 'POST', body: {} });
      replace(status, notice('ok', `Reloaded: ${o.outcome === 'unchanged' ? `version ${o.version} was already serving` : `version ${o.version} now serves`}.`));
    } catch (err) {
      const problems = err.body?.problems ?? [];
      replace(status, notice('error', h('strong', 'Refused. '), err.body?.version ? `Version ${err.body.version} keeps serving.` : err.message, problems.length ? h('ul.problems', problems.map((x) => h('li', h('code.problem', problemText(x))))) : null));
    } finally {
      reloadButton.disabled = false;
    }
    await draw();
  }

  async function draw() {
    const [p, diff] = await Promise.all([api('/v1/policy'), api('/v1/policy/diff').catch((err) => ({ diff: null, note: err.message }))]);
    replace(
      body,
      h(
        'section.panel#serving',
        { 'aria-labelledby': 'serving-title' },
        h('h2#serving-title', 'Serving'),
        h('div.stats', [
          ['Version', mono(p.version)],
          ['Rules', p.counts.rules],
          ['Role links', p.counts.role_links],
          ['Label links', p.counts.label_links],
          ['Quota lines', p.counts.quota_lines],
        ].map(([k, v]) => h('div.stat', h('span.stat-label', k), h('span.stat-value', v)))),
        kv([
          ['Loaded', formatTime(p.loaded_at)],
          ['Folder', h('code', p.dir)],
          ['Reloads since start', `${p.reloads.loaded} loaded, ${p.reloads.unchanged} unchanged, ${p.reloads.failed} refused`],
        ]),
        p.warnings.length ? h('details', h('summary', `${p.warnings.length} warning${p.warnings.length === 1 ? '' : 's'}`), h('ul.problems', p.warnings.map((w) => h('li', h('code.problem', problemText(w)))))) : null,
      ),
      reloadPanel(p),
      diffPanel(diff),
    );
  }

  replace(main, pageHeader('Policy', 'The version that decides every request, its latest reload, what the last reload changed, and a place to ask.', reloadButton), status, body, canIBox());
  await draw();
}
