// Pieces the auditor's and IT's pages share: a table that folds into labelled rows on a phone, a
// key/value list, a confirmation dialog (a real <dialog>: focus stays in it, Escape cancels), and
// reading the page's own query from the address (#/audit?user=alice).
import { h } from './dom.js';

/**
 * A table: columns are {label, cell(row) → node|string, num?}; rows an array. On a phone each row
 * becomes a block of "label value" lines (data-label, see admin.css).
 */
export function table(columns, rows, { caption, empty = 'Nothing to show.', rowAttrs } = {}) {
  if (rows.length === 0) return h('p.muted.empty', empty);
  return h(
    'div.table-wrap',
    h(
      'table.table-stack',
      caption ? h('caption.visually-hidden', caption) : null,
      h('thead', h('tr', columns.map((c) => h(c.num ? 'th.num' : 'th', { scope: 'col' }, c.label)))),
      h('tbody', rows.map((row) => h('tr', rowAttrs ? rowAttrs(row) : {}, columns.map((c) => h(c.num ? 'td.num' : 'td', { dataset: { label: c.label } }, c.cell(row) ?? '—'))))),
    ),
  );
}

/** A definition list of [term, value] pairs (value null: left out). */
export function kv(pairs) {
  return h('dl.kv', pairs.filter(([, v]) => v !== null && v !== undefined).flatMap(([k, v]) => [h('dt', k), h('dd', v)]));
}

/** Monospace text that may be long (hashes, rules): wraps anywhere, selectable. */
export function mono(text) {
  return h('code.wrap', String(text));
}

/** The query part of the address: #/audit?user=alice → URLSearchParams. */
export function hashQuery() {
  const hash = location.hash;
  const at = hash.indexOf('?');
  return new URLSearchParams(at < 0 ? '' : hash.slice(at + 1));
}

/** Sets the page's query in the address without reloading the page. */
export function setHashQuery(page, params) {
  const q = new URLSearchParams([...params].filter(([, v]) => v !== ''));
  const next = `#/${page}${q.toString() ? `?${q}` : ''}`;
  if (location.hash !== next) history.replaceState(null, '', next);
}

/**
 * Asks "are you sure?" in a modal dialog; resolves true when the person confirms. `danger` names
 * the confirming button; the message is text, never markup.
 */
export function confirmDialog({ title, message, danger }) {
  return new Promise((resolve) => {
    const dialog = h(
      'dialog.confirm',
      { 'aria-labelledby': 'confirm-title' },
      h(
        'form',
        { method: 'dialog' },
        h('h2#confirm-title', title),
        h('p', message),
        h('div.form-actions', h('button.button.button-danger', { type: 'submit', value: 'yes', id: 'confirm-yes' }, danger), h('button.button', { type: 'submit', value: 'no', autofocus: true }, 'Cancel')),
      ),
    );
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'yes');
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A problem as people read it: policy.csv:12: message (hint). */
export function problemText(p) {
  return `${p.file}${p.line ? `:${p.line}` : ''}: ${p.message}${p.hint ? ` (hint: ${p.hint})` : ''}`;
}

/** A short hash or version for a table cell, the whole of it on hover. */
export function short(text, n = 12) {
  if (!text) return '—';
  return h('span.mono', { title: text }, text.length > n ? `${text.slice(0, n)}…` : text);
}

/** An object name that may wrap only after its `:` and `/` (dataset:scratch/<wbr>tiny), never mid-word. */
export function objectName(text) {
  const parts = String(text).split(/(?<=[:/])/);
  return h('span.object-name', parts.flatMap((p, i) => (i ? [h('wbr'), p] : [p])));
}
