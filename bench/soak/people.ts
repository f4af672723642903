// One simulated person: logs in through the development IdP's device flow (as `gatehouse login
// --sso` does), then, until the soak's time or request budget is spent, does what their role does
// all day: lists datasets, submits small jobs, polls them, reads their logs, cancels some, looks at
// the quota; an admin also lists everyone's jobs and the policy, an auditor queries the trail, and
// a contractor or auditor now and then asks for what policy refuses them. Everyone refreshes their
// token and logs out and in again from time to time.
import { approveDevice } from '../../test/support/oidc-browser.js';
import type { Client } from './client.js';
import type { Person } from './world.js';

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";
/** A job that runs long enough to be cancelled while it runs (it ends by itself if nobody does). */
const SLOW = "import time\ndef process(i, o, ctx):\n    time.sleep(20)\n    open(o, 'w').write(open(i).read())\n";
const FINAL = ['succeeded', 'failed', 'cancelled'];
/** Jobs one person keeps in flight at most: the engine has two slots for everyone. */
const MAX_ACTIVE = 2;
/** A token older than this is refreshed before the next request (access tokens live 15 minutes). */
const REFRESH_AFTER_MS = 10 * 60 * 1000;

export interface Budget {
  /** True once the soak's time or request budget is spent. */
  spent(): boolean;
  random(): number;
}

export interface SubmittedJob {
  id: string;
  user: string;
  state: string;
  cancelled: boolean;
}

type Role = 'analyst' | 'admin' | 'auditor' | 'contractor';

function roleOf(p: Person): Role {
  if (p.groups.includes('platform-admins')) return 'admin';
  if (p.groups.includes('auditors')) return 'auditor';
  if (p.groups.includes('contractors')) return 'contractor';
  return 'analyst';
}

type Action = 'datasets' | 'submit' | 'submit-slow' | 'poll' | 'logs' | 'cancel' | 'jobs' | 'quota' | 'whoami' | 'refresh' | 'relogin' | 'all-jobs' | 'policy' | 'audit' | 'forbidden';

const WEIGHTS: Record<Role, Partial<Record<Action, number>>> = {
  analyst: { datasets: 2, submit: 3, 'submit-slow': 1, poll: 5, logs: 2, cancel: 1, jobs: 2, quota: 2, whoami: 1, refresh: 0.3, relogin: 0.2 },
  contractor: { datasets: 2, submit: 3, 'submit-slow': 1, poll: 5, logs: 2, cancel: 1, jobs: 2, quota: 2, whoami: 1, forbidden: 1, refresh: 0.3, relogin: 0.2 },
  admin: { datasets: 2, submit: 2, poll: 4, logs: 1, cancel: 0.5, jobs: 1, 'all-jobs': 2, policy: 1, quota: 1, whoami: 1, refresh: 0.3, relogin: 0.2 },
  auditor: { datasets: 1, audit: 4, jobs: 1, quota: 1, whoami: 1, forbidden: 1, refresh: 0.3, relogin: 0.2 },
};

export class SimulatedPerson {
  readonly role: Role;
  readonly jobs: SubmittedJob[] = [];
  private access = '';
  private refreshToken = '';
  private tokenAt = 0;
  private outputs = 0;

  constructor(
    readonly person: Person,
    private readonly client: Client,
    private readonly budget: Budget,
  ) {
    this.role = roleOf(person);
  }

  get token(): string {
    return this.access;
  }

  /** The SSO device flow: start at the gateway, approve at the IdP as a browser would, collect the tokens. */
  async login(): Promise<boolean> {
    const start = await this.client.call('POST', '/v1/auth/device', { body: {} });
    if (start.status !== 200) return false;
    const { device_code, verification_uri_complete } = start.json<{ device_code: string; verification_uri_complete: string }>();
    let outcome: string;
    try {
      outcome = (await approveDevice(verification_uri_complete, { username: this.person.name, password: this.person.password })).outcome;
    } catch (err) {
      outcome = (err as Error).message;
    }
    if (outcome !== 'approved') {
      this.client.recorder.error(`login ${this.person.name}: the IdP ${outcome}`);
      return false;
    }
    const answer = await this.client.call('POST', '/v1/auth/device/token', { body: { device_code } });
    if (answer.status !== 200) return false;
    this.keep(answer.json());
    return true;
  }

  /** Acts until the budget is spent; every action is one to a few requests. */
  async run(): Promise<void> {
    if (!(await this.login())) return;
    while (!this.budget.spent()) {
      if (Date.now() - this.tokenAt > REFRESH_AFTER_MS) await this.refresh();
      await this.act(this.pick());
      // A moment of thought, so a person is not a tight loop.
      await new Promise((r) => setTimeout(r, Math.floor(this.budget.random() * 20)));
    }
  }

  private pick(): Action {
    const weights = Object.entries(WEIGHTS[this.role]) as [Action, number][];
    const total = weights.reduce((a, [, w]) => a + w, 0);
    let x = this.budget.random() * total;
    for (const [action, w] of weights) {
      x -= w;
      if (x < 0) return action;
    }
    return weights[0]![0];
  }

  private active(): SubmittedJob[] {
    return this.jobs.filter((j) => !FINAL.includes(j.state));
  }

  private any<T>(list: readonly T[]): T | undefined {
    return list.length === 0 ? undefined : list[Math.floor(this.budget.random() * list.length)];
  }

  private get(path: string, expect = [200]) {
    return this.client.call('GET', path, { token: this.access, expect });
  }

  private async act(action: Action): Promise<void> {
    switch (action) {
      case 'datasets':
        return void (await this.get('/v1/datasets'));
      case 'jobs':
        return void (await this.get('/v1/jobs?limit=20'));
      case 'all-jobs':
        return void (await this.get('/v1/jobs?all=1&limit=50'));
      case 'quota':
        return void (await this.get('/v1/quota'));
      case 'whoami':
        return void (await this.get('/v1/whoami'));
      case 'policy':
        return void (await this.get('/v1/policy'));
      case 'audit':
        return void (await this.get('/v1/audit?since=10m&limit=20'));
      case 'submit':
      case 'submit-slow':
        if (this.active().length >= MAX_ACTIVE) return this.act('poll');
        return this.submit(action === 'submit-slow' ? SLOW : COPY);
      case 'poll': {
        const job = this.any(this.active());
        if (!job) return this.act('jobs');
        const answer = await this.get(`/v1/jobs/${job.id}`);
        if (answer.status === 200) job.state = answer.json<{ state: string }>().state;
        return;
      }
      case 'logs': {
        const job = this.any(this.jobs);
        if (!job) return this.act('datasets');
        return void (await this.get(`/v1/jobs/${job.id}/logs`));
      }
      case 'cancel': {
        const job = this.any(this.active());
        if (!job) return this.act('quota');
        // 409: it ended on its own between our last look and the cancel.
        const answer = await this.client.call('DELETE', `/v1/jobs/${job.id}`, { token: this.access, expect: [200, 409] });
        if (answer.status === 200) {
          job.state = answer.json<{ state: string }>().state;
          job.cancelled = true;
        }
        return;
      }
      case 'forbidden': {
        // What policy refuses this person: a contractor reading personal data, an auditor running anything.
        const input = this.role === 'contractor' ? 'customers' : 'words';
        const answer = await this.client.call('POST', '/v1/jobs', { token: this.access, body: this.spec(COPY, input), expect: [403] });
        if (answer.status === 201) this.jobs.push({ id: answer.json<{ id: string }>().id, user: this.person.name, state: 'queued', cancelled: false });
        return;
      }
      case 'refresh':
        return this.refresh();
      case 'relogin': {
        await this.client.call('POST', '/v1/auth/logout', { token: this.access, body: { refresh_token: this.refreshToken }, expect: [200, 204] });
        // Logged out is logged out: the old token must be refused from now on.
        await this.client.call('GET', '/v1/whoami', { token: this.access, expect: [401] });
        if (!(await this.login())) await new Promise((r) => setTimeout(r, 1000));
        return;
      }
    }
  }

  /** Into the person's own namespace, which the demo policy lets only them write (scratch-{user}/*). */
  private spec(source: string, input = 'words') {
    this.outputs += 1;
    return { name: 'soak', input, output: `scratch-${this.person.name}/soak-${this.outputs}`, runtime: 'python', source, resources: { cores: 1, memory_mb: 256, time_limit_s: 600 }, max_attempts: 1 };
  }

  private async submit(source: string): Promise<void> {
    // 403 quota_exceeded is a refusal the scenario allows (a person's running jobs may hold their cores).
    const answer = await this.client.call('POST', '/v1/jobs', { token: this.access, body: this.spec(source), expect: [201, 403] });
    if (answer.status === 201) {
      const created = answer.json<{ id: string; state: string }>();
      this.jobs.push({ id: created.id, user: this.person.name, state: created.state, cancelled: false });
    }
  }

  private async refresh(): Promise<void> {
    const answer = await this.client.call('POST', '/v1/auth/token', { body: { grant_type: 'refresh_token', refresh_token: this.refreshToken } });
    if (answer.status === 200) this.keep(answer.json());
    else if (!(await this.login())) await new Promise((r) => setTimeout(r, 1000));
  }

  private keep(pair: Record<string, unknown>): void {
    this.access = pair.access_token as string;
    this.refreshToken = pair.refresh_token as string;
    this.tokenAt = Date.now();
  }
}
