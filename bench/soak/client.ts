// The soak's HTTP client: one kept-alive HTTPS agent for every simulated person (as many sockets
// as people), and a record of every answer: its route (the path with ids folded), status, latency
// and, for what was not expected, the kind of error.
import { Agent, request } from 'node:https';

export interface Answer {
  status: number;
  body: string;
  json<T = Record<string, unknown>>(): T;
}

export interface Sample {
  route: string;
  status: number;
  ms: number;
}

const TIMEOUT_MS = 30_000;

/** `/v1/jobs/j0123456789ab/logs` → `/v1/jobs/:id/logs`; the query string is dropped. */
export function routeOf(method: string, path: string): string {
  const bare = path.split('?')[0]!;
  const folded = bare.replace(/^\/v1\/jobs\/[^/]+/, '/v1/jobs/:id').replace(/^\/v1\/certs\/(?!crl$)[^/]+/, '/v1/certs/:serial');
  return `${method} ${folded}`;
}

export class Recorder {
  readonly samples: Sample[] = [];
  /** Unexpected answers and failures, by kind: "5xx POST /v1/jobs 500 internal", "network ECONNRESET", ... */
  readonly errors = new Map<string, number>();
  /** Expected refusals (a quota, a policy deny, a cancel that came late), by kind: not errors. */
  readonly refusals = new Map<string, number>();
  startedAt = performance.now();

  error(kind: string): void {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1);
  }

  refusal(kind: string): void {
    this.refusals.set(kind, (this.refusals.get(kind) ?? 0) + 1);
  }

  get count(): number {
    return this.samples.length;
  }

  get serverErrors(): number {
    return this.samples.filter((s) => s.status >= 500).length;
  }
}

export class Client {
  private readonly agent: Agent;

  constructor(
    readonly base: string,
    ca: string,
    readonly recorder: Recorder,
    sockets: number,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets: sockets, ca });
  }

  /**
   * One request. `expect` lists the statuses the caller's scenario allows; any other answer is an
   * error of its kind (and a 5xx always is). A network failure or timeout resolves with status 0.
   */
  async call(method: string, path: string, o: { token?: string; body?: unknown; expect?: number[] } = {}): Promise<Answer> {
    const route = routeOf(method, path);
    const t0 = performance.now();
    const answer = await this.send(method, path, o.token, o.body);
    const ms = performance.now() - t0;
    this.recorder.samples.push({ route, status: answer.status, ms });
    const expected = o.expect ?? [200];
    if (answer.status === 0) this.recorder.error(`network ${route}: ${answer.body}`);
    else if (answer.status >= 500) this.recorder.error(`5xx ${route} ${answer.status} ${errorCode(answer)}`);
    else if (!expected.includes(answer.status)) this.recorder.error(`unexpected ${route} ${answer.status} ${errorCode(answer)}: ${errorMessage(answer)}`);
    else if (answer.status >= 400) this.recorder.refusal(`${route} ${answer.status} ${errorCode(answer)}`);
    return answer;
  }

  close(): void {
    this.agent.destroy();
  }

  private send(method: string, path: string, token: string | undefined, body: unknown): Promise<Answer> {
    return new Promise((resolve) => {
      const headers: Record<string, string> = {};
      if (token) headers.authorization = `Bearer ${token}`;
      const text = body === undefined ? undefined : JSON.stringify(body);
      if (text !== undefined) headers['content-type'] = 'application/json';
      const req = request(`${this.base}${path}`, { method, agent: this.agent, headers, timeout: TIMEOUT_MS }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('error', (err) => resolve(failed(err)));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data, json: <T>() => JSON.parse(data) as T }));
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${TIMEOUT_MS / 1000} s`), { code: 'TIMEOUT' })));
      req.on('error', (err) => resolve(failed(err)));
      req.end(text);
    });
  }
}

function failed(err: Error): Answer {
  const code = (err as NodeJS.ErrnoException).code ?? err.message;
  return { status: 0, body: code, json: () => ({}) as never };
}

function errorCode(a: Answer): string {
  try {
    const e = (JSON.parse(a.body) as { error?: unknown }).error;
    return typeof e === 'string' ? e : '';
  } catch {
    return '';
  }
}

/** The answer's message, ids and numbers folded so that one kind of error is one line of the report. */
function errorMessage(a: Answer): string {
  let message: unknown;
  try {
    message = (JSON.parse(a.body) as { message?: unknown }).message;
  } catch {
    message = a.body;
  }
  return String(message ?? '')
    .slice(0, 160)
    .replace(/\bj[0-9a-f]{12}\b/g, ':job')
    .replace(/\d+/g, 'N');
}

/** The p-th percentile (0..100) of sorted values, nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}
