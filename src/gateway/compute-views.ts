// IT's view of compute: every user's usage against their limits (each limit with the policy line it
// comes from), and the backends' slots with everyone's pending queue. Both show other people's
// work, so both take what listing everyone's jobs takes (read or admin on job:all, decided here on
// the serving policy like GET /v1/jobs?all=1) and are recorded, allow or deny.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type AuditAction, type AuditRecorder, recordDecision } from '../audit/index.js';
import { type Authorizer, type Decision, identityOf } from '../identity/index.js';
import { NoQuery } from '../http/index.js';
import { forbidden } from '../policy/index.js';
import type { ComputeBackend, JobPath } from '../proxy/index.js';
import type { Store } from '../store/index.js';

export interface ComputeViewDeps {
  jobs: JobPath;
  backends: readonly ComputeBackend[];
  store: Store;
  authorizer: Authorizer;
  audit: AuditRecorder;
}

/** How many people one answer lists at most (the most recently seen first). */
const USERS_MAX = 500;
const EVERYONES_JOBS = { decidedInHandler: "everyone's usage and jobs: read or admin on job:all, as listing everyone's jobs" };

/** Read, else admin, on job:all (whichever grants first, else the refusal of admin), recorded as `action`. */
async function decideEveryone(deps: ComputeViewDeps, request: FastifyRequest, action: AuditAction): Promise<void> {
  const identity = identityOf(request);
  let decision: Decision = deps.authorizer.decide(identity, 'job:all', 'read');
  let requested = 'read';
  if (!decision.allowed) [decision, requested] = [deps.authorizer.decide(identity, 'job:all', 'admin'), 'admin'];
  await recordDecision(deps.audit, request, identity, { action, object: 'job:all', requested, decision });
  if (!decision.allowed) throw forbidden(decision);
}

/** Everyone the gateway knows: who logged in (with the groups of their latest login) and who has jobs (with the groups their latest job was submitted with). */
async function knownPeople(store: Store): Promise<{ user: string; groups: string[]; groups_from: 'login' | 'job'; seen_at: string }[]> {
  const [logins, jobs] = await Promise.all([
    store.db.selectFrom('token_families').select(['user', 'groups', 'created_at']).orderBy('created_at', 'desc').limit(20_000).execute(),
    store.db.selectFrom('jobs').select(['user', 'groups', 'created_at']).orderBy('seq', 'desc').limit(20_000).execute(),
  ]);
  const people = new Map<string, { user: string; groups: string[]; groups_from: 'login' | 'job'; seen_at: string }>();
  for (const r of logins) if (!people.has(r.user)) people.set(r.user, { user: r.user, groups: JSON.parse(r.groups) as string[], groups_from: 'login', seen_at: r.created_at });
  for (const r of jobs) if (!people.has(r.user)) people.set(r.user, { user: r.user, groups: JSON.parse(r.groups) as string[], groups_from: 'job', seen_at: r.created_at });
  return [...people.values()].sort((a, b) => (a.seen_at < b.seen_at ? 1 : -1)).slice(0, USERS_MAX);
}

/** `gatehouse_engine_slots_busy 3` from a backend's own metrics text; null when it has none. */
function busySlots(text: string): number | null {
  const m = /^gatehouse_engine_slots_busy(?:\{[^}]*\})? (\d+(?:\.\d+)?)$/m.exec(text);
  return m ? Number(m[1]) : null;
}

export function installComputeViews(server: FastifyInstance, deps: ComputeViewDeps): void {
  const app = server.withTypeProvider<TypeBoxTypeProvider>();

  app.get('/v1/quota/users', { config: { authorize: EVERYONES_JOBS }, schema: { summary: "Every known user's usage against their limits, each limit with its policy line (read or admin on job:all)", querystring: NoQuery } }, async (request) => {
    await decideEveryone(deps, request, 'quota.list');
    const people = await knownPeople(deps.store);
    const users = [];
    for (const p of people) {
      const q = await deps.jobs.service.quota({ user: p.user, groups: p.groups });
      users.push({ ...q, groups: p.groups, groups_from: p.groups_from, seen_at: p.seen_at });
    }
    return { users, truncated: people.length >= USERS_MAX };
  });

  app.get('/v1/compute/slots', { config: { authorize: EVERYONES_JOBS }, schema: { summary: "Each backend's slots in use and in all, its live jobs, and everyone's pending queue (read or admin on job:all)", querystring: NoQuery } }, async (request) => {
    await decideEveryone(deps, request, 'compute.slots');
    const [running, queued, pending] = await Promise.all(['running', 'queued', 'pending'].map((state) => deps.jobs.book.list({ state, limit: 1000 })));
    const backends = await Promise.all(
      deps.backends.map(async (b) => {
        const { slots } = await b.capacity();
        // The engine's own count of busy workers when it relays one; else what the gateway granted its running jobs.
        const relayed = b.metrics ? await b.metrics().then(busySlots, () => null) : null;
        const mine = (list: typeof running) => list!.filter((r) => r.backend === b.name);
        const granted = mine(running).reduce((n, r) => n + Math.min(r.cores, slots), 0);
        return { name: b.name, location: b.location, slots_total: slots, slots_busy: relayed ?? granted, slots_busy_source: relayed === null ? 'granted' : 'engine', running: mine(running).length, queued: mine(queued).length };
      }),
    );
    const queue = pending!
      .slice()
      .reverse() // oldest first: the order they leave in, per user
      .map((r) => ({ id: r.id, user: r.user, name: r.name, backend: r.backend, reason: deps.jobs.book.pending(r.user).find((p) => p.job === r.id)?.reason ?? r.reason ?? '', resources: { cores: r.cores, memory_mb: r.memory_mb, time_limit_s: r.time_limit_s }, created_at: r.created_at }));
    return { backends, pending: queue };
  });
}
