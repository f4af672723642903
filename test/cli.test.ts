import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli, sandbox } from './support/gatehouse.js';

describe('the gatehouse command', () => {
  it('prints its version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const result = await runCli(['--version']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${version}\n`);
  });

  it('refuses an unknown command and an unknown option with one line and exit code 2', async () => {
    const command = await runCli(['frobnicate']);
    expect(command.code).toBe(2);
    expect(command.stderr).toBe("gatehouse: unknown command 'frobnicate'; run gatehouse --help\n");
    const option = await runCli(['up', '--bogus']);
    expect(option.code).toBe(2);
    expect(option.stderr).toBe("gatehouse up: unknown option '--bogus'; run gatehouse up --help\n");
  });

  it('checks a configuration without starting anything, and prints the resolved values with --json', async () => {
    const box = sandbox({ server: { hostnames: ['gw.example.org'] } });
    try {
      const plain = await runCli(['config', 'check', '--config', box.configFile]);
      expect(plain.code).toBe(0);
      expect(plain.stdout).toBe(`config ok: ${box.configFile}\n`);
      const json = await runCli(['config', 'check', '--json', '--config', box.configFile], { env: { GATEHOUSE_LOG_LEVEL: 'warn' } });
      const { file, config } = JSON.parse(json.stdout) as { file: string; config: Record<string, Record<string, unknown>> };
      expect(file).toBe(box.configFile);
      expect(config.server).toMatchObject({ port: 0, hostnames: ['gw.example.org'] });
      expect(config.log).toEqual({ level: 'warn' });
      expect(config.state!.dir).toBe(join(box.dir, 'var'));
    } finally {
      box.remove();
    }
  });
});
