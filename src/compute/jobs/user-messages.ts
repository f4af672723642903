// What a job's errors say to its user: cut to their last lines, and without the data root's place on
// the engine's disk. Apart because the worker loop, the preparation and the scheduler all word errors.
const ERROR_TAIL_LINES = 12;

/** Messages reach users: the data root's place on the engine's disk is not theirs to know. */
export function scrub(dataRoot: string, message: string): string {
  return message.replaceAll(dataRoot, '<data root>');
}

export function tail(text: string): string {
  return text.trimEnd().split('\n').slice(-ERROR_TAIL_LINES).join('\n');
}
