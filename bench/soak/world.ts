// The soak's own Gatehouse: `gatehouse up --json` in a temporary folder (engine, development IdP
// and gateway, all on 127.0.0.1, ports picked by the OS), with the demo users plus generated ones in
// its own users file, its own copy of policies/ and its own task uids. Nothing outside the folder
// is touched (but the PostgreSQL database it may be given); stop() ends the processes and removes it.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { writeDataset } from '../../src/compute/catalog/index.js';
import { PACKAGE_ROOT } from '../../src/version.js';

const CLI = join(PACKAGE_ROOT, 'bin', 'gatehouse.js');
const READY_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 20_000;
const OUTPUT_TAIL = 16 * 1024;

export interface Person {
  name: string;
  password: string;
  groups: string[];
}

export interface World {
  dir: string;
  gateway: string;
  ca: string;
  people: Person[];
  output(): string;
  stop(): Promise<void>;
}

interface DevUser {
  username: string;
  password: string;
  name: string;
  email: string;
  groups: string[];
}

/** Generated people: two analysts for every contractor. */
export function generatedPeople(count: number): Person[] {
  return Array.from({ length: count }, (_, i) => {
    const name = `soak${String(i + 1).padStart(3, '0')}`;
    return { name, password: `${name}-soak`, groups: [i % 3 === 2 ? 'contractors' : 'analysts'] };
  });
}

export async function startWorld(o: { generated: number; keep: boolean; store?: { url: string; password_file: string } }): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-soak-'));
  // The engine's task uids must be able to walk down to the data root.
  chmodSync(dir, 0o711);
  const demo = (parse(readFileSync(join(PACKAGE_ROOT, 'dev-idp', 'users.yaml'), 'utf8')) as { users: DevUser[] }).users;
  const extra = generatedPeople(o.generated);
  const users: DevUser[] = [...demo, ...extra.map((p) => ({ username: p.name, password: p.password, name: p.name, email: `${p.name}@example.test`, groups: p.groups }))];
  writeFileSync(join(dir, 'users.yaml'), stringify({ users }));
  cpSync(join(PACKAGE_ROOT, 'policies'), join(dir, 'policies'), { recursive: true });
  // Small versions of the demo datasets, written before `up` (which leaves existing ones alone): the
  // soak measures the gateway under many people, not the engine copying 300,000 rows, and up starts sooner.
  const rows = (from: number, n: number, row: (i: number) => string) => `${Array.from({ length: n }, (_, i) => row(from + i)).join('\n')}\n`;
  const part = (header: string, from: number, n: number, row: (i: number) => string) => ({ text: `${header}\n${rows(from, n, row)}`, rows: n });
  const demoData = { owner: 'platform', produced_by: 'gatehouse soak', format: 'csv' as const };
  await writeDataset(join(dir, 'data'), 'words', { ...demoData, columns: ['id', 'word'], labels: [], partitions: [0, 1].map((p) => part('id,word', p * 20, 20, (i) => `${i},w${i}`)) });
  await writeDataset(join(dir, 'data'), 'customers', { ...demoData, columns: ['id', 'name'], labels: ['pii'], partitions: [part('id,name', 0, 10, (i) => `${i},person ${i}`)] });
  await writeDataset(join(dir, 'data'), 'transactions', { ...demoData, columns: ['id', 'amount'], labels: [], partitions: [0, 1].map((p) => part('id,amount', p * 50, 50, (i) => `${i},${i % 97}`)) });
  const configFile = join(dir, 'gatehouse.yaml');
  writeFileSync(
    configFile,
    stringify({
      server: { host: '127.0.0.1', port: 0 },
      // Its own task uids, so a soak beside the test suite or a bench never shares one.
      engine: { host: '127.0.0.1', port: 0, slots: 2, task_uids: '396000-396999' },
      dev_idp: { enabled: true, port: 0, users_file: join(dir, 'users.yaml') },
      data: { root: join(dir, 'data') },
      state: { dir: join(dir, 'var') },
      certs: { dir: join(dir, 'certs') },
      policies: { dir: join(dir, 'policies') },
      ...(o.store ? { store: o.store } : {}),
      jobs: { poll_ms: 200 },
      log: { level: 'warn' },
    }),
  );

  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('GATEHOUSE_'))) as NodeJS.ProcessEnv;
  const child: ChildProcess = spawn(process.execPath, [CLI, 'up', '--json', '--config', configFile], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (c: Buffer) => {
    output += c.toString();
    if (output.length > 2 * OUTPUT_TAIL) output = output.slice(-OUTPUT_TAIL);
  };
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const remove = () => {
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
    remove();
  };

  const ready = await new Promise<{ gateway: { url: string }; ca_file: string }>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`gatehouse up was not ready within ${READY_TIMEOUT_MS / 1000} s\n${output}`)), READY_TIMEOUT_MS);
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (!line) return;
      clearTimeout(timer);
      resolve(JSON.parse(line) as { gateway: { url: string }; ca_file: string });
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`gatehouse up exited (${child.exitCode ?? child.signalCode}) before it was ready\n${output}`));
    });
  }).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  if (new URL(ready.gateway.url).hostname !== '127.0.0.1') {
    await stop();
    throw new Error(`the gateway listens on ${ready.gateway.url}, not on 127.0.0.1`);
  }
  return {
    dir,
    gateway: ready.gateway.url,
    ca: readFileSync(ready.ca_file, 'utf8'),
    people: [...demo.map((u) => ({ name: u.username, password: u.password, groups: u.groups })), ...extra],
    output: () => output,
    stop,
  };
}
