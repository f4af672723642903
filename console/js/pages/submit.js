// Submit a job: a .py or .mjs file run over a dataset's partitions. Every change of the form asks for a
// dry run (POST /v1/jobs/preview): what the job would take, and what the policy and the quota would
// decide, with the rule or the limit's line. Submit is offered once that answer is on screen; a
// refusal on submit shows the rule too.
import { api, ApiError } from '../api.js';
import { badge, field, formatBytes, h, notice, pageHeader, replace } from '../dom.js';
import { formatDuration, formatNumber } from '../format.js';

const RUNTIMES = { '.py': 'python', '.mjs': 'node' };
const MAX_SOURCE = 1024 * 1024;

export async function render(main, ctx) {
  const { datasets } = await api('/v1/datasets');
  const readable = datasets.filter((d) => d.actions.includes('read') || d.actions.includes('admin'));

  const file = h('input', { type: 'file', name: 'program', accept: '.py,.mjs', required: true });
  const name = h('input', { name: 'name', required: true, maxlength: 128, pattern: '[A-Za-z0-9][A-Za-z0-9._-]*', spellcheck: 'false' });
  const input = h('select', { name: 'input', required: true }, h('option', { value: '' }, readable.length ? 'Choose a dataset…' : 'No dataset is open to you'), readable.map((d) => h('option', { value: d.name }, `${d.name}${d.labels?.length ? ` (${d.labels.join(', ')})` : ''}`)));
  const output = h('input', { name: 'output', required: true, maxlength: 200, spellcheck: 'false', value: `scratch-${ctx.me.user}/result` });
  const cores = h('input', { type: 'number', name: 'cores', min: 1, max: 1024, step: 1, value: 1, required: true, inputmode: 'numeric' });
  const memory = h('input', { type: 'number', name: 'memory_mb', min: 64, max: 1048576, step: 64, value: 512, required: true, inputmode: 'numeric' });
  const minutes = h('input', { type: 'number', name: 'time_limit_min', min: 1, max: 10080, step: 1, value: 10, required: true, inputmode: 'numeric' });
  const entrypoint = h('input', { name: 'entrypoint', value: 'process', maxlength: 128, spellcheck: 'false' });
  const labels = h('input', { name: 'labels', maxlength: 400, spellcheck: 'false', placeholder: 'e.g. pii' });

  const previewBox = h('section.panel#job-preview', { 'aria-labelledby': 'preview-heading', 'aria-live': 'polite' }, h('h2#preview-heading', 'Before you submit'), h('p.muted', 'Choose a program and a dataset: the gateway answers what the job would take and whether your policy and quota allow it.'));
  const result = h('div#submit-result');
  const submit = h('button.button.button-primary', { type: 'submit', disabled: true }, 'Submit job');
  const check = h('button.button', { type: 'button' }, 'Check again');
  // The dry run's verdict in one line beside the button too: on a phone the full answer is below the form.
  const verdict = h('p.verdict#preview-verdict', { role: 'status' });

  const form = h(
    'form.panel#submit-form',
    { novalidate: true, 'aria-label': 'Job' },
    h('h2', 'The job'),
    field('Program (.py or .mjs)', file, 'Python: def process(input_path, output_path, ctx). JavaScript: export function process(inputPath, outputPath, ctx). Called once per partition.'),
    h('div.form-grid', field('Job name', name, 'Letters, digits, . _ -'), field('Entry point', entrypoint, 'The function called per partition.')),
    h('div.form-grid', field('Input dataset', input), field('Output dataset', output, 'A new dataset you may write, e.g. scratch-<you>/name.')),
    h('div.form-grid', field('Cores', cores, 'Workers at once.'), field('Memory per worker (MB)', memory), field('Time limit (minutes)', minutes)),
    field('Extra labels on the output', labels, 'Comma-separated; the output always carries the input’s labels too.'),
    verdict,
    h('div.form-actions', submit, check),
    result,
  );
  replace(main, pageHeader('Submit a job', 'Run your program over every partition of a dataset, within your quota.'), h('div.submit-layout', form, h('div', previewBox)));

  let source = null;
  let runtime = null;
  let shown = null; // the spec (as JSON) whose dry run is on screen
  let timer;
  let generation = 0;

  const labelList = () => [...new Set(labels.value.split(',').map((l) => l.trim().toLowerCase()).filter(Boolean))];
  const spec = () => {
    if (source === null || !input.value || !output.value.trim() || !name.value.trim()) return null;
    return {
      name: name.value.trim(),
      input: input.value,
      output: output.value.trim(),
      runtime,
      source,
      ...(entrypoint.value.trim() && entrypoint.value.trim() !== 'process' ? { entrypoint: entrypoint.value.trim() } : {}),
      ...(labelList().length ? { labels: labelList() } : {}),
      resources: { cores: Number(cores.value), memory_mb: Number(memory.value), time_limit_s: Math.round(Number(minutes.value) * 60) },
    };
  };

  const preview = async () => {
    clearTimeout(timer);
    const s = spec();
    submit.disabled = true;
    if (s === null) return;
    const mine = ++generation;
    replace(verdict);
    replace(previewBox, h('h2#preview-heading', 'Before you submit'), h('p.muted', 'Asking the gateway…'));
    try {
      const answer = await api('/v1/jobs/preview', { method: 'POST', body: s });
      if (mine !== generation) return;
      drawPreview(previewBox, answer);
      replace(verdict, badge(answer.outcome === 'would_run' ? 'would run now' : answer.outcome === 'would_wait' ? 'would wait' : 'would be refused', answer.outcome === 'would_run' ? 'succeeded' : answer.outcome === 'would_wait' ? 'pending' : 'failed'), ' ', answer.reason);
      shown = JSON.stringify(s);
      // Offered even when the dry run says no: the gateway decides again on submit and its refusal,
      // with the rule, is shown there too (the policy may have changed in between).
      submit.disabled = false;
    } catch (err) {
      if (mine !== generation) return;
      replace(previewBox, h('h2#preview-heading', 'Before you submit'), problem(err));
    }
  };
  const later = () => {
    submit.disabled = true;
    clearTimeout(timer);
    timer = setTimeout(preview, 400);
  };

  file.addEventListener('change', async () => {
    replace(result);
    source = null;
    const f = file.files?.[0];
    if (!f) return later();
    const ext = f.name.slice(f.name.lastIndexOf('.')).toLowerCase();
    runtime = RUNTIMES[ext] ?? null;
    if (!runtime) {
      replace(result, notice('error', 'Choose a .py (Python) or .mjs (JavaScript module) file.'));
      return;
    }
    if (f.size > MAX_SOURCE) {
      replace(result, notice('error', `The program is ${formatBytes(f.size)}; at most 1 MiB is sent with a job.`));
      return;
    }
    source = await f.text();
    if (!name.value.trim()) name.value = f.name.slice(0, f.name.lastIndexOf('.')).replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'job';
    later();
  });
  for (const el of [name, input, output, cores, memory, minutes, entrypoint, labels]) el.addEventListener('input', later);
  check.addEventListener('click', preview);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const s = spec();
    if (s === null) return;
    if (JSON.stringify(s) !== shown) return preview();
    submit.disabled = true;
    submit.textContent = 'Submitting…';
    replace(result);
    try {
      const created = await api('/v1/jobs', { method: 'POST', body: s });
      ctx.navigate(`#/jobs/${encodeURIComponent(created.id)}`);
    } catch (err) {
      replace(result, problem(err));
      submit.disabled = false;
    } finally {
      submit.textContent = 'Submit job';
    }
  });
}

function drawPreview(box, p) {
  const headline = {
    would_run: ['ok', 'Would run now', 'succeeded'],
    would_wait: ['warn', 'Would wait in your queue', 'pending'],
    refused: ['error', 'Would be refused', 'failed'],
  }[p.outcome];
  const t = p.takes;
  replace(
    box,
    h('h2#preview-heading', 'Before you submit'),
    notice(headline[0], h('strong', headline[1]), reasonAndRule(p.reason, p.rule, p.line), p.limit?.line ? h('span.rule', p.limit.line) : null),
    h('h3', 'What it would take'),
    h(
      'dl.kv',
      h('dt', 'Cores'),
      h('dd', String(t.cores)),
      h('dt', 'Memory'),
      h('dd', `${formatNumber(t.memory_mb_total)} MB (${t.cores} × ${formatNumber(t.memory_mb)} MB)`),
      h('dt', 'Time limit'),
      h('dd', formatDuration(t.time_limit_s)),
      h('dt', 'Core-hours'),
      h('dd', `at most ${t.core_hours_at_most}`),
      t.partitions !== null ? [h('dt', 'Input'), h('dd', `${t.partitions} ${t.partitions === 1 ? 'partition' : 'partitions'}, ${formatNumber(t.input_rows)} rows, ${formatBytes(t.input_bytes)}`)] : null,
    ),
    h('h3', 'Decisions'),
    h(
      'ul.decisions',
      p.datasets.map((d) => h('li', badge(d.allowed ? 'allow' : 'deny'), ' ', h('span', `${d.requested} ${d.object}`), d.rule ? h('span.rule', d.rule) : null)),
    ),
    h('p.muted.small', `Policy version ${p.policy_version}, backend ${p.backend}. Recorded as job.preview.`),
  );
}

/** An API refusal as the person reads it: the message, and the rule or the limit that decided. */
function problem(err) {
  if (!(err instanceof ApiError)) return notice('error', err.message ?? String(err));
  const b = err.body;
  const title = err.code === 'forbidden' ? 'Refused by the policy' : err.code === 'quota_exceeded' ? 'Over your quota' : 'Not submitted';
  return notice(
    'error',
    h('strong', title),
    reasonAndRule(err.message, b.rule, b.line),
    b.limit !== undefined && b.max !== undefined ? h('span.rule', `${b.limit}: ${b.used} used + ${b.requested} requested > ${b.max}`) : null,
    b.field ? h('p.small', `Field: ${b.field}`) : null,
  );
}

/** The reason, and the deciding policy line set apart; a reason that already quotes the rule is not repeated. */
function reasonAndRule(reason, rule, line) {
  if (!rule) return h('p', reason);
  const quoted = reason.includes(rule);
  return [h('p', quoted ? 'Decided by this policy line:' : reason), h('span.rule', rule, line ? ` — ${line}` : '')];
}
