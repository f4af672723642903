// Small shared helpers of the data scientist's pages.

/** A dataset's API path: its name's parts, each escaped (names have at most one slash). */
export function datasetPath(name) {
  return `/v1/datasets/${name.split('/').map(encodeURIComponent).join('/')}`;
}

export function formatDuration(seconds) {
  if (!Number.isFinite(seconds)) return '—';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const join = (a, b) => (b ? `${a} ${b}` : a);
  if (seconds < 3600) return join(`${Math.floor(seconds / 60)} min`, Math.round(seconds % 60) ? `${Math.round(seconds % 60)} s` : '');
  return join(`${Math.floor(seconds / 3600)} h`, Math.round((seconds % 3600) / 60) ? `${Math.round((seconds % 3600) / 60)} min` : '');
}

export function formatNumber(n) {
  return Number.isFinite(n) ? n.toLocaleString() : '—';
}
