// The command line's one definition (src/cli/program.ts) seen from outside: each verb's own help,
// a flag a verb does not take refused with the verb named, README's command list and exit codes
// generated from it, and bash and zsh completion run in the real shells.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCommandList } from '../src/cli/command-list.js';
import { buildProgram } from '../src/cli/program.js';
import { leaves, pathOf } from '../src/cli/verb.js';
import { ROOT, runCli } from './support/gatehouse.js';

describe('help', () => {
  it('gatehouse login --help prints login’s help only, on stdout, exit 0', async () => {
    const r = await runCli(['login', '--help']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^Usage: gatehouse login \[options\]\n/);
    for (const flag of ['--sso', '--ldap', '--user <name>', '--password-stdin', '--no-browser', '--url <url>', '--ca <file>']) expect(r.stdout).toContain(flag);
    // Nothing of the other verbs: not their flags, not the global list.
    for (const other of ['--cores', '--witness', '--remote', '--follow', 'audit', 'submit']) expect(r.stdout).not.toContain(other);
  });

  it('gatehouse help VERB is the same as VERB --help, for a verb in a group too', async () => {
    const [viaHelp, viaFlag] = await Promise.all([runCli(['help', 'policy', 'explain']), runCli(['policy', 'explain', '--help'])]);
    expect(viaHelp.code).toBe(0);
    expect(viaHelp.stdout).toBe(viaFlag.stdout);
    expect(viaFlag.stdout).toMatch(/^Usage: gatehouse policy explain \[options\] <user> <action> <object>\n/);
    expect(viaFlag.stdout).toContain('--remote');
  });

  it('the global help lists every verb and the exit codes; given no verb, it is the error (stderr, exit 2)', async () => {
    const asked = await runCli(['--help']);
    expect(asked.code).toBe(0);
    for (const verb of ['login', 'can-i', 'submit', 'policy', 'audit', 'completion']) expect(asked.stdout).toMatch(new RegExp(`^  ${verb}\\b`, 'm'));
    expect(asked.stdout).toMatch(/^ {2}5 {3}the gateway cannot be reached/m);
    const bare = await runCli([]);
    expect(bare.code).toBe(2);
    expect(bare.stdout).toBe('');
    expect(bare.stderr).toBe(asked.stdout);
    const group = await runCli(['policy']);
    expect(group.code).toBe(2);
    expect(group.stderr).toMatch(/^Usage: gatehouse policy <command> \[options\]/);
  });
});

describe('usage errors', () => {
  it('a flag the verb does not take is refused with the verb named, exit 2, nothing sent', async () => {
    const whoami = await runCli(['whoami', '--sso'], { env: { XDG_CONFIG_HOME: tmpdir() } });
    expect(whoami.code).toBe(2);
    expect(whoami.stderr).toMatch(/^gatehouse whoami: unknown option '--sso'( \(did you mean --\w+\?\))?; run gatehouse whoami --help\n$/);
    const nested = await runCli(['policy', 'lint', '--remote']);
    expect(nested.code).toBe(2);
    expect(nested.stderr).toBe("gatehouse policy lint: unknown option '--remote'; run gatehouse policy lint --help\n");
    const typo = await runCli(['jobs', '--stat', 'running']);
    expect(typo.stderr).toBe("gatehouse jobs: unknown option '--stat' (did you mean --state?); run gatehouse jobs --help\n");
  });

  it('a missing argument, an extra one and a value outside the choices are usage errors naming the verb', async () => {
    const missing = await runCli(['status']);
    expect([missing.code, missing.stderr]).toEqual([2, "gatehouse status: missing required argument 'id'; run gatehouse status --help\n"]);
    const extra = await runCli(['quota', 'now']);
    expect(extra.code).toBe(2);
    expect(extra.stderr).toMatch(/^gatehouse quota: too many arguments/);
    const choice = await runCli(['can-i', 'reed', 'dataset:words']);
    expect(choice.code).toBe(2);
    expect(choice.stderr).toMatch(/^gatehouse can-i: .*'reed' is invalid.* read, write, admin; run gatehouse can-i --help\n$/);
  });
});

describe('README', () => {
  it('lists exactly the commands, flags and exit codes of the definition (npm run docs:cli refreshes it)', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    expect(withCommandList(readme, buildProgram({})), 'run npm run docs:cli').toBe(readme);
    // And every verb is in it, by its full name.
    for (const verb of leaves(buildProgram({}))) expect(readme).toContain(`gatehouse ${pathOf(verb)}`);
  });
});

/** Every verb's full name, for checking that completion reaches each. */
const verbs = () => leaves(buildProgram({})).map(pathOf);

describe('completion', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gatehouse-completion-'));
    mkdirSync(join(dir, 'policies-copy'));
    writeFileSync(join(dir, 'job.yaml'), 'input: words\n');
    for (const shell of ['bash', 'zsh']) {
      const r = await runCli(['completion', shell]);
      expect(r.code, r.stderr).toBe(0);
      writeFileSync(join(dir, `gatehouse.${shell}`), r.stdout);
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** What bash's completion function offers for the words typed, the last being the one under the cursor. */
  function bash(words: string[]): string[] {
    const quoted = words.map((w) => `'${w}'`).join(' ');
    const r = spawnSync('bash', ['-c', `source gatehouse.bash; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _gatehouse; printf '%s\\n' "\${COMPREPLY[@]}"`], { cwd: dir, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    return r.stdout.split('\n').filter(Boolean);
  }

  it('bash: verbs, subcommands, flags, flag values and arguments', () => {
    expect(bash(['gatehouse', 'au'])).toEqual(['audit']);
    expect(bash(['gatehouse', 'policy', ''])).toEqual(['lint', 'test', 'explain', 'diff', 'reload', 'status', 'help']);
    expect(bash(['gatehouse', 'login', '--p'])).toEqual(['--password-stdin']);
    expect(bash(['gatehouse', 'whoami', '--'])).toEqual(['--url', '--ca', '--context', '--config', '--output', '--json', '--help']);
    expect(bash(['gatehouse', 'whoami', '-o', ''])).toEqual(['json', 'yaml', 'table']);
    // Flags and their values are skipped when finding the verb.
    expect(bash(['gatehouse', 'submit', '--cores', '4', '--json', '--w'])).toEqual(['--wait']);
    expect(bash(['gatehouse', 'jobs', '--state', 'r'])).toEqual(['running']);
    expect(bash(['gatehouse', 'can-i', ''])).toEqual(['read', 'write', 'admin']);
    expect(bash(['gatehouse', 'completion', ''])).toEqual(['bash', 'zsh']);
    // Files and folders where a flag or an argument names one.
    expect(bash(['gatehouse', 'policy', 'lint', '--dir', 'pol'])).toEqual(['policies-copy']);
    expect(bash(['gatehouse', 'submit', 'jo'])).toEqual(['job.yaml']);
    expect(bash(['gatehouse', 'help', 'can-'])).toEqual(['can-i']);
    // Nothing made up where nothing fits.
    expect(bash(['gatehouse', 'status', ''])).toEqual([]);
  });

  it('bash and zsh: --context, use-context and delete-context complete the saved contexts by name', async () => {
    const home = join(dir, 'home');
    for (const name of ['prod-eu', 'prod-us', 'staging']) {
      const r = await runCli(['config', 'set-context', name, '--url', `https://${name}.example:8443`], { env: { XDG_CONFIG_HOME: home } });
      expect(r.code, r.stderr).toBe(0);
    }
    // The scripts call `gatehouse`: here, this checkout's, with the saved contexts above.
    const shim = `gatehouse() { XDG_CONFIG_HOME='${home}' node '${join(ROOT, 'bin', 'gatehouse.js')}' "$@"; }`;
    const inBash = (words: string[]) => {
      const r = spawnSync('bash', ['-c', `${shim}; source gatehouse.bash; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _gatehouse; printf '%s\\n' "\${COMPREPLY[@]}"`], { cwd: dir, encoding: 'utf8' });
      expect(r.stderr).toBe('');
      return r.stdout.split('\n').filter(Boolean);
    };
    expect(inBash(['gatehouse', 'config', 'use-context', 'prod'])).toEqual(['prod-eu', 'prod-us']);
    // A name planted in contexts.json by hand is not offered (bash would expand $(...) in it).
    const file = join(home, 'gatehouse', 'contexts.json');
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { contexts: Record<string, unknown> };
    saved.contexts[`x$(touch ${join(dir, 'pwned')})`] = { url: 'https://x.example:8443' };
    writeFileSync(file, JSON.stringify(saved));
    expect(inBash(['gatehouse', 'config', 'use-context', 'x'])).toEqual([]);
    expect(existsSync(join(dir, 'pwned'))).toBe(false);
    expect(inBash(['gatehouse', 'config', 'delete-context', ''])).toEqual(['prod-eu', 'prod-us', 'staging']);
    expect(inBash(['gatehouse', 'jobs', '--context', 'st'])).toEqual(['staging']);
    const r = spawnSync('zsh', ['-f', '-c', `autoload -U compinit && compinit -D; ${shim}; source gatehouse.zsh; compadd() { print -rl -- "\${(@P)2}" }; words=('gatehouse' 'whoami' '--context' ''); CURRENT=4; _gatehouse`], { cwd: dir, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(['prod-eu', 'prod-us', 'staging']);
  });

  it('bash: every verb of the definition completes from its first letters', () => {
    for (const verb of verbs()) {
      const words = verb.split(' ');
      const last = words.at(-1)!;
      expect(bash(['gatehouse', ...words.slice(0, -1), last.slice(0, 2)]), verb).toContain(last);
    }
  });

  /**
   * What zsh's completion function offers for each list of words (its _describe, compadd and _files
   * print instead of drawing): one zsh for all of them, as compinit takes a while.
   */
  function zsh(cases: string[][]): string[][] {
    const stubs = `_describe() { print -rl -- "\${(@P)\${@[-1]}}" }; compadd() { print -rl -- "\${(@P)2}" }; _files() { print -r -- _files "$@" }`;
    const calls = cases.map((words) => `words=(${words.map((w) => `'${w}'`).join(' ')}); CURRENT=${words.length}; _gatehouse; print -- '--8<--'`);
    const r = spawnSync('zsh', ['-f', '-c', `autoload -U compinit && compinit -D; source gatehouse.zsh; ${stubs}; ${calls.join('; ')}`], { cwd: dir, encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    expect(r.stderr).toBe('');
    return r.stdout.split('--8<--\n').slice(0, cases.length).map((out) => out.split('\n').filter(Boolean));
  }

  it('zsh: verbs and flags with their descriptions, values, files and folders', () => {
    const all = verbs();
    const [top, audit, logs, submit, canI, dirs, files, ...each] = zsh([
      ['gatehouse', ''],
      ['gatehouse', 'audit', ''],
      ['gatehouse', 'logs', '-'],
      ['gatehouse', 'submit', '--cores', '4', '--json', '--'],
      ['gatehouse', 'can-i', ''],
      ['gatehouse', 'policy', 'lint', '--dir', ''],
      ['gatehouse', 'submit', '--python', ''],
      ...all.map((verb) => ['gatehouse', ...verb.split(' ').slice(0, -1), '']),
    ]);
    expect(top).toContain('can-i:may I do ACTION on OBJECT? exit 0 yes, 1 no; the deciding rule on stderr');
    expect(audit).toContain('verify:check that the trail is intact: hashes, links, checkpoints (exit 1 when not)');
    expect(logs).toContain('--follow:follow it until the job ends');
    expect(submit).toContain('--wait:follow the job to its end: exit 0 succeeded, 1 failed, 3 cancelled');
    expect(canI).toEqual(['read', 'write', 'admin']);
    expect(dirs).toEqual(['_files -/']);
    expect(files).toEqual(['_files']);
    for (const [i, verb] of all.entries()) expect(each[i]!.map((l) => l.split(':')[0]), verb).toContain(verb.split(' ').at(-1));
  });
});
