// A real PostgreSQL server for a test (Debian's `postgresql` package): a fresh cluster made with initdb in a
// private folder, run by pg_ctl as the `postgres` account on 127.0.0.1 and a free port, password
// authentication only (scram-sha-256) for the role `gatehouse`, stopped and removed by stop().
//
//   const pg = await startPostgres();          // ~1-2 s
//   const url = await pg.database('jobs');     // postgres://gatehouse@127.0.0.1:P/jobs, a new empty database
//   openStore({ stateDir, url, password: pg.password })
//   await pg.stop();
//
// pg.passwordFile holds the password (mode 0600), as store.password_file would. pg.restart() stops and starts the
// server on the same port and data (a database going away and coming back); pg.kill() stops it at once.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from './until.js';

export interface Postgres {
  port: number;
  password: string;
  passwordFile: string;
  /** A new empty database owned by gatehouse; its URL (without the password). */
  database(name?: string): Promise<string>;
  /** Stops the server (fast shutdown) and starts it again on the same port and data. */
  restart(): Promise<void>;
  /** Stops the server at once (immediate shutdown); start() brings it back. */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  log(): string;
}

const ROLE = 'gatehouse';

/** The folder of Debian's PostgreSQL binaries (the newest version installed), or null. */
export function postgresBin(): string | null {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return null;
  const versions = readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(base, versions[0], 'bin') : null;
}

export function requirePostgres(): string {
  const bin = postgresBin();
  if (bin === null) throw new Error('the PostgreSQL tests need Debian\'s postgresql package (apt-get install postgresql)');
  if (process.getuid?.() !== 0) throw new Error('the PostgreSQL tests need root (the server runs as the postgres account)');
  return bin;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('runuser', ['-u', 'postgres', '--', file, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' }, (err, stdout, stderr) =>
      err ? reject(new Error(`${file} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
    ),
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export async function startPostgres(): Promise<Postgres> {
  const bin = requirePostgres();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-postgres-'));
  const data = join(dir, 'data');
  const password = randomBytes(18).toString('base64url');
  const passwordFile = join(dir, 'password');
  writeFileSync(passwordFile, password, { mode: 0o600 });
  // initdb reads the superuser's password from a file the postgres account can read; removed right after.
  const initPw = join(dir, 'initdb-password');
  writeFileSync(initPw, password, { mode: 0o600 });
  const pgUid = Number((await new Promise<string>((r) => execFile('id', ['-u', 'postgres'], (_e, out) => r(out)))).trim());
  chownSync(dir, pgUid, 0);
  chownSync(initPw, pgUid, 0);
  await run(join(bin, 'initdb'), ['-D', data, '-U', ROLE, '--auth=scram-sha-256', `--pwfile=${initPw}`, '-E', 'UTF8', '--locale=C', '--no-instructions']);
  rmSync(initPw);
  const port = await freePort();
  let logText = '';
  let server: ChildProcess | null = null;

  const start = async () => {
    server = spawn('setpriv', ['--pdeathsig', 'KILL', 'runuser', '-u', 'postgres', '--', join(bin, 'postgres'), '-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`, '-c', 'max_connections=200', '-c', 'shared_buffers=32MB'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.stdout?.on('data', (c: Buffer) => (logText += c.toString()));
    server.stderr?.on('data', (c: Buffer) => (logText += c.toString()));
    const exited = new Promise<string>((r) => server?.on('exit', (code, sig) => r(`postgres exited (${code ?? sig})`)));
    await until(
      async () => {
        const state = await Promise.race([exited, run(join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port)]).then(() => 'ready', () => undefined)]);
        if (state !== undefined && state !== 'ready') throw new Error(`${state}\n${logText}`);
        return state;
      },
      30_000,
      () => `PostgreSQL on port ${port} ready\n${logText}`,
      50,
    );
  };
  const stopServer = async (signal: NodeJS.Signals) => {
    const s = server as ChildProcess | null;
    if (s === null || s.exitCode !== null || s.signalCode !== null) return;
    const gone = new Promise<void>((r) => s.on('exit', () => r()));
    // The postmaster runs under runuser: signal it by its pid file (runuser forwards TERM, not INT/QUIT).
    await run(join(bin, 'pg_ctl'), ['-D', data, 'stop', '-m', signal === 'SIGQUIT' ? 'immediate' : 'fast', '-w']).catch(() => s.kill('SIGKILL'));
    await gone;
    server = null;
  };

  await start();
  let databases = 0;
  const pg: Postgres = {
    port,
    password,
    passwordFile,
    async database(name = `db${++databases}`) {
      if (!/^[a-z][a-z0-9_]{0,40}$/.test(name)) throw new Error(`not a database name: ${name}`);
      await run(join(bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', ROLE, '-O', ROLE, name], { PGPASSWORD: password });
      return `postgres://${ROLE}@127.0.0.1:${port}/${name}`;
    },
    async restart() {
      await stopServer('SIGINT');
      await start();
    },
    kill: () => stopServer('SIGQUIT'),
    start,
    async stop() {
      await stopServer('SIGINT');
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => logText,
  };
  return pg;
}
