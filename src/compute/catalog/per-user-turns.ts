// One staging change at a time per user. A partition is checked against the user's storage
// allowance as their staging stands when it starts; two sent side by side would each see the
// whole allowance and together cross it (review 29). In turn, each sees what the one before
// left. Other users are not held up; the engine is one process, so a map is the whole lock.
const turns = new Map<string, Promise<void>>();

/** Runs `work` once every earlier `work` of the same user has settled. */
export function inTurn<T>(user: string, work: () => Promise<T>): Promise<T> {
  const before = turns.get(user) ?? Promise.resolve();
  const run = before.then(work);
  const settled = run.then(
    () => undefined,
    () => undefined,
  );
  turns.set(user, settled);
  void settled.then(() => {
    if (turns.get(user) === settled) turns.delete(user);
  });
  return run;
}
