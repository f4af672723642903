// The bundled engine's HTTP API: TLS that requires a client certificate from our CA, and
// inside it only the gateway's certificate (CN=gateway, OU=services) is served.
import { mkdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import type { TLSSocket } from 'node:tls';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance } from 'fastify';
import Type from 'typebox';
import { installPlumbing, loggerOptions, NoQuery, serverOptions } from '../http/index.js';
import { sweepRemovals } from '../catalog/index.js';
import { VERSION } from '../version.js';
import { GATEWAY_CLIENT_SUBJECT, GatehouseError, SOURCE_MAX_BYTES, type TlsMaterial } from '../wire/index.js';
import { datasetReadRoutes } from './dataset-read-routes.js';
import { datasetRoutes } from './dataset-routes.js';
import { datasetWriteRoutes } from './dataset-write-routes.js';
import { engineMetrics } from './engine-metrics.js';
import { jobEventLog, jobEventRoutes } from './job-events.js';
import { jobChannel } from './job-channel.js';
import { jobRoutes } from './job-routes.js';
import { CompiledPythonRunner, runnerScript } from './runners/index.js';
import { JobEngine } from './jobs/job-engine.js';
import { detectIsolation, installRuntime, jobInputLinks, SANDBOX_PATHS, type SandboxMode, secureDataRoot, taskReachProblem } from './sandbox/index.js';

export interface EngineOptions {
  tls: TlsMaterial;
  logLevel: string;
  /** Where the datasets live (data.root). */
  dataRoot: string;
  /** The engine's job database and logs (state.dir/engine). */
  stateDir: string;
  /** Worker slots; 0 means one per CPU core. */
  slots: number;
  sandbox: SandboxMode;
  taskUids: string;
  python: string;
  /** engine.spare_sandboxes (jobs/spares.ts); on unless false. */
  spareSandboxes?: boolean;
  maxOutputMb: number;
  logMaxKb: number;
  /** An upload whose bytes stop for this long gives back its staging turn (data.upload_idle_timeout); default 60 s. */
  uploadIdleMs?: number;
}

const HealthBody = Type.Object({
  status: Type.Literal('ok'),
  service: Type.Literal('engine'),
  version: Type.String(),
  uptime_s: Type.Number(),
  isolation: Type.String({ description: 'how tasks are isolated here (bubblewrap, namespaces without it, or none)' }),
  slots: Type.Integer({ minimum: 1, description: 'worker processes the engine runs at once (engine.slots, resolved)' }),
});

/** A job spec carries its source text. */
const ENGINE_BODY_LIMIT = 2 * SOURCE_MAX_BYTES + 64 * 1024;

export async function buildEngine(options: EngineOptions): Promise<FastifyInstance> {
  // As root without working bubblewrap this refuses to start unless engine.sandbox is none (see isolation.ts).
  const isolation = await detectIsolation({ mode: options.sandbox, taskUids: options.taskUids });
  await mkdir(options.dataRoot, { recursive: true });
  // Removals a crash cut short (parked as .removing-*): finished before anything else looks at the root.
  const swept = await sweepRemovals(options.dataRoot);
  const { stagingRoot } = await secureDataRoot(options.dataRoot, isolation);
  const unreachable = isolation.taskUids === null ? null : await taskReachProblem(options.dataRoot);
  const runtimeDir = await installRuntime(stagingRoot, [runnerScript('python'), runnerScript('node')]);
  const app = Fastify({
    ...serverOptions(),
    bodyLimit: ENGINE_BODY_LIMIT,
    logger: loggerOptions('engine', options.logLevel),
    https: {
      ...options.tls,
      requestCert: true,
      rejectUnauthorized: true, // no certificate from our CA: the handshake itself fails
      minVersion: 'TLSv1.2',
    },
  });
  installPlumbing(app);
  // Not awaited: the engine serves meanwhile, and a worker started before it is written runs the source.
  const pythonRunner = new CompiledPythonRunner({
    python: options.python,
    runtimeDir,
    shownDir: isolation.bwrap ? SANDBOX_PATHS.runtime : runtimeDir,
    warn: (fields, message) => app.log.warn(fields, message),
    info: (message) => app.log.info(message),
  });
  void pythonRunner.compile();
  if (swept.length > 0) app.log.info({ swept }, 'finished dataset removals a previous engine left');

  // Checked once per connection: the gateway keeps its connection alive and polls over it, and
  // decoding the peer's certificate on every request was a visible share of the engine's CPU
  // (on the same cores as the workers). A connection's certificate is the handshake's; Node
  // refuses renegotiation that could swap it without the CA (rejectUnauthorized), and only the
  // holder of the gateway's key got past this check to begin with.
  const gatewaySockets = new WeakSet<TLSSocket>();
  const isGateway = (socket: TLSSocket): boolean => {
    if (gatewaySockets.has(socket)) return true;
    const peer = socket.getPeerCertificate();
    if (peer.subject?.CN !== GATEWAY_CLIENT_SUBJECT.commonName || peer.subject?.OU !== GATEWAY_CLIENT_SUBJECT.organizationalUnit) return false;
    gatewaySockets.add(socket);
    return true;
  };
  app.addHook('onRequest', async (request) => {
    if (!isGateway(request.raw.socket as TLSSocket)) throw new GatehouseError('forbidden', 'the engine serves only the gateway');
  });

  const slots = options.slots === 0 ? availableParallelism() : options.slots;
  app.withTypeProvider<TypeBoxTypeProvider>().get(
    '/healthz',
    { schema: { querystring: NoQuery, response: { 200: HealthBody } } },
    async () => ({ status: 'ok' as const, service: 'engine' as const, version: VERSION, uptime_s: Math.round(process.uptime()), isolation: isolation.summary, slots }),
  );
  datasetRoutes(app, { dataRoot: options.dataRoot });
  // A dataset a running job reads has a hard link in that job's in/: the engine's own, so still readable.
  datasetReadRoutes(app, { dataRoot: options.dataRoot, links: (file, dev, ino) => jobInputLinks(stagingRoot, file, dev, ino) });
  datasetWriteRoutes(app, { dataRoot: options.dataRoot, uploadIdleMs: options.uploadIdleMs ?? 60_000 });
  const jobs = await JobEngine.open({
    dataRoot: options.dataRoot,
    stateDir: options.stateDir,
    slots,
    isolation,
    runtimeDir,
    python: options.python,
    pythonCompiled: () => pythonRunner.usable(),
    maxOutputBytes: options.maxOutputMb * 1024 * 1024,
    spares: options.spareSandboxes,
    logMaxBytes: options.logMaxKb * 1024,
    log: app.log,
    unusable: unreachable,
  });
  if (unreachable !== null) app.log.error({ problem: unreachable }, 'the engine cannot run jobs');
  app.addHook('onClose', () => jobs.close());
  app.addHook('onClose', () => pythonRunner.settled());
  jobRoutes(app, jobs);
  jobChannel(app, jobs, { bodyLimit: ENGINE_BODY_LIMIT, isGateway });
  jobEventRoutes(app, jobEventLog(jobs));
  engineMetrics(app, jobs);
  if (isolation.warning !== null) app.log.warn({ isolation: isolation.describe() }, `ISOLATION: ${isolation.warning}`);
  app.log.info({ isolation: isolation.describe(), slots: jobs.slots }, 'engine jobs ready');
  return app;
}
