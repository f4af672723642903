// Datasets: the ones I may use (GET /v1/datasets decides each, with its labels), my actions on each,
// and the first rows of a partition I may read (GET …/partitions/N?preview=rows).
import { api } from '../api.js';
import { badge, formatBytes, h, notice, pageHeader, replace, td } from '../dom.js';
import { datasetPath, formatNumber } from '../format.js';

const PREVIEW_ROWS = 20;

export async function render(main) {
  const list = h('div', h('p.muted', 'Loading datasets…'));
  const preview = h('section#preview', { 'aria-live': 'polite' });
  replace(main, pageHeader('Datasets', 'The datasets your policy lets you use, with their labels and what you may do with each.'), list, preview);
  const { datasets, policy_version } = await api('/v1/datasets');
  if (datasets.length === 0) {
    replace(list, notice('info', 'No dataset is open to you. Ask your platform team for access.'));
    return;
  }
  const rows = datasets.map((d) => {
    const readable = d.actions.includes('read') || d.actions.includes('admin');
    const button = readable && d.partitions > 0 ? h('button.button.button-small', { type: 'button', 'aria-controls': 'preview', onclick: () => showPreview(preview, d, 0) }, 'Preview') : null;
    return h(
      'tr',
      td('Name', '', h('strong', d.name), d.owner ? h('div.muted', `owner ${d.owner}`) : null),
      td('Labels', '', d.labels?.length ? h('span.chips', d.labels.map((l) => badge(l, 'label'))) : h('span.muted', 'none')),
      td('Your actions', '', h('span.chips', d.actions.map((a) => badge(a)))),
      td('Partitions', '.num', d.partitions ?? '—'),
      td('Rows', '.num', formatNumber(d.rows)),
      td('Size', '.num', d.bytes === undefined ? '—' : formatBytes(d.bytes)),
      td('', '.actions-cell', button),
    );
  });
  replace(
    list,
    h(
      'div.table-wrap',
      h(
        'table.table-stack',
        h('caption.visually-hidden', 'Datasets you may use'),
        h('thead', h('tr', h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Labels'), h('th', { scope: 'col' }, 'Your actions'), h('th.num', { scope: 'col' }, 'Partitions'), h('th.num', { scope: 'col' }, 'Rows'), h('th.num', { scope: 'col' }, 'Size'), h('th', { scope: 'col' }, h('span.visually-hidden', 'Preview')))),
        h('tbody', rows),
      ),
    ),
    h('p.muted.small', `Decided on policy version ${policy_version}.`),
  );
}

async function showPreview(section, dataset, partition) {
  const select = h(
    'select#preview-partition',
    { onchange: () => showPreview(section, dataset, Number(select.value)) },
    Array.from({ length: dataset.partitions }, (_, i) => h('option', { value: String(i), selected: i === partition }, `Partition ${i}`)),
  );
  const body = h('div', h('p.muted', 'Reading the first rows…'));
  replace(
    section,
    h(
      'div.panel',
      h('div.panel-head', h('h2', { id: 'preview-title' }, `Preview of ${dataset.name}`), h('div.inline-field', h('label', { for: 'preview-partition' }, 'Partition'), select)),
      body,
    ),
  );
  section.scrollIntoView({ behavior: 'smooth', block: 'start' });
  try {
    const answer = await api(`${datasetPath(dataset.name)}/partitions/${partition}?preview=${PREVIEW_ROWS}`);
    if (answer.rows.length === 0) {
      replace(body, notice('info', 'This partition has no rows.'));
      return;
    }
    const columns = answer.columns.length ? answer.columns : Object.keys(answer.rows[0]);
    replace(
      body,
      h('p.muted', `The first ${answer.rows.length} row${answer.rows.length === 1 ? '' : 's'} of partition ${partition} (${answer.format}).`),
      h(
        'div.table-wrap',
        h(
          'table.preview-table',
          { 'aria-labelledby': 'preview-title' },
          h('thead', h('tr', columns.map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', answer.rows.map((row) => h('tr', columns.map((c) => h('td', cell(row[c])))))),
        ),
      ),
    );
  } catch (err) {
    replace(body, notice('error', err.message));
  }
}

function cell(value) {
  if (value === null || value === undefined) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}
