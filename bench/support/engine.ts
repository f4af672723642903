// The bundled engine as its own process (`gatehouse engine --config FILE`), and a client that talks
// to it as the gateway does: the gateway's mTLS client certificate, admission tickets signed with
// its key. One kept-alive connection, so polling a job's status costs no TLS handshake each time.
import { createPrivateKey, type KeyObject, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { FINAL_STATES, type JobSpec, jobSpecHash, type JobStatus, signAdmissionTicket, TICKET_HEADER } from '../../src/wire/index.js';
import { until } from '../../test/support/until.js';
import { EngineEventStream } from './engine-events.js';
import { type Service, startService } from './service-process.js';


export type EngineProcess = Service;

/** `gatehouse engine --config <configFile>` from the config's folder; resolves once it listens. */
export function startEngineProcess(configFile: string, cwd: string): Promise<EngineProcess> {
  return startService(configFile, cwd, 'engine');
}

export class EngineClient {
  private readonly agent: Agent;
  private readonly key: KeyObject;
  private readonly streamAgent: Agent;
  private stream: Promise<EngineEventStream> | null = null;

  constructor(
    readonly url: string,
    certsDir: string,
  ) {
    const key = readFileSync(join(certsDir, 'gateway-client.key'), 'utf8');
    this.key = createPrivateKey(key);
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: 1,
      ca: readFileSync(join(certsDir, 'ca.crt'), 'utf8'),
      cert: readFileSync(join(certsDir, 'gateway-client.crt'), 'utf8'),
      key,
    });
    // GET /events holds its connection for good: never the calls' one.
    this.streamAgent = new Agent({ keepAlive: false, ca: readFileSync(join(certsDir, 'ca.crt'), 'utf8'), cert: readFileSync(join(certsDir, 'gateway-client.crt'), 'utf8'), key });
  }

  /** The engine's pushed job changes, opened on first use and kept (open it before submitting what you wait for). */
  events(): Promise<EngineEventStream> {
    this.stream ??= EngineEventStream.open(this.url, this.streamAgent);
    return this.stream;
  }

  /** Signs a ticket for the spec as the gateway would and POSTs it; the job's id. */
  async submit(spec: JobSpec, user = 'bench'): Promise<string> {
    const job = `bench-${randomUUID().slice(0, 12)}`;
    const ticket = signAdmissionTicket({ job, user, spec: jobSpecHash(spec), granted: spec.resources }, this.key);
    const res = await this.request('POST', '/jobs', JSON.stringify(spec), { [TICKET_HEADER]: ticket });
    if (res.status !== 201) throw new Error(`POST /jobs: ${res.status} ${res.body}`);
    return job;
  }

  async status(id: string): Promise<JobStatus> {
    const res = await this.request('GET', `/jobs/${id}`);
    if (res.status !== 200) throw new Error(`GET /jobs/${id}: ${res.status} ${res.body}`);
    return JSON.parse(res.body) as JobStatus;
  }

  /**
   * Polls GET /jobs/:id every `intervalMs` until the job is final: that status, when it was seen,
   * and when a poll first saw every partition done (the job then seals, commits and cleans up).
   */
  async waitFinal(id: string, intervalMs: number): Promise<{ status: JobStatus; seenAt: number; allDoneAt: number }> {
    let allDoneAt: number | null = null;
    return until(
      async () => {
        const status = await this.status(id);
        const now = Date.now();
        if (allDoneAt === null && status.partitions.done === status.partitions.total) allDoneAt = now;
        return FINAL_STATES.includes(status.state) ? { status, seenAt: now, allDoneAt: allDoneAt ?? now } : undefined;
      },
      Number.POSITIVE_INFINITY,
      `job ${id} final`,
      intervalMs,
    );
  }

  async logs(id: string): Promise<string> {
    return (await this.request('GET', `/jobs/${id}/logs`)).body;
  }

  /** The value of one Prometheus sample of GET /metrics (0 when absent). */
  async metric(name: string): Promise<number> {
    const body = (await this.request('GET', '/metrics')).body;
    const line = body.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? 0 : Number(line.slice(name.length + 1));
  }

  close(): void {
    void this.stream?.then((s) => s.close(), () => undefined);
    this.streamAgent.destroy();
    this.agent.destroy();
  }

  private request(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(
        `${this.url}${path}`,
        { method, agent: this.agent, headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' }, timeout: 30_000 },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`timed out: ${method} ${path}`)));
      req.on('error', reject);
      req.end(body);
    });
  }
}
