// The bundled engine as its own process (`gatehouse engine`), and a client that talks to it the way
// the gateway does: the gateway's client certificate, and admission tickets signed with its key.
import { type ChildProcess, spawn } from 'node:child_process';
import { createPrivateKey, randomUUID } from 'node:crypto';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type JobSpec, jobSpecHash, type JobStatus, type Resources, signAdmissionTicket, TICKET_HEADER } from '../../src/wire/index.js';
import { cleanEnv, CLI, type Sandbox } from './gatehouse.js';
import { fetchTls, type Response } from './https.js';
import { until } from './until.js';

export interface EngineProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `gatehouse engine` in the sandbox; resolves once it listens. */
export function startEngineProcess(box: Sandbox, env: Record<string, string> = {}): Promise<EngineProcess> {
  // mkdtemp made the sandbox 0700: task uids must be able to walk down to the data root.
  chmodSync(box.dir, 0o711);
  return startServiceProcess(box, 'engine', env);
}

/** `gatehouse <service>` alone in the sandbox (no supervisor); resolves once it listens. */
export function startServiceProcess(box: Sandbox, service: 'engine' | 'gateway' | 'dev-idp', env: Record<string, string> = {}): Promise<EngineProcess> {
  const child = spawn(process.execPath, [CLI, service, '--config', box.configFile], { cwd: box.dir, env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${service} did not listen within 30 s\n${output}`));
    }, 30_000);
    child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr!.on('data', (c: Buffer) => {
      output += c.toString();
      const match = /listening on (https?:\/\/\S+)/.exec(output);
      if (match === null) return;
      clearTimeout(timer);
      resolve({
        url: match[1]!,
        child,
        exited,
        output: () => output,
        stop: async (signal = 'SIGTERM') => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          return exited;
        },
      });
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`${service} exited (${code}) before it listened\n${output}`));
    });
  });
}

export interface TicketOptions {
  user?: string;
  job?: string;
  granted?: Resources;
  /** Sign for this spec instead of the one sent. */
  specFor?: JobSpec;
  key?: ReturnType<typeof createPrivateKey>;
  lifetimeS?: number;
  /** When the ticket was issued (ms since the epoch; default now): a past one mints a ticket already expired. */
  issuedAt?: number;
  /** The gateway's claim that an admin may replace a dataset of this owner (null: one nobody owns). */
  replaces?: { owner: string | null };
}

export class EngineClient {
  private readonly tls;
  readonly gatewayKey;

  constructor(
    readonly url: string,
    certsDir: string,
  ) {
    this.tls = {
      ca: readFileSync(join(certsDir, 'ca.crt'), 'utf8'),
      cert: readFileSync(join(certsDir, 'gateway-client.crt'), 'utf8'),
      key: readFileSync(join(certsDir, 'gateway-client.key'), 'utf8'),
    };
    this.gatewayKey = createPrivateKey(this.tls.key);
  }

  async ticket(spec: JobSpec, o: TicketOptions = {}): Promise<{ job: string; token: string }> {
    const job = o.job ?? `j-${randomUUID().slice(0, 12)}`;
    const token = signAdmissionTicket(
      { job, user: o.user ?? 'alice', spec: jobSpecHash(o.specFor ?? spec), granted: o.granted ?? spec.resources, lifetimeS: o.lifetimeS, ...(o.replaces ? { replaces: o.replaces } : {}) },
      o.key ?? this.gatewayKey,
      o.issuedAt === undefined ? undefined : () => o.issuedAt!,
    );
    return { job, token };
  }

  /** POST /jobs with a fresh ticket (or the one given); the raw response. */
  async post(spec: JobSpec, token?: string): Promise<Response> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token !== undefined) headers[TICKET_HEADER] = token;
    return this.request('POST', '/jobs', { headers, body: JSON.stringify(spec) });
  }

  async submit(spec: JobSpec, o: TicketOptions = {}): Promise<string> {
    const { job, token } = await this.ticket(spec, o);
    const res = await this.post(spec, token);
    if (res.status !== 201) throw new Error(`POST /jobs: ${res.status} ${res.body}`);
    return job;
  }

  async status(id: string): Promise<JobStatus> {
    const res = await this.request('GET', `/jobs/${id}`);
    if (res.status !== 200) throw new Error(`GET /jobs/${id}: ${res.status} ${res.body}`);
    return res.json<JobStatus>();
  }

  /** Polls until the job is in one of `states` (default: a final one). */
  async waitFor(id: string, done: (s: JobStatus) => boolean = (s) => ['succeeded', 'failed', 'cancelled'].includes(s.state), timeoutMs = 60_000): Promise<JobStatus> {
    let last: JobStatus | undefined;
    return until(
      async () => {
        last = await this.status(id);
        return done(last) ? last : undefined;
      },
      timeoutMs,
      () => `job ${id} reaching the awaited state (last seen: ${JSON.stringify(last)})`,
    );
  }

  async logs(id: string): Promise<string> {
    return (await this.request('GET', `/jobs/${id}/logs`)).body;
  }

  request(method: string, path: string, o: { headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
    return fetchTls(`${this.url}${path}`, { ...this.tls, method, ...o });
  }
}
