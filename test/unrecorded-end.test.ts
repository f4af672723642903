// What job.finish and the answer say of an admitted job whose record could not be written
// (src/proxy/unrecorded-end.ts), from the state the backend's cancel answered with. The whole path, with a
// real store refusing the write and a real engine, is test/job-record-failure.test.ts; the cases here are
// the ones a real run reaches only by timing (a job that ended before the cancel, a backend that lost it).
import { describe, expect, it } from 'vitest';
import { unrecordedEnd } from '../src/proxy/unrecorded-end.js';

describe('the end of a job whose record could not be written', () => {
  it('says the job was cancelled when the cancel stopped it', () => {
    expect(unrecordedEnd('disk full', true, 'cancelled')).toEqual({
      reason: 'not started: the job record could not be written (disk full)',
      details: { state: 'refused', handed_over: true, backend_cancelled: true, backend_state: 'cancelled' },
      answer: 'the job record could not be written (disk full); nothing runs',
    });
  });

  it('does not say cancelled, nor "nothing runs", of a job the backend ran to its end before the cancel', () => {
    const end = unrecordedEnd('disk full', true, 'succeeded');
    expect(end.details).toMatchObject({ backend_cancelled: false, backend_state: 'succeeded' });
    expect(end.reason).not.toContain('not started');
    expect(end.reason).toContain('the backend had already ended the job (succeeded)');
    expect(end.answer).not.toContain('nothing runs');
  });

  it('does not say cancelled of a job the backend does not know', () => {
    expect(unrecordedEnd('disk full', true, null).details).toMatchObject({ backend_cancelled: false, backend_state: null });
  });

  it('says nothing of the backend when the cancel did not reach it, or nothing was sent', () => {
    expect(unrecordedEnd('disk full', true, undefined).details).toEqual({ state: 'refused', handed_over: true });
    expect(unrecordedEnd('disk full', false, undefined).details).toEqual({ state: 'refused', handed_over: false });
  });
});
