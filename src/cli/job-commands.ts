// `gatehouse submit | jobs | status | logs | cancel`: the data scientist's jobs. Each calls the
// job API like any other client; the spec is checked here first so that a typo sends nothing.
import { structured } from './output.js';
import { once } from 'node:events';
import { call, stream, type Target } from './client/api.js';
import { accessToken } from './client/session.js';
import { jobError, type JobContext } from './job-errors.js';
import { renderJobList, renderStatus } from './job-report.js';
import type { SubmitArgs } from './job-spec.js';
import type { Job } from './job-view.js';
import { watchJob } from './job-watch.js';
import { withPlace } from './place-wait.js';
import { printLine as out, printNote, visible, VisibleStream } from './safe-text.js';

const jobPath = (id: string) => `/v1/jobs/${encodeURIComponent(id)}`;

/** The gateway's answer to POST /v1/jobs. */
interface Submitted {
  id: string;
  state: 'queued' | 'pending';
  reason: string | null;
}

/** A call whose errors speak of the job, not of HTTP. */
async function jobCall<T>(target: Target, method: string, path: string, context: JobContext, body?: unknown): Promise<T> {
  try {
    return await call<T>(target, method, path, { token: await accessToken(target), body });
  } catch (err) {
    throw jobError(err, context);
  }
}

export async function submit(target: Target, args: SubmitArgs, options: { wait: boolean; json: boolean }): Promise<number> {
  // Reading a job file and its flags needs the configuration's parsers: loaded for submit only.
  const { buildSpec } = await import('./job-spec.js');
  const spec = buildSpec(args);
  const answer = await jobCall<Submitted>(target, 'POST', '/v1/jobs', { verb: 'submit' }, spec);
  const line = `submitted job ${answer.id} (${answer.state})${answer.state === 'pending' && answer.reason ? `: ${visible(answer.reason)}` : ''}`;
  if (!options.wait) {
    out(options.json ? structured(answer) : line);
    return 0;
  }
  // With --wait, stdout is for the outcome (the summary, or the final job as JSON).
  (options.json ? printNote : out)(line);
  return watchJob(target, answer.id, { json: options.json });
}

export async function jobs(target: Target, options: { all: boolean; state?: string | undefined; json: boolean }): Promise<number> {
  const query = new URLSearchParams();
  if (options.all) query.set('all', '1');
  if (options.state !== undefined) query.set('state', options.state);
  const path = `/v1/jobs${query.toString() ? `?${query}` : ''}`;
  const answer = await jobCall<{ jobs: Job[] }>(target, 'GET', path, { verb: 'jobs' });
  if (options.json) out(structured(answer));
  else if (answer.jobs.length === 0) out(options.all || options.state ? 'no jobs' : 'no jobs yet (gatehouse submit job.yaml starts one)');
  else out(renderJobList(answer.jobs, Date.now(), options.all));
  return 0;
}

export async function status(target: Target, id: string, json: boolean): Promise<number> {
  const job = await jobCall<Job>(target, 'GET', jobPath(id), { verb: 'status', id });
  out(json ? structured(job) : renderStatus(job, Date.now()));
  return 0;
}

export async function cancel(target: Target, id: string, json: boolean): Promise<number> {
  const job = await jobCall<Job>(target, 'DELETE', jobPath(id), { verb: 'cancel', id });
  // A job that ended on its own while the cancel was on its way says so, rather than "cancelled".
  out(json ? structured(job) : job.state === 'cancelled' ? `cancelled job ${id}` : `job ${id} ended before the cancel took effect: ${job.state}`);
  return 0;
}

/**
 * The job's log as it arrives; with follow, until the job ends (the gateway closes the body). What
 * the job wrote is shown, never obeyed: control characters and escape sequences come out escaped
 * (newlines and tabs kept), to a terminal and to a file alike.
 */
export async function logs(target: Target, id: string, follow: boolean): Promise<number> {
  // A reader that went away (`| head`) ends the command quietly, as cat would.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => process.exit(err.code === 'EPIPE' ? 0 : 1));
  const text = new VisibleStream();
  const ask = async () => stream(target, `${jobPath(id)}/logs${follow ? '?follow=1' : ''}`, { token: await accessToken(target), sink: (chunk) => toStdout(text.push(chunk)) });
  try {
    // Followed while the person holds all their waits: asked again once one ends (a 429 comes before any of the log).
    await (follow ? withPlace(ask, { what: `following job ${id}'s log`, note: printNote }) : ask());
  } catch (err) {
    throw jobError(err, { verb: 'logs', id });
  }
  await toStdout(text.end());
  return 0;
}

/** Writes text; waits for the terminal or pipe to drain when it is full. */
function toStdout(text: string): Promise<void> | void {
  if (text !== '' && !process.stdout.write(text)) return once(process.stdout, 'drain').then(() => undefined);
}
