// How many workers each job should have: slots are handed out one at a time to the user holding
// the fewest, so two users with one job each share the engine half and half whatever their
// order of arrival; within a user, older jobs come first. No job gets more than it can use
// (its granted cores, its partitions left).

export interface Claimant {
  id: string;
  user: string;
  /** Order of submission: older first within a user, and the tie-breaker between users. */
  seq: number;
  /** Workers it could use now: min(granted cores, partitions not done). */
  wants: number;
}

export function fairShare(slots: number, jobs: readonly Claimant[]): Map<string, number> {
  const target = new Map<string, number>(jobs.map((j) => [j.id, 0]));
  const byUser = new Map<string, Claimant[]>();
  for (const job of [...jobs].sort((a, b) => a.seq - b.seq)) {
    if (job.wants <= 0) continue;
    byUser.set(job.user, [...(byUser.get(job.user) ?? []), job]);
  }
  const held = new Map<string, number>([...byUser.keys()].map((u) => [u, 0]));
  for (let free = slots; free > 0; free--) {
    let chosen: Claimant | undefined;
    let fewest = Infinity;
    for (const [user, queue] of byUser) {
      const next = queue.find((j) => target.get(j.id)! < j.wants);
      if (next === undefined) continue;
      const count = held.get(user)!;
      if (count < fewest || (count === fewest && chosen !== undefined && next.seq < chosen.seq)) {
        fewest = count;
        chosen = next;
      }
    }
    if (chosen === undefined) break;
    target.set(chosen.id, target.get(chosen.id)! + 1);
    held.set(chosen.user, held.get(chosen.user)! + 1);
  }
  return target;
}
