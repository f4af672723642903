// Jobs: mine, newest first, with live progress (polled while any is running) and a cancel button;
// #/jobs/<id> shows one job with its log following as it is written (GET …/logs?follow=1, streamed),
// and its state redrawn the moment it changes: each look is a held wait (wait_s with the `seen` of
// the answer before), which the gateway answers when the job changes, not a poll.
import { api, ApiError, request } from '../api.js';
import { badge, formatBytes, formatTime, h, notice, pageHeader, replace, td } from '../dom.js';
import { formatDuration, formatNumber } from '../format.js';

const FINAL = new Set(['succeeded', 'failed', 'cancelled']);
const POLL_MS = 1500;
/** How long the gateway may hold one look at a job (its cap). */
const WAIT_S = 25;
/**
 * A followed log refused for now (429: the person holds as many waits on jobs as they may, in other
 * tabs or clients; or the gateway restarting) is asked again every POLL_MS (or the gateway's Retry-After, if longer), at most this many times
 * (about a minute): as `--wait` and Job.wait() ask again after a 429. Only a job not yet handed to its
 * backend takes such a place, so once it has started the next try is not refused for it.
 */
const FOLLOW_TRIES = 40;

export function render(main, ctx) {
  return ctx.params[0] ? renderJob(main, ctx, ctx.params[0]) : renderList(main, ctx);
}

function progress(job) {
  const { total, done, failed } = job.partitions;
  const pct = total > 0 ? Math.round(((done + failed) / total) * 100) : job.state === 'succeeded' ? 100 : 0;
  const tone = job.state === 'succeeded' ? '.done' : job.state === 'failed' || job.state === 'cancelled' ? '.bad' : '';
  return h(
    'div.progress-cell',
    h(`div.progress${tone}`, { role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct, 'aria-label': `${job.name}: ${done} of ${total} partitions done` }, h('span', { style: `width: ${pct}%` })),
    h('span.muted.small', `${done}/${total} partitions${failed ? `, ${failed} failed` : ''}`),
  );
}

/** Cancel, in two presses (the second confirms), so no native dialog stands in the way of a keyboard. */
// Which cancel buttons were pressed once, kept across the list's redraws while it polls.
const armedJobs = new Set();

function cancelButton(ctx, job, after) {
  if (FINAL.has(job.state) || !(ctx.can('cancel_own_job') || ctx.can('cancel_any_job'))) return null;
  let armed = armedJobs.has(job.id);
  const status = h('span.muted.small', { role: 'status' });
  const button = h(
    'button.button.button-small.button-danger',
    {
      type: 'button',
      'aria-label': `Cancel job ${job.name} (${job.id})`,
      onclick: async () => {
        if (!armed) {
          armed = true;
          armedJobs.add(job.id);
          button.textContent = 'Confirm cancel';
          button.setAttribute('aria-label', `Confirm: cancel job ${job.name}`);
          return;
        }
        button.disabled = true;
        button.textContent = 'Cancelling…';
        try {
          await api(`/v1/jobs/${encodeURIComponent(job.id)}`, { method: 'DELETE' });
          armedJobs.delete(job.id);
          after();
        } catch (err) {
          status.textContent = err.message;
          button.disabled = false;
          button.textContent = 'Cancel';
          armed = false;
          armedJobs.delete(job.id);
        }
      },
    },
    armed ? 'Confirm cancel' : 'Cancel',
  );
  return h('span.cancel', button, status);
}

function renderList(main, ctx) {
  const body = h('div', h('p.muted', 'Loading your jobs…'));
  replace(main, pageHeader('Jobs', 'Your jobs, newest first. Running jobs update as they go.', h('a.button.button-primary', { href: '#/submit' }, 'Submit a job')), body);
  let timer;
  let stopped = false;
  const load = async () => {
    clearTimeout(timer);
    let jobs;
    try {
      ({ jobs } = await api('/v1/jobs?limit=50'));
    } catch (err) {
      if (!stopped) replace(body, notice('error', err.message));
      return;
    }
    if (stopped) return;
    if (jobs.length === 0) {
      replace(body, notice('info', 'You have no jobs yet. ', h('a', { href: '#/submit' }, 'Submit one.')));
      return;
    }
    replace(
      body,
      h(
        'div.table-wrap',
        h(
          'table.table-stack#jobs-table',
          h('caption.visually-hidden', 'Your jobs'),
          h('thead', h('tr', ['Job', 'State', 'Data', 'Progress', 'Created', ''].map((t) => h('th', { scope: 'col' }, t || h('span.visually-hidden', 'Actions'))))),
          h(
            'tbody',
            jobs.map((job) =>
              h(
                'tr',
                { dataset: { job: job.id } },
                td('Job', '', h('a', { href: `#/jobs/${encodeURIComponent(job.id)}` }, h('strong', job.name)), h('div.muted.small.mono', job.id)),
                td('State', '', badge(job.state), job.reason && !FINAL.has(job.state) ? h('div.muted.small', job.reason) : null),
                td('Data', '', h('span.mono', job.input), ' → ', h('span.mono', job.output)),
                td('Progress', '', progress(job)),
                td('Created', '', formatTime(job.created_at)),
                td('', '.actions-cell', cancelButton(ctx, job, load)),
              ),
            ),
          ),
        ),
      ),
    );
    if (jobs.some((j) => !FINAL.has(j.state))) timer = setTimeout(load, POLL_MS);
  };
  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function renderJob(main, ctx, id) {
  const summary = h('div', h('p.muted', 'Loading the job…'));
  const log = h('pre.log#job-log', { tabindex: '0', 'aria-label': 'Job log' }, '');
  const logState = h('span.muted.small#log-state', { role: 'status' }, 'waiting for output…');
  replace(main, h('p.back', h('a', { href: '#/jobs' }, '← All jobs')), summary, h('section.panel', h('div.panel-head', h('h2', 'Log'), logState), log));
  let timer;
  let stopped = false;
  const aborter = new AbortController();
  let following = false;
  let followTimer;
  let refused = 0;

  const follow = async () => {
    if (following) return;
    following = true;
    clearTimeout(followTimer);
    let response;
    try {
      response = await request(`/v1/jobs/${encodeURIComponent(id)}/logs?follow=1`, { headers: { accept: 'text/plain' }, signal: aborter.signal });
    } catch (err) {
      if (stopped) return;
      if (err instanceof ApiError && (err.status === 429 || err.status >= 500) && ++refused <= FOLLOW_TRIES) {
        // Asked again in a moment (and whenever the job's state is redrawn meanwhile).
        following = false;
        logState.textContent = `waiting to follow the log: ${err.status === 429 ? 'you hold as many waits on jobs as you may (other tabs or clients)' : 'the gateway cannot answer it now'}; trying again (${refused} of ${FOLLOW_TRIES})…`;
        // Never sooner than the gateway's Retry-After (its body's retry_after): 5 s when the whole gateway is full.
        const after = typeof err.body.retry_after === 'number' ? err.body.retry_after * 1000 : 0;
        followTimer = setTimeout(follow, Math.min(30_000, Math.max(POLL_MS, after)));
        return;
      }
      logState.textContent = refused > FOLLOW_TRIES ? `log not followed (${err.message}); reload the page to try again` : `log stopped: ${err.message}`;
      return;
    }
    try {
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      logState.textContent = 'following';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
        log.append(value);
        if (atBottom) log.scrollTop = log.scrollHeight;
      }
      logState.textContent = 'complete';
    } catch (err) {
      if (!stopped) logState.textContent = `log stopped: ${err.message}`;
    }
  };

  let seen = null;
  const load = async () => {
    let job;
    try {
      const held = seen === null ? '' : `?wait_s=${WAIT_S}&seen=${encodeURIComponent(seen)}`;
      job = await api(`/v1/jobs/${encodeURIComponent(id)}${held}`, { signal: aborter.signal });
    } catch (err) {
      if (stopped) return;
      // Too many held waits (other tabs), or the gateway restarting: look again plainly in a moment.
      if (seen !== null && err instanceof ApiError && (err.status === 429 || err.status >= 500)) {
        seen = null;
        timer = setTimeout(load, POLL_MS);
        return;
      }
      replace(summary, pageHeader('Job'), notice('error', err instanceof ApiError && err.status === 404 ? `There is no job ${id} of yours.` : err.message));
      return;
    }
    if (stopped) return;
    seen = job.seen ?? null;
    const elapsed = job.started_at ? ((job.finished_at ? Date.parse(job.finished_at) : Date.now()) - Date.parse(job.started_at)) / 1000 : null;
    replace(
      summary,
      pageHeader(job.name, `Job ${job.id}, submitted ${formatTime(job.created_at)}.`, cancelButton(ctx, job, load)),
      h(
        'div.panel',
        h('div.job-state', badge(job.state), progress(job)),
        job.reason && !FINAL.has(job.state) ? notice('info', job.reason) : null,
        job.error ? notice('error', job.error) : null,
        h(
          'dl.kv',
          kv('Id', h('span.mono', job.id)),
          kv('Input', h('span.mono', job.input)),
          kv('Output', job.state === 'succeeded' ? h('span.mono', job.output) : h('span.mono', job.output)),
          kv('Runtime', `${job.runtime} on ${job.backend}`),
          kv('Resources', `${job.resources.cores} ${job.resources.cores === 1 ? 'core' : 'cores'} × ${formatNumber(job.resources.memory_mb)} MB, at most ${formatDuration(job.resources.time_limit_s)}`),
          kv('Rows', `${formatNumber(job.rows_in)} in, ${formatNumber(job.rows_out)} out (${formatBytes(job.bytes_in)} → ${formatBytes(job.bytes_out)})`),
          kv('Created', formatTime(job.created_at)),
          kv('Started', formatTime(job.started_at)),
          kv('Finished', formatTime(job.finished_at)),
          elapsed !== null ? kv('Elapsed', formatDuration(elapsed)) : null,
          kv('Core time', formatDuration(job.core_seconds)),
        ),
      ),
    );
    if (job.state !== 'pending') follow();
    // Held until the job changes: asked again at once (without a token, an older gateway: a poll).
    if (!FINAL.has(job.state)) timer = setTimeout(load, seen === null ? POLL_MS : 0);
  };
  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
    clearTimeout(followTimer);
    aborter.abort();
  };
}

function kv(label, value) {
  return [h('dt', label), h('dd', value)];
}
