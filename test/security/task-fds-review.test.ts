// review36: what a task inherits from whoever started the engine. Node opens every descriptor of its
// own close-on-exec, but one the engine was handed open by its parent without it (a supervisor's, a
// shell's `exec 40<>file`, a CI runner's pipe) stays open in every process the engine starts, and
// setpriv, prlimit and bubblewrap close nothing: each task, a less privileged uid, held it. Here the
// engine is started the way a careless parent would: with a root-only file open read-write on fd 40 (Node marks its parent's first few
// descriptors close-on-exec as it starts, not those past them).
// A task (a warm python worker, and a command) lists what it holds and tries to read that file.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDataset } from '../../src/compute/catalog/index.js';
import type { JobSpec } from '../../src/wire/index.js';
import { EngineClient } from '../support/engine.js';
import { CLI, cleanEnv, type Sandbox, sandbox } from '../support/gatehouse.js';

const SECRET = `root only ${randomBytes(6).toString('hex')}`;
let box: Sandbox;
let engine: ChildProcess;
let client: EngineClient;

beforeAll(async () => {
  box = sandbox({ engine: { slots: 2 } });
  chmodSync(box.dir, 0o711);
  expect(await writeDataset(join(box.dir, 'data'), 'one', { format: 'csv', columns: ['id'], owner: 'platform', labels: [], produced_by: 'test', partitions: [{ text: 'id\n1\n', rows: 1 }] })).toBe(true);
  const secret = join(box.dir, 'root-only.txt');
  writeFileSync(secret, `${SECRET}\n`, { mode: 0o600 });
  // The parent's descriptor: a shell redirection is inherited, never close-on-exec.
  engine = spawn('/bin/bash', ['-c', 'exec 40<>"$0"; exec "$@"', secret, process.execPath, CLI, 'engine', '--config', box.configFile], { cwd: box.dir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  engine.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the engine did not listen within 30 s\n${output}`)), 30_000);
    engine.stderr!.on('data', (c: Buffer) => {
      output += c.toString();
      const match = /listening on (https?:\/\/\S+)/.exec(output);
      if (match === null) return;
      clearTimeout(timer);
      resolve(match[1]!);
    });
    engine.on('close', (code) => reject(new Error(`the engine exited (${code})\n${output}`)));
  });
  client = new EngineClient(url, join(box.dir, 'certs'));
}, 60_000);

afterAll(async () => {
  if (engine !== undefined && engine.exitCode === null && engine.signalCode === null) {
    const closed = new Promise((resolve) => engine.on('close', resolve));
    engine.kill('SIGTERM');
    await closed;
  }
  box?.remove();
});

// Every descriptor the task holds as it starts (fd, target), then what fd 40 reads, if anything.
const LOOK = `import os
def look():
    seen = []
    for fd in sorted(int(n) for n in os.listdir('/proc/self/fd')):
        try:
            seen.append('%d %s' % (fd, os.readlink('/proc/self/fd/%d' % fd)))
        except OSError:
            pass
    try:
        seen.append('read 40: ' + os.pread(40, 200, 0).decode(errors='replace').strip())
    except OSError as e:
        seen.append('read 40: refused (%s)' % e.strerror)
    return seen
`;
const resources = { cores: 1, memory_mb: 256, time_limit_s: 60 };
const specs: Record<string, JobSpec> = {
  python: { name: 'fds', input: 'one', output: 'scratch/fds-python', runtime: 'python', source: `${LOOK}\ndef process(i, o, ctx):\n    with open(o, 'w') as f:\n        f.write('fd\\n' + ''.join('"%s"\\n' % s for s in look()))\n`, resources, max_attempts: 1 },
  command: { name: 'fds', input: 'one', output: 'scratch/fds-command', runtime: 'command', argv: ['/usr/bin/python3', '-c', `${LOOK}\nimport sys\nwith open(sys.argv[1], 'w') as f:\n    f.write('fd\\n' + ''.join('"%s"\\n' % s for s in look()))\n`, '{output}'], resources, max_attempts: 1 },
};

describe('what a task inherits from the engine', () => {
  for (const [runtime, spec] of Object.entries(specs)) {
    it(`a ${runtime} task holds none of the engine's inherited descriptors (a root-only file on fd 40)`, async () => {
      const id = await client.submit(spec, { user: 'mallory' });
      const ended = await client.waitFor(id, undefined, 60_000);
      expect(ended.state, JSON.stringify(ended)).toBe('succeeded');
      const folder = join(box.dir, 'data', spec.output);
      const part = readdirSync(folder).find((f) => f.startsWith('part-'))!;
      const rows = readFileSync(join(folder, part), 'utf8').split('\n').slice(1).filter((l) => l !== '').map((l) => JSON.parse(l) as string);
      expect(rows.join('\n')).not.toContain(SECRET);
      expect(rows.find((r) => r.startsWith('40 ')), JSON.stringify(rows)).toBeUndefined();
      expect(rows.find((r) => r.startsWith('read 40: ')), JSON.stringify(rows)).toMatch(/^read 40: refused/);
    }, 90_000);
  }
});
