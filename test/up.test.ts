import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fetchTls } from './support/https.js';
import { alive, CLI, cleanEnv, type Sandbox, sandbox, startUp } from './support/gatehouse.js';
import { until } from './support/until.js';

const boxes: Sandbox[] = [];
afterEach(() => {
  for (const box of boxes.splice(0)) box.remove();
});

/** Waits for a service process to end: it never does by itself, so its end is the stop's doing. */
const gone = (pid: number, what: string): Promise<true> => until(() => !alive(pid), 10_000, `the ${what} (pid ${pid}) gone`);

/** `gatehouse up` as a person runs it (no --json), until its banner is printed. */
async function upWithBanner(box: Sandbox): Promise<{ banner: string; stop(): Promise<number | null> }> {
  const child = spawn(process.execPath, [CLI, 'up', '--config', box.configFile], { cwd: box.dir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner within 60 s\n${output}`)), 60_000);
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString();
      if (output.includes('Ctrl-C stops everything.')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => reject(new Error(`gatehouse up exited (${code}) before its banner\n${output}`)));
  });
  return {
    banner: output,
    stop: () => {
      child.kill('SIGINT');
      return exited;
    },
  };
}

describe('gatehouse up', () => {
  it('starts engine and gateway, prints where they are, and stops both on SIGINT', async () => {
    const box = sandbox();
    boxes.push(box);
    const up = await startUp(box);
    const { gateway, engine, ca_file } = up.ready;
    expect(gateway.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(engine.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(ca_file).toBe(`${box.dir}/certs/ca.crt`);
    expect((await fetchTls(`${gateway.url}/readyz`, { ca: up.ca })).status).toBe(200);

    const { code } = await up.stop('SIGINT');
    expect(code).toBe(0);
    await gone(gateway.pid, 'gateway');
    await gone(engine.pid, 'engine');
  });

  it('reports a child that dies, stops the other and exits non-zero', async () => {
    const box = sandbox();
    boxes.push(box);
    const up = await startUp(box);
    process.kill(up.ready.engine.pid, 'SIGKILL');
    const { code } = await up.exited;
    expect(code).toBe(1);
    expect(up.output().stderr).toMatch(/gatehouse up: engine killed by SIGKILL; stopping\./);
    await gone(up.ready.gateway.pid, 'gateway');
  });

  it('fails with the reason when a port is taken', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    const box = sandbox({ engine: { port } });
    boxes.push(box);
    try {
      await expect(startUp(box)).rejects.toThrow(new RegExp(`engine exited with code 1[\\s\\S]*address in use: 127\\.0\\.0\\.1:${port}`));
    } finally {
      blocker.close();
    }
  });

  it('reuses the certificates of the first start on the second', async () => {
    const box = sandbox();
    boxes.push(box);
    const first = await startUp(box);
    await first.stop();
    const second = await startUp(box);
    try {
      expect(second.ca).toBe(first.ca);
      expect((await fetchTls(`${second.ready.gateway.url}/healthz`, { ca: first.ca })).status).toBe(200);
    } finally {
      await second.stop();
    }
  });

  it('creates the demo datasets on first start and says so in its banner, then leaves them be', async () => {
    const box = sandbox();
    boxes.push(box);
    const first = await upWithBanner(box);
    expect(await first.stop()).toBe(0);
    expect(first.banner).toMatch(/^ {2}data {5}data {3}created demo datasets: transactions, customers, words$/m);
    expect(readdirSync(join(box.dir, 'data')).filter((n) => !n.startsWith('.')).sort()).toEqual(['customers', 'transactions', 'words']);

    const second = await upWithBanner(box);
    expect(await second.stop()).toBe(0);
    expect(second.banner).toMatch(/^Gatehouse is ready/m);
    expect(second.banner).not.toMatch(/demo datasets/);
  });
});
