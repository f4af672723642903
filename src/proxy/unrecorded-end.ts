// The end of an admitted job whose record could not be written: what job.finish says and what the
// person is answered. The handover may have reached the backend before the write failed; the cancel
// sent then answers with the job's final state, and that, not the cancel's mere answer, is what is
// said: a job that ended on its own first (a very quick one) did run, and its output may be committed.
import type { JobState } from '../wire/index.js';

/**
 * `backendState`: undefined when nothing was sent or the cancel did not reach the backend (the
 * leader's sweep cancels the job later), null when the backend does not know the job, else its state
 * once the cancel returned.
 */
export function unrecordedEnd(writeError: string, sent: boolean, backendState: JobState | null | undefined): { reason: string; details: Record<string, unknown>; answer: string } {
  const ranToEnd = backendState === 'succeeded' || backendState === 'failed';
  const details: Record<string, unknown> = { state: 'refused', handed_over: sent };
  if (backendState !== undefined) Object.assign(details, { backend_cancelled: backendState === 'cancelled', backend_state: backendState });
  const what = `the job record could not be written (${writeError})`;
  return ranToEnd
    ? { reason: `${what}; the backend had already ended the job (${backendState})`, details, answer: `${what}; the backend ran the job to its end (${backendState}) before it could be cancelled, and the gateway keeps no record of it` }
    : { reason: `not started: ${what}`, details, answer: `${what}; nothing runs` };
}
