// Building the page without innerHTML: every text a person, a dataset or a job wrote goes in as a
// text node, never as markup (the CSP forbids inline script; this keeps markup out as well).

/**
 * h('tag.class#id', {attr: value, onclick: fn}, ...children): children are nodes, strings (text),
 * numbers, or arrays of them; null, undefined and false are left out.
 */
export function h(spec, attrs, ...children) {
  const [, tag = 'div', rest = ''] = /^([a-z0-9-]*)(.*)$/i.exec(spec) ?? [];
  const el = document.createElement(tag || 'div');
  for (const part of rest.match(/[.#][^.#]+/g) ?? []) {
    if (part[0] === '.') el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = undefined;
  }
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    // Through the CSSOM: the CSP (style-src 'self') refuses style attributes written as markup.
    else if (key === 'style') el.style.cssText = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key in el && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Empties `el` and puts `children` in. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A page's heading and lead paragraph. */
export function pageHeader(title, lead, ...actions) {
  return h('header.page-header', h('div', h('h1', title), lead ? h('p.lead', lead) : null), actions.length ? h('div.actions', actions) : null);
}

/** A message box: kind is info, ok, warn or error (error boxes are announced at once). */
export function notice(kind, ...children) {
  return h(`div.notice.notice-${kind}`, { role: kind === 'error' ? 'alert' : 'status' }, children);
}

/** A labelled field: the label is tied to the control by id. */
let fieldIds = 0;
export function field(label, control, hint) {
  const id = control.id || `f${++fieldIds}`;
  control.id = id;
  const hintId = hint ? `${id}-hint` : undefined;
  if (hintId) control.setAttribute('aria-describedby', hintId);
  return h('div.field', h('label', { for: id }, label), control, hint ? h('p.hint', { id: hintId }, hint) : null);
}

export function formatBytes(n) {
  if (!Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** A small coloured word for a state or a decision. */
export function badge(text, tone = text) {
  return h(`span.badge.badge-${String(tone).replace(/[^a-z_-]/gi, '')}`, text);
}

/**
 * A table cell that stacks on a phone: `label` is shown beside the value there (data-label), and the
 * content sits in one wrapper so the label and the value stay two columns. `cls` is e.g. '.num'.
 */
export function td(label, cls, ...children) {
  return h(`td${cls}`, { dataset: { label } }, h('div.cell', children));
}
