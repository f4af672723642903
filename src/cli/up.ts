// `gatehouse up`: the whole embedded default on one machine. Bootstraps the certificates and the
// demo datasets, starts the engine and the gateway as child processes, waits for /readyz, and
// stops them all together.
import { readFileSync } from 'node:fs';
import { get } from 'node:https';
import { join, relative } from 'node:path';
import { caCertificateFile, ensureServiceCertificates, readDevUsers } from '../auth/boot.js';
import { ensureDemoData } from '../compute/boot.js';
import type { Config } from '../config/index.js';
import { commandStartedAt } from './command-clock.js';
import { UsageError } from './fail.js';
import type { ListeningMessage } from './serve.js';
import { type Child, type ChildName, dropChildren, type EarlyChildren, forkChild } from './up-fork.js';
import { sendGo, sendPorts } from './up-handshake.js';

const LISTEN_TIMEOUT_MS = 30_000;
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;

export interface UpOptions {
  config: Config;
  configFile: string | null;
  json: boolean;
  /** The children up-fork.ts forked before the configuration was loaded; used where they fit it. */
  early?: EarlyChildren | undefined;
}

export async function up({ config, configFile, json, early }: UpOptions): Promise<number> {
  // The wall clock since the command started (npm's share included), not since this function ran.
  const startedAt = commandStartedAt();
  const say = (line: string) => {
    if (!json) process.stdout.write(`${line}\n`);
  };
  const logDir = join(config.state.dir, 'log');
  const children: Child[] = [];
  let stopping = false;
  let resolveExit: (code: number) => void = () => {};
  const exited = new Promise<number>((resolve) => (resolveExit = resolve));

  const stopAll = async (code: number, why?: string) => {
    if (stopping) return;
    stopping = true;
    if (why) process.stderr.write(`gatehouse up: ${why}\n`);
    await Promise.all(children.map((c) => stopChild(c)));
    if (code === 0) say('stopped.');
    resolveExit(code);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    say(`\n${signal}: stopping ${children.map((c) => c.name).join(', ')}…`);
    void stopAll(0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const withDevIdp = config.dev_idp.enabled && config.oidc.issuer === '';
  // The early children fit when the quick read agreed with the configuration; otherwise forked again now.
  const adopted = early && early.logDir === logDir && early.devIdp === withDevIdp ? early.children : [];
  if (early && adopted.length === 0) await dropChildren(early.children);
  // Forked at once (or adopted), each child loads its code and waits for its go (up-handshake.ts).
  const spawnChild = (name: ChildName): Child => {
    const child = adopted.find((c) => c.name === name) ?? forkChild(name, logDir);
    children.push(child);
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      if (stopping) return;
      const reason = signal ? `killed by ${signal}` : `exited with code ${code}`;
      void stopAll(1, `${name} ${reason}; stopping.\n${tail(child.log)}`);
    };
    // An early child that has ended already (before `up` had its configuration) is reported as any other.
    if (child.process.exitCode !== null || child.process.signalCode !== null) queueMicrotask(() => onExit(child.process.exitCode, child.process.signalCode));
    else child.process.on('exit', onExit);
    return child;
  };
  /** Lets a forked child read its configuration and start; resolves with it once it listens (for the gateway, after `ports`). */
  const start = async (child: Child, ports?: Promise<Record<string, string>>): Promise<Child> => {
    const listened = listening(child);
    const gone = () => new UsageError(`${child.name} stopped before it started\n${tail(child.log)}`);
    if (!sendGo(child.process, configFile ? { GATEHOUSE_CONFIG: configFile } : {}, ports !== undefined)) throw gone();
    if (ports && !sendPorts(child.process, await ports)) throw gone();
    child.url = await listened;
    return child;
  };

  const engineChild = spawnChild('engine');
  const devIdpChild = withDevIdp ? spawnChild('dev-idp') : undefined;
  const gatewayChild = spawnChild('gateway');
  let certs: ReturnType<typeof ensureServiceCertificates>;
  let demo: Awaited<ReturnType<typeof ensureDemoData>>;
  // The CA's key made ahead on a first start (up-fork.ts), when it is for this configuration's certs.dir.
  const caKey = early?.caKey?.certsDir === config.certs.dir ? await early.caKey.pair.catch(() => undefined) : undefined;
  try {
    certs = ensureServiceCertificates(config, undefined, caKey);
    // Before the engine starts, so its first listing already has them.
    demo = await ensureDemoData(config.data.root);
  } catch (err) {
    // The children are still waiting for their go: stopped without a word, the error is ours.
    stopping = true;
    await Promise.all(children.map((c) => stopChild(c)));
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    throw err;
  }
  if (certs.created.length > 0) say(`created certificates in ${config.certs.dir}: ${certs.created.join(', ')}`);
  if (certs.renewed.length > 0) say(`renewed certificates: ${certs.renewed.join(', ')}`);

  try {
    // The engine and the development provider (only when no real one is configured) start side by
    // side; the gateway needs both their ports for its backends and logins, and is told them when they listen.
    const others = Promise.all([start(engineChild), devIdpChild ? start(devIdpChild) : Promise.resolve(undefined)]);
    const ports = others.then(([engine, devIdp]) => ({
      GATEHOUSE_ENGINE_PORT: String(new URL(engine.url!).port),
      ...(devIdp ? { GATEHOUSE_DEV_IDP_PORT: String(new URL(devIdp.url!).port) } : {}),
    }));
    // The gateway goes on at once too (store, audit trail, policy) and gets the ports when they listen.
    const gatewayStarted = start(gatewayChild, ports);
    // Neither left unhandled when the other fails first (the catch below reports the first).
    gatewayStarted.catch(() => {});
    const [engine, devIdp] = await others;
    const gateway = await gatewayStarted;
    const ready = await waitReady(gateway.url!, readFileSync(caCertificateFile(config.certs.dir)), () => stopping);
    const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);
    const caFile = caCertificateFile(config.certs.dir);
    const shown = (p: string) => (relative(process.cwd(), p).startsWith('..') ? p : relative(process.cwd(), p) || '.');
    if (json) {
      process.stdout.write(
        `${JSON.stringify({
          status: 'ready',
          gateway: { url: gateway.url, pid: gateway.process.pid, log: gateway.log },
          engine: { url: engine.url, pid: engine.process.pid, log: engine.log },
          ...(devIdp ? { dev_idp: { url: devIdp.url, pid: devIdp.process.pid, log: devIdp.log } } : {}),
          ca_file: caFile,
          startup_s: Number(seconds),
        })}\n`,
      );
    } else {
      say('');
      say(`Gatehouse is ready (${seconds} s)`);
      say(`  gateway  ${gateway.url}   pid ${gateway.process.pid}   log ${shown(gateway.log)}`);
      say(`  engine   ${engine.url}   pid ${engine.process.pid}   mTLS, gateway only   log ${shown(engine.log)}`);
      // How jobs are isolated, loudly when it is less than bubblewrap (the engine's /healthz, via /readyz).
      const isolation = /; isolation: (.*)\)$/.exec(ready.checks?.engine ?? '')?.[1];
      if (isolation) say(`  sandbox  ${/^NO /.test(isolation) ? `WARNING: ${isolation}` : isolation}`);
      if (demo.created.length > 0) say(`  data     ${shown(config.data.root)}   created demo datasets: ${demo.created.join(', ')}`);
      // Slurm's own line of /readyz: where it is and what it has ("ok (url, slurmctld UP, 2 CPUs in debug)").
      const slurm = ready.checks?.slurm;
      if (slurm) say(`  slurm    ${slurm.replace(/^ok \((.*)\)$/, '$1')}   jobs with --backend slurm${config.slurm.default ? ' (the default)' : ''}`);
      if (devIdp) say(`  SSO      ${devIdp.url}   DEVELOPMENT provider with demo users   log ${shown(devIdp.log)}`);
      say(`  CA file  ${shown(caFile)}   trust it: curl --cacert ${shown(caFile)} ${gateway.url}/healthz`);
      if (devIdp) {
        say('');
        say('  Log in (demo users of the development provider; never use them for anything real):');
        say(`    ${readDevUsers(config.dev_idp.users_file).map((u) => `${u.username} / ${u.password} (${u.groups.join(', ')})`).join('   ')}`);
        say('    npx gatehouse login --sso     then   npx gatehouse datasets   npx gatehouse whoami   npx gatehouse cert');
      }
      say('  Jobs     npx gatehouse submit --input words --output scratch/words_norm --python examples/normalize_words.py --wait');
      say('           then  npx gatehouse jobs   npx gatehouse quota   (more in examples/README.md)');
      say(`  Policy   ${shown(config.policies.dir)}/ (reloaded on change)   npx gatehouse policy lint && npx gatehouse policy test`);
      say(`  Audit    ${shown(config.audit.dir || join(config.state.dir, 'audit'))}/audit.db   as an auditor${devIdp ? ' (carol)' : ''}:  npx gatehouse audit query --since 1h   npx gatehouse audit verify`);
      say('  Ctrl-C stops everything.');
    }
  } catch (err) {
    if (!stopping) await stopAll(1, (err as Error).message);
  }
  const code = await exited;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  return code;
}

function listening(child: Child): Promise<string> {
  return new Promise((resolve, reject) => {
    if (child.process.exitCode !== null || child.process.signalCode !== null) return reject(new UsageError(`${child.name} stopped before it listened`));
    const timer = setTimeout(() => reject(new UsageError(`${child.name} did not start within ${LISTEN_TIMEOUT_MS / 1000} s\n${tail(child.log)}`)), LISTEN_TIMEOUT_MS);
    child.process.on('message', (m: ListeningMessage) => {
      if (m?.type === 'listening') {
        clearTimeout(timer);
        resolve(m.url);
      }
    });
    child.process.on('exit', () => {
      clearTimeout(timer);
      reject(new UsageError(`${child.name} stopped before it listened`));
    });
  });
}

async function waitReady(url: string, ca: Buffer, cancelled: () => boolean): Promise<{ checks?: Record<string, string> }> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = '';
  while (!cancelled()) {
    try {
      const { status, body } = await getOnce(`${url}/readyz`, ca);
      if (status === 200) return JSON.parse(body) as { checks?: Record<string, string> };
      last = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new UsageError(`gateway not ready after ${READY_TIMEOUT_MS / 1000} s: ${last}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {};
}

function getOnce(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { ca, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

function stopChild(child: Child): Promise<void> {
  const p = child.process;
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => p.kill('SIGKILL'), STOP_TIMEOUT_MS);
    p.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    p.kill('SIGTERM');
  });
}

/** The last lines of a child's log, for the reason it stopped. */
function tail(file: string, lines = 8): string {
  try {
    const text = readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines);
    return text.map((l) => `  ${l}`).join('\n');
  } catch {
    return '';
  }
}
