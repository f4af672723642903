import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { fetchTls } from './support/https.js';
import { alive, type Sandbox, sandbox, startUp } from './support/gatehouse.js';

const boxes: Sandbox[] = [];
afterEach(() => {
  for (const box of boxes.splice(0)) box.remove();
});

async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  return !alive(pid);
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
    expect(await gone(gateway.pid)).toBe(true);
    expect(await gone(engine.pid)).toBe(true);
  });

  it('reports a child that dies, stops the other and exits non-zero', async () => {
    const box = sandbox();
    boxes.push(box);
    const up = await startUp(box);
    process.kill(up.ready.engine.pid, 'SIGKILL');
    const { code } = await up.exited;
    expect(code).toBe(1);
    expect(up.output().stderr).toMatch(/gatehouse up: engine killed by SIGKILL; stopping\./);
    expect(await gone(up.ready.gateway.pid)).toBe(true);
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
});
