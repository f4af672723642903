// Property-based inputs (issue 15): fast-check generates adversarial job specs, policy files,
// CSRs, ids and dataset names, and every one must meet the same rules: no crash, no 5xx, a clear
// 4xx body with `error` (and the field, for a bad body), and nothing changed by a refused input —
// the job list, the quota usage, the certificate table, the serving policy version.
//
// Pure functions (policy lint, CSR parsing) run in-process; the rest goes through one real stack
// (engine, development IdP, gateway), shared by the whole file. Every property has a fixed seed and
// a bounded number of runs, so a run is reproducible: a failure prints its seed and shrunk input,
// and `fc.assert(..., { seed, path })` replays it.
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import forge from 'node-forge';
import { Value } from 'typebox/value';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { parseCertificateRequest } from '../../src/auth/certificate-request.js';
import { refusalOf } from '../../src/auth/user-certificates.js';
import { writeDataset } from '../../src/compute/catalog/index.js';
import { decide, lintFiles, lintPolicy, MODEL_FILE, POLICY_FILE } from '../../src/policy/index.js';
import { isDatasetName, jobSpecProblem, JobSpecSchema, type JobSpec } from '../../src/wire/index.js';
import { TEST_POLICIES } from '../support/gatehouse.js';
import { Stack } from '../support/stack.js';
import { until } from '../support/until.js';

/** One seed for the whole file, fixed in CI; PROPERTY_SEED=<n> explores others (a failure prints its seed and path). */
const SEED = process.env.PROPERTY_SEED ? Number(process.env.PROPERTY_SEED) : 0x15_2026;
const runs = (numRuns: number) => ({ seed: SEED, numRuns, endOnFailure: false });

const COPY = "def process(i, o, ctx):\n    open(o, 'w').write(open(i).read())\n";
const SLOW = "import time\ndef process(i, o, ctx):\n    time.sleep(600)\n";
const STOCK_MODEL = readFileSync(join(TEST_POLICIES, MODEL_FILE), 'utf8');
const STOCK_POLICY = readFileSync(join(TEST_POLICIES, POLICY_FILE), 'utf8');

// --- Generators shared by the properties ------------------------------------------------------

/** No lone surrogate (String.prototype.isWellFormed is ES2024, past this project's lib). */
const wellFormed = (s: string) => !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);

/** Strings an attacker reaches for: unicode of every width, controls, separators, path tricks, markup, huge. */
const nastyString = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '..',
    '../../etc/passwd',
    'scratch/../hr',
    '/etc/passwd',
    'a\u0000b',
    '\u202eevil',
    '\ud800',
    'ＳＣＲＡＴＣＨ',
    'scratch/ü',
    'x'.repeat(5000),
    '%2e%2e%2f',
    '\u001b[31mred',
    '<script>alert(1)</script>',
    '-----BEGIN PRIVATE KEY-----',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the log4shell string, meant literally
    '${jndi:ldap://x}',
    "'; DROP TABLE jobs; --",
    '__proto__',
    'constructor',
  ),
);

/** JSON values of every type, including the numbers that break naive code. */
const junkValue: fc.Arbitrary<unknown> = fc.oneof(
  nastyString,
  fc.constantFrom(0, -1, 1.5, -0, 2 ** 31, 2 ** 53 + 1, Number.MAX_SAFE_INTEGER, 1e308, -1e308, 1e-300),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom('4', '1', '256', 'true', ' 60 ', '0x10', '1e2'),
  fc.array(fc.oneof(fc.integer(), nastyString), { maxLength: 5 }),
  fc.dictionary(nastyString, fc.oneof(fc.integer(), nastyString, fc.constant(null)), { maxKeys: 4 }),
  fc.jsonValue({ maxDepth: 4 }),
);

const jobFields = ['name', 'input', 'output', 'runtime', 'source', 'entrypoint', 'argv', 'resources', 'partitions', 'max_attempts', 'mode', 'output_format', 'labels', 'backend'] as const;
const resourceFields = ['cores', 'memory_mb', 'time_limit_s'] as const;

type Mutation =
  | { kind: 'set'; field: string; value: unknown }
  | { kind: 'set-resource'; field: string; value: unknown }
  | { kind: 'delete'; field: string }
  | { kind: 'delete-resource'; field: string }
  | { kind: 'extra'; field: string; value: unknown }
  | { kind: 'extra-resource'; field: string; value: unknown }
  | { kind: 'dataset'; field: 'input' | 'output'; value: string }
  | { kind: 'whole'; value: unknown };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), field: fc.constantFrom(...jobFields), value: junkValue }),
  fc.record({ kind: fc.constant('set-resource' as const), field: fc.constantFrom(...resourceFields), value: junkValue }),
  // Type confusion a lenient parser would "fix": numbers as text, booleans, one-element arrays.
  fc.record({ kind: fc.constant('set-resource' as const), field: fc.constantFrom(...resourceFields), value: fc.constantFrom<unknown>('4', '256', '60', ' 60 ', true, [4], [256], { value: 4 }) }),
  fc.record({ kind: fc.constant('set' as const), field: fc.constantFrom('max_attempts', 'partitions', 'labels', 'argv', 'name'), value: fc.constantFrom<unknown>('2', 2, 0, true, 'a', ['a'], [0], '[0]', null) }),
  fc.record({ kind: fc.constant('delete' as const), field: fc.constantFrom('name', 'input', 'output', 'runtime', 'source', 'resources') }),
  fc.record({ kind: fc.constant('delete-resource' as const), field: fc.constantFrom(...resourceFields) }),
  fc.record({ kind: fc.constant('extra' as const), field: fc.oneof(nastyString, fc.constantFrom('user', 'owner', 'granted', 'ticket', 'id', 'state')), value: junkValue }),
  fc.record({ kind: fc.constant('extra-resource' as const), field: fc.oneof(nastyString, fc.constantFrom('gpus', 'slots')), value: junkValue }),
  fc.record({ kind: fc.constant('dataset' as const), field: fc.constantFrom('input' as const, 'output' as const), value: nastyString }),
  fc.record({ kind: fc.constant('whole' as const), value: junkValue }),
);

function applyMutations(base: Record<string, unknown>, mutations: Mutation[]): unknown {
  let body: unknown = structuredClone(base);
  for (const m of mutations) {
    if (m.kind === 'whole') {
      body = m.value;
      continue;
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) continue;
    const spec = body as Record<string, unknown>;
    const resources = spec.resources !== null && typeof spec.resources === 'object' && !Array.isArray(spec.resources) ? (spec.resources as Record<string, unknown>) : undefined;
    // defineProperty, so `__proto__` becomes a real key of the JSON sent, as an attacker would write it.
    const put = (o: Record<string, unknown>, k: string, v: unknown) => Object.defineProperty(o, k, { value: v, enumerable: true, configurable: true, writable: true });
    if (m.kind === 'set' || m.kind === 'extra' || m.kind === 'dataset') put(spec, m.field, m.value);
    else if (m.kind === 'delete') delete spec[m.field];
    else if (resources && (m.kind === 'set-resource' || m.kind === 'extra-resource')) put(resources, m.field, m.value);
    else if (resources && m.kind === 'delete-resource') delete resources[m.field];
  }
  return body;
}

/** Raw bodies JSON.stringify cannot make: bad JSON, numbers past double range, duplicate keys, BOMs. */
const rawBody = (valid: string) =>
  fc.oneof(
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.nat({ max: valid.length }).map((n) => valid.slice(0, n)),
    fc.constantFrom(
      valid.replace('"cores":1', '"cores":1e400'),
      valid.replace('"cores":1', '"cores":-1e400'),
      valid.replace('"cores":1', '"cores":1.0000000000000001'),
      valid.replace('"cores":1', '"cores":99999999999999999999999999'),
      valid.replace('"memory_mb":256', '"memory_mb":"256"'),
      valid.replace('"cores":1', '"cores":"4"'),
      valid.replace('"time_limit_s":60', '"time_limit_s":true'),
      valid.replace('{', '{"__proto__":{"admin":true},'),
      valid.replace('{', '{"constructor":{"prototype":{"admin":true}},'),
      valid.replace('{', '{"name":"a",'),
      `\ufeff${valid}`,
      `${valid}${valid}`,
      `[${valid}]`,
      '{}',
      '[]',
      'null',
      '"just a string"',
      '1',
      '{"a":'.repeat(5000),
      `${'['.repeat(10_000)}${']'.repeat(10_000)}`,
    ),
  );

// --- In-process: policy lint over generated files ------------------------------------------------

const policyToken = fc.oneof(
  fc.constantFrom('role:analysts', 'group:analysts', 'user:alice', 'dataset:scratch/*', 'dataset:*', 'dataset:customers', 'label:pii', 'audit:*', 'policy:*', 'job:*', 'cert:*'),
  fc.constantFrom('read', 'write', 'admin', 'allow', 'deny', 'default', 'max_cores', 'max_concurrent_jobs', 'core_hours_per_day', 'max_memory_mb'),
  fc.constantFrom('8', '0', '-1', '1e999', 'NaN', 'Infinity', '0x10', '0.0005', '9'.repeat(400), ''),
  fc.constantFrom('"quoted, with comma"', '"', "'", '#', '\\', '*', '**', '(', ')', '.*', 'user:*', 'dataset:', ':'),
  nastyString,
);

const policyLine = fc.oneof(
  fc.tuple(fc.constantFrom('p', 'p2', 'g', 'g2', 'g3', 'P', ' p', 'p ', '', '#p', 'e', 'm', 'r'), fc.array(policyToken, { maxLength: 7 }), fc.constantFrom(', ', ',', ' , ', ',\t')).map(([type, fields, sep]) => [type, ...fields].join(sep)),
  fc.string({ unit: 'binary', maxLength: 120 }),
  fc.constantFrom('\r', '\u0000', '\ufeffp, role:analysts, dataset:words, read, allow', 'p, role:analysts, dataset:words, read, allow, extra', 'p2, default, max_cores, 2, 3', 'g, a', 'g, role:a, role:a', 'g, role:x, role:y\ng, role:y, role:x'),
);

const policyFile = fc.oneof(
  fc.array(policyLine, { maxLength: 12 }).map((lines) => lines.join('\n')),
  fc.tuple(fc.array(policyLine, { minLength: 1, maxLength: 6 }), fc.nat()).map(([lines, at]) => {
    const stock = STOCK_POLICY.split('\n');
    const i = at % (stock.length + 1);
    return [...stock.slice(0, i), ...lines, ...stock.slice(i)].join('\n');
  }),
);

const matcherToken = fc.constantFrom('||', '&&', '!', 'true', 'false', '(', ')', '==', '!=', 'r.sub', 'p.sub', 'r.obj', 'p.obj', 'r.act', 'p.act', 'p.eft', 'r_sub', 'g(r.sub, p.sub)', 'g2(r.obj, p.obj)', 'keyMatch(r.obj, p.obj)', 'regexMatch(r.obj, ".*")', 'eval(p.sub)', '1 == 1', '"allow"', 'in', '+', 'r.sub.Name', 'keyMatch(', 'g(', 'x', '[', '__proto__');

const modelFile = fc.oneof(
  // The stock model with lines dropped, repeated or replaced.
  fc.array(fc.tuple(fc.constantFrom('drop', 'repeat', 'replace'), fc.nat(), fc.oneof(nastyString, fc.constantFrom('[matchers]', 'm = true', 'e = some(where (p.eft == allow))', 'e = priority(p.eft) || deny', 'p = sub, obj', 'r = sub, obj, act, extra', 'g = _, _, _', 'g3 = _, _', '[request_definition]', 'x = y'))), { minLength: 1, maxLength: 4 }).map((edits) => {
    const lines = STOCK_MODEL.split('\n');
    for (const [op, at, text] of edits) {
      const i = at % lines.length;
      if (op === 'drop') lines.splice(i, 1);
      else if (op === 'repeat') lines.splice(i, 0, lines[i]!);
      else lines[i] = text;
    }
    return lines.join('\n');
  }),
  // The stock model with the matcher rewritten from matcher-ish tokens.
  fc.array(matcherToken, { minLength: 1, maxLength: 12 }).map((tokens) => STOCK_MODEL.replace(/^m = .*$/m, `m = ${tokens.join(' ')}`)),
  fc.tuple(fc.constantFrom('||', '&&'), matcherToken).map(([op, t]) => STOCK_MODEL.replace(/^(m = .*)$/m, `$1 ${op} ${t}`)),
  fc.string({ unit: 'binary', maxLength: 300 }),
);

function wellFormedProblems(problems: readonly { severity: string; file: string; line: number | null; message: string }[], lineCount: Record<string, number>) {
  for (const p of problems) {
    expect(['error', 'warning']).toContain(p.severity);
    expect([MODEL_FILE, POLICY_FILE]).toContain(p.file);
    expect(typeof p.message).toBe('string');
    expect(p.message.length).toBeGreaterThan(0);
    if (p.line !== null) {
      expect(Number.isInteger(p.line)).toBe(true);
      expect(p.line).toBeGreaterThanOrEqual(1);
      expect(p.line).toBeLessThanOrEqual(lineCount[p.file]! + 1);
    }
  }
}

const lineCounts = (model: string, policy: string) => ({ [MODEL_FILE]: model.split(/\r?\n|\r/).length, [POLICY_FILE]: policy.split(/\r?\n|\r/).length });

/** Requests that any snapshot must decide without throwing. */
const probes = [
  { user: 'alice', groups: ['analysts'], object: 'dataset:scratch/x', action: 'write' },
  { user: 'dave', groups: ['contractors'], object: 'dataset:customers', action: 'read' },
  { user: 'nobody', groups: [], object: 'audit:trail', action: 'read' },
  { user: 'bob', groups: ['platform-admins'], object: 'policy:files', action: 'admin' },
];

describe('policy lint over generated files (in-process)', () => {
  it('never throws on any policy.csv: every problem names its file and line, and a clean one decides', async () => {
    // As `gatehouse policy lint` checks a folder: the files written, then read back by lintPolicy.
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-prop-policy-'));
    writeFileSync(join(dir, MODEL_FILE), STOCK_MODEL);
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    await fc.assert(
      fc.asyncProperty(policyFile, async (policy) => {
        writeFileSync(join(dir, POLICY_FILE), policy);
        // The folder has no tests.yaml: lint would refuse every version for that (policies.require_tests).
        const result = await lintPolicy(dir, { tests: false });
        wellFormedProblems(result.problems, lineCounts(STOCK_MODEL, policy));
        const errors = result.problems.filter((p) => p.severity === 'error');
        expect(result.snapshot === undefined).toBe(errors.length > 0);
        if (result.snapshot) for (const p of probes) expect(typeof decide(result.snapshot, p, p.object, p.action).allowed).toBe('boolean');
      }),
      runs(150),
    );
  });

  it('never throws on any model.conf, never serves one with an error, and no model it accepts lets a stranger in', async () => {
    await fc.assert(
      fc.asyncProperty(modelFile, async (model) => {
        const result = await lintFiles('/generated', { model, policy: STOCK_POLICY });
        wellFormedProblems(result.problems, lineCounts(model, STOCK_POLICY));
        const errors = result.problems.filter((p) => p.severity === 'error');
        expect(result.snapshot === undefined).toBe(errors.length > 0);
        if (!result.snapshot) return;
        for (const p of probes) expect(typeof decide(result.snapshot, p, p.object, p.action).allowed).toBe('boolean');
        // No policy line names this user or any group of theirs: whatever the model, nothing is theirs.
        for (const object of ['dataset:words', 'dataset:customers', 'dataset:scratch/x', 'audit:trail', 'policy:files', 'job:all', 'cert:01']) {
          for (const action of ['read', 'write', 'admin']) expect(decide(result.snapshot, { user: 'stranger', groups: [] }, object, action).allowed, `${object} ${action}`).toBe(false);
        }
      }),
      runs(150),
    );
  });

  it('refuses every matcher that an always-true alternative opens to everyone (issue 15, point 4)', async () => {
    const stock = /^m = (.*)$/m.exec(STOCK_MODEL)![1]!;
    const alwaysTrue = fc.constantFrom('true', 'r.sub == r.sub', 'r.obj == r.obj', 'r.act == r.act', 'p.eft == p.eft', '"x" == "x"', '(true)', 'true && true', 'true || false', '!false', '!(false)');
    const form = fc.constantFrom((m: string, t: string) => `${m} || ${t}`, (m: string, t: string) => `${t} || ${m}`, (m: string, t: string) => `(${m}) || (${t})`, (m: string, t: string) => `${m} || ${t} && r.act == p.act`, (_m: string, t: string) => `g(r.sub, p.sub) || ${t} && keyMatch(r.obj, p.obj) && r.act == p.act`);
    await fc.assert(
      fc.asyncProperty(alwaysTrue, form, async (t, f) => {
        const model = STOCK_MODEL.replace(/^m = .*$/m, `m = ${f(stock, t)}`);
        const result = await lintFiles('/generated', { model, policy: STOCK_POLICY });
        expect(result.snapshot, f(stock, t)).toBeUndefined();
        expect(result.problems.some((p) => p.severity === 'error' && p.file === MODEL_FILE)).toBe(true);
      }),
      runs(50),
    );
  });

  it('is a pure function of the two files: linting the same files twice gives the same answer', async () => {
    await fc.assert(
      fc.asyncProperty(modelFile, policyFile, async (model, policy) => {
        const [a, b] = [await lintFiles('/generated', { model, policy }), await lintFiles('/generated', { model, policy })];
        expect(b.problems).toEqual(a.problems);
        expect(b.snapshot?.version).toBe(a.snapshot?.version);
      }),
      runs(60),
    );
  });
});

// --- In-process: CSR parsing ---------------------------------------------------------------------

const csrKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const forgeCsrKey = forge.pki.privateKeyFromPem(csrKey.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()) as forge.pki.rsa.PrivateKey;

/** A CSR for csrKey with any subject at all, built and signed by forge: the gateway must ignore the subject and certify the caller. */
function csrWithSubject(attributes: { name: string; value: string }[]): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.setRsaPublicKey(forgeCsrKey.n, forgeCsrKey.e);
  csr.setSubject(attributes.map((a) => ({ name: a.name, value: a.value, valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class })));
  csr.sign(forgeCsrKey, forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

const subjectValue = fc.oneof(nastyString.filter((s) => s.length > 0 && s.length < 200 && wellFormed(s)), fc.constantFrom('bob', 'gateway', 'admin', 'alice,OU=platform-admins', 'CN=bob', '*'));
const oddSubject = fc.array(fc.record({ name: fc.constantFrom('commonName', 'organizationalUnitName', 'organizationName', 'emailAddress', 'localityName'), value: subjectValue }), { maxLength: 4 });

const validCsr = csrWithSubject([{ name: 'commonName', value: 'alice' }]);
const validDer = Buffer.from(validCsr.replace(/-----[^-]+-----|\s/g, ''), 'base64');
const pem = (der: Buffer, label = 'CERTIFICATE REQUEST') => `-----BEGIN ${label}-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END ${label}-----\n`;

/** Garbage, PEM-wrapped garbage, and a real CSR with bytes flipped, cut or grown. */
const junkCsr = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 400 }),
  fc.uint8Array({ maxLength: 600 }).map((b) => pem(Buffer.from(b))),
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })).map(([at, x]) => {
    const der = Buffer.from(validDer);
    const i = at % der.length;
    der[i] = der[i]! ^ x;
    return pem(der);
  }),
  fc.nat().map((n) => pem(validDer.subarray(0, n % validDer.length))),
  fc.uint8Array({ minLength: 1, maxLength: 40 }).map((extra) => pem(Buffer.concat([validDer, Buffer.from(extra)]))),
  fc.constantFrom(
    pem(validDer, 'CERTIFICATE'),
    pem(validDer, 'PRIVATE KEY'),
    `${validCsr}${validCsr}`,
    validCsr.replace('REQUEST-----\n', 'REQUEST-----\n!!!!'),
    validCsr.replaceAll('\n', '\r\n'),
    '-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n',
    // Lengths that claim more than there is, and nesting deep enough to blow a recursive parser.
    pem(Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff])),
    pem(Buffer.from([0x30, 0x89, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09])),
    pem(Buffer.concat(Array.from({ length: 2000 }, () => Buffer.from([0x30, 0x80])))),
  ),
);

describe('CSR parsing over generated input (in-process)', () => {
  it('refuses any junk with a CertificateRequestError (a clear message), never another exception', () => {
    fc.assert(
      fc.property(junkCsr, (csr) => {
        let error: unknown;
        try {
          parseCertificateRequest(csr);
        } catch (err) {
          error = err;
        }
        // A flip inside the signature or the subject can still verify only if it changed nothing.
        if (error === undefined) return;
        expect((error as Error).name).toBe('CertificateRequestError');
        expect((error as Error).message.length).toBeGreaterThan(0);
      }),
      runs(300),
    );
  });

  it('reads a CSR with any subject, and refuses any that names someone other than the caller', () => {
    fc.assert(
      fc.property(oddSubject, (subject) => {
        const request = parseCertificateRequest(csrWithSubject(subject));
        expect(request.modulusBits).toBe(2048);
        const refusal = refusalOf(request.asks, 'alice');
        // Refused, with the reason of its first problem (names_another_user, names_a_service, asks_for_subject_field).
        if (subject.some((a) => a.name === 'commonName' && a.value !== 'alice')) expect(refusal?.message).toContain('a certificate names only you (alice)');
        if (refusal) expect(refusal.message.length).toBeGreaterThan(0);
      }),
      runs(100),
    );
  });
});

// --- In-process: the job spec oracle agrees with the wire's own checks -----------------------------

const BASE_SPEC = { name: 'p', input: 'scratch/tiny', output: 'scratch/prop-out', runtime: 'python', source: COPY, resources: { cores: 1, memory_mb: 256, time_limit_s: 60 } };

/** What the gateway must accept (schema, no coercion, then the coherence rules); everything else is a 400. */
function validSpec(body: unknown): body is JobSpec {
  return Value.Check(JobSpecSchema, body) && jobSpecProblem(body as JobSpec) === null;
}

// --- Through a real stack ----------------------------------------------------------------------------

let stack: Stack;
let agent: Agent;
const tokens: Record<string, string> = {};
let aliceRunning = '';

interface Answer {
  status: number;
  body: string;
  json(): Record<string, unknown>;
}

/** One request on a kept-alive connection; the body is sent as given (raw text, not re-encoded). */
function call(method: string, path: string, o: { token?: string; body?: string; contentType?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    if (o.body !== undefined) headers['content-type'] = o.contentType ?? 'application/json';
    const req = request(`${stack.url}${path}`, { method, agent, headers, timeout: 30_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, json: () => JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('timeout', () => req.destroy(new Error(`timed out: ${method} ${path}`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** A refusal as DESIGN.md shapes it: 4xx, JSON, a machine-readable `error` and a message for people. */
function expectClearRefusal(a: Answer, what: string): Record<string, unknown> {
  expect(a.status, `${what}: ${a.status} ${a.body.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
  expect(a.status, `${what}: ${a.status} ${a.body.slice(0, 300)}`).toBeLessThan(500);
  const body = a.json();
  expect(typeof body.error, what).toBe('string');
  expect(typeof body.message, what).toBe('string');
  return body;
}

/** What a refused input must leave alone: every job of everyone (as an admin sees them) and alice's usage. */
async function jobState(): Promise<string> {
  const jobs = (await call('GET', '/v1/jobs?all=1&limit=1000', { token: tokens.bob })).json().jobs as { id: string; state: string; user: string }[];
  // core_seconds_24h grows while alice's long job runs: time passing is not a change anyone made.
  const { core_seconds_24h: _, ...usage } = (await call('GET', '/v1/quota', { token: tokens.alice })).json().usage as Record<string, number>;
  return JSON.stringify({ jobs: jobs.map((j) => `${j.id}:${j.user}:${j.state === 'queued' ? 'running' : j.state}`).sort(), usage });
}

/** The certificates the gateway has stored, read from its store (SQLite or PostgreSQL). */
async function certificateRows(): Promise<{ serial: string; user: string; revoked_at: string | null }[]> {
  return (await stack.store()).db.selectFrom('client_certificates').select(['serial', 'user', 'revoked_at']).orderBy('serial').execute();
}

beforeAll(async () => {
  stack = await Stack.start({
    users: { mallory: ['contractors'] },
    config: { jobs: { poll_ms: 100, status_cache_ms: 100 }, engine: { slots: 2 } },
  });
  agent = new Agent({ keepAlive: true, maxSockets: 4, ca: stack.ca });
  const rows = { text: 'id,word\n1,a\n2,b\n', rows: 2 };
  await writeDataset(stack.dataRoot, 'scratch/tiny', { format: 'csv', columns: ['id', 'word'], owner: 'alice', labels: [], produced_by: 'test', partitions: [rows] });
  await writeDataset(stack.dataRoot, 'words', { format: 'csv', columns: ['id', 'word'], owner: 'platform', labels: [], produced_by: 'test', partitions: [rows] });
  for (const user of ['alice', 'bob', 'mallory']) tokens[user] = await stack.login(user);
  // A running job of alice's: what another user's guessed ids and cancels must not touch.
  const created = await call('POST', '/v1/jobs', { token: tokens.alice, body: JSON.stringify({ ...BASE_SPEC, output: 'scratch/prop-running', source: SLOW, resources: { ...BASE_SPEC.resources, time_limit_s: 3600 } }) });
  expect(created.status, created.body).toBe(201);
  aliceRunning = created.json().id as string;
  await until(async () => ((await call('GET', `/v1/jobs/${aliceRunning}`, { token: tokens.alice })).json().state === 'running' ? true : undefined), 60_000, 'the long job running');
}, 120_000);

afterAll(async () => {
  agent?.destroy();
  await stack?.stop();
});

describe('job specs through the gateway', () => {
  it('answers every malformed body with 400 naming the field, and runs nothing', async () => {
    let outputs = 0;
    let tried = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (mutations) => {
        const body = applyMutations({ ...BASE_SPEC, output: `scratch/prop-${++outputs}` }, mutations);
        const text = JSON.stringify(body) ?? 'null';
        // The oracle judges what the server will parse, so a mutation that kept the spec valid is not a failure.
        if (validSpec(JSON.parse(text))) return;
        tried++;
        const before = await jobState();
        const answer = await call('POST', '/v1/jobs', { token: tokens.alice, body: text });
        const refusal = expectClearRefusal(answer, `POST /v1/jobs ${text.slice(0, 200)}`);
        if (answer.status === 400) {
          expect(refusal.error).toBe('invalid_request');
          expect(typeof refusal.field).toBe('string');
        } else expect(answer.status).toBe(413); // a body over server.body_limit_bytes
        expect(await jobState()).toBe(before);
      }),
      runs(60),
    );
    // Most mutations break the spec: a generator that stopped doing so would test nothing.
    expect(tried).toBeGreaterThan(40);
  }, 90_000);

  it('answers raw bodies (bad JSON, numbers past range, duplicate keys, prototype keys) with a 4xx and runs nothing', async () => {
    const valid = JSON.stringify({ ...BASE_SPEC, output: 'scratch/prop-raw' });
    let tried = 0;
    await fc.assert(
      fc.asyncProperty(rawBody(valid), fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded'), async (text, contentType) => {
        let parsed: unknown;
        try {
          // A leading byte-order mark is ignored, as RFC 8259 allows and fastify's parser does.
          parsed = JSON.parse(text.replace(/^\ufeff/, ''));
        } catch {
          parsed = undefined;
        }
        if (contentType.startsWith('application/json') && validSpec(parsed) && !text.includes('__proto__') && !text.includes('constructor')) return;
        tried++;
        const before = await jobState();
        const answer = await call('POST', '/v1/jobs', { token: tokens.alice, body: text, contentType });
        expectClearRefusal(answer, `POST /v1/jobs (${contentType}) ${text.slice(0, 200)}`);
        expect(await jobState()).toBe(before);
      }),
      runs(50),
    );
    expect(tried).toBeGreaterThan(35);
  }, 90_000);

  it('refuses a contractor every dataset the policy does not grant: outside their own scratch-mallory/, or an input not granted', async () => {
    const datasetName = fc.oneof(
      nastyString,
      fc.constantFrom('words', 'customers', 'transactions', 'scratch/tiny', 'hr', 'scratch', 'scratch/', 'scratch/a/b', 'Words', 'words ', 'scratch/prop-running', 'scratch/x', 'scratch-alice/x', 'scratch-mallory/x', 'scratch-mallory', 'scratch-mallory/../x', 'scratch-{user}/x', 'scratch-*/x'),
      fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,10}(\/[a-z0-9][a-z0-9_-]{0,10})?$/),
    );
    await fc.assert(
      fc.asyncProperty(datasetName, datasetName, async (input, output) => {
        // The one thing the demo policy lets a contractor do: read words into their own namespace.
        fc.pre(!(input === 'words' && output.startsWith('scratch-mallory/')));
        const body = JSON.stringify({ ...BASE_SPEC, input, output });
        const before = await jobState();
        const answer = await call('POST', '/v1/jobs', { token: tokens.mallory, body });
        const refusal = expectClearRefusal(answer, `mallory ${input} -> ${output}`);
        if (!isDatasetName(input) || !isDatasetName(output) || input === output) expect(refusal.error).toBe('invalid_request');
        expect(await jobState()).toBe(before);
      }),
      runs(40),
    );
  }, 90_000);
});

describe('ids and names in URL paths', () => {
  const id = fc.oneof(
    nastyString.filter((s) => wellFormed(s)),
    fc.stringMatching(/^j[0-9a-f]{12}$/),
    fc.constantFrom('..', '.', '%2e%2e', '..%2f..%2fetc%2fpasswd', '%00', '%zz', '%', 'j%00', '*', 'all', 'null', 'undefined', '0', '-1', '1e9', 'x'.repeat(65), 'x'.repeat(64)),
  );
  // The real id of alice's running job, disguised: another user must never reach it.
  const disguised = fc.constantFrom((s: string) => s, (s: string) => s.toUpperCase(), (s: string) => `${s}%20`, (s: string) => ` ${s}`, (s: string) => `${s}/`, (s: string) => `${s}%2f`, (s: string) => `${s}?x=1`, (s: string) => `${s}#`, (s: string) => `./${s}`, (s: string) => `x/../${s}`, (s: string) => `${s}.json`);
  const routes = [
    ['GET', (x: string) => `/v1/jobs/${x}`],
    ['DELETE', (x: string) => `/v1/jobs/${x}`],
    ['GET', (x: string) => `/v1/jobs/${x}/logs`],
    ['GET', (x: string) => `/v1/jobs/${x}/logs?follow=1`],
    ['DELETE', (x: string) => `/v1/certs/${x}`],
    ['GET', (x: string) => `/v1/datasets/${x}`],
    ['GET', (x: string) => `/v1/jobs?state=${x}`],
    ['GET', (x: string) => `/v1/jobs?limit=${x}`],
  ] as const;

  it('answers any id, on any job or certificate route, with a clear 4xx and changes nothing', async () => {
    const certsBefore = await certificateRows();
    let tried = 0;
    await fc.assert(
      fc.asyncProperty(id, fc.constantFrom(...routes), fc.boolean(), async (raw, [method, path], encode) => {
        const x = encode ? encodeURIComponent(raw) : raw;
        // Node's client refuses to send what is not a legal request-target: that is no server answer.
        if (/[\u0000-\u0020\u007f-\uffff]/.test(x)) return;
        tried++;
        const before = await jobState();
        const answer = await call(method, path(x), { token: tokens.mallory });
        if (answer.status === 200) {
          // Only mallory's own (empty) job list, or an empty log of nothing, may succeed.
          expect(`${method} ${path(x)}`).toMatch(/^GET \/v1\/jobs\?/);
          return;
        }
        expectClearRefusal(answer, `${method} ${path(x)}`);
        expect(await jobState()).toBe(before);
      }),
      runs(80),
    );
    expect(tried).toBeGreaterThan(50);
    expect(await certificateRows()).toEqual(certsBefore);
  }, 90_000);

  it("never lets another user see, read the logs of, or cancel alice's running job, however its id is written", async () => {
    await fc.assert(
      fc.asyncProperty(disguised, fc.constantFrom(...routes.slice(0, 4)), async (disguise, [method, path]) => {
        const target = path(disguise(aliceRunning));
        const before = await jobState();
        const answer = await call(method, target, { token: tokens.mallory });
        const refusal = expectClearRefusal(answer, `${method} ${target}`);
        expect(JSON.stringify(refusal)).not.toContain('prop-running');
        expect(await jobState()).toBe(before);
      }),
      runs(25),
    );
    expect((await call('GET', `/v1/jobs/${aliceRunning}`, { token: tokens.alice })).json().state).toBe('running');
  }, 60_000);
});

describe('CSRs through the gateway', () => {
  it('refuses junk CSRs with 400 naming csr, and issues nothing', async () => {
    let tried = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(junkCsr.map((csr) => ({ csr })), junkValue.map((csr) => ({ csr })), junkValue, fc.record({ csr: fc.constant(validCsr), ttl_s: junkValue })), async (body) => {
        const text = JSON.stringify(body) ?? 'null';
        const parsed = JSON.parse(text) as { csr?: unknown; ttl_s?: unknown } | null;
        const ttlOk = parsed?.ttl_s === undefined || (Number.isInteger(parsed.ttl_s) && (parsed.ttl_s as number) >= 60);
        const onlyKnown = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) && Object.keys(parsed).every((k) => k === 'csr' || k === 'ttl_s');
        // A flipped bit that still parses (and verifies) is a valid CSR: the next property's case.
        let parses = false;
        try {
          parseCertificateRequest(parsed?.csr);
          parses = true;
        } catch {
          parses = false;
        }
        if (parses && ttlOk && onlyKnown) return;
        tried++;
        const before = await certificateRows();
        const answer = await call('POST', '/v1/certs', { token: tokens.alice, body: text });
        const refusal = expectClearRefusal(answer, `POST /v1/certs ${text.slice(0, 200)}`);
        if (answer.status === 400) {
          expect(refusal.error).toBe('invalid_request');
          expect(typeof refusal.field).toBe('string');
        }
        expect(await certificateRows()).toEqual(before);
      }),
      runs(80),
    );
    expect(tried).toBeGreaterThan(60);
  }, 90_000);

  it('signs a valid CSR for the caller alone: one naming anyone else is a 400, never a certificate', async () => {
    let signed = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(oddSubject, fc.constantFrom<{ name: string; value: string }[]>([], [{ name: 'commonName', value: 'alice' }], [{ name: 'commonName', value: 'alice' }, { name: 'organizationalUnitName', value: 'users' }])), async (subject) => {
        const before = (await certificateRows()).length;
        const answer = await call('POST', '/v1/certs', { token: tokens.alice, body: JSON.stringify({ csr: csrWithSubject(subject) }) });
        if (answer.status !== 200 || subject.some((a) => a.name === 'commonName' && a.value !== 'alice')) {
          const refusal = expectClearRefusal(answer, `CSR for ${JSON.stringify(subject)}`);
          expect(refusal).toMatchObject({ error: 'invalid_request', field: 'csr' });
          expect(await certificateRows()).toHaveLength(before);
          return;
        }
        signed++;
        const cert = new X509Certificate(answer.json().certificate as string);
        expect(cert.subject.split('\n')).toContain('CN=alice');
        expect(cert.subject).not.toMatch(/platform-admins|gateway|bob/);
        expect(cert.ca).toBe(false);
        const rows = await certificateRows();
        expect(rows).toHaveLength(before + 1);
        expect(rows.filter((r) => r.user !== 'alice')).toEqual([]);
      }),
      runs(20),
    );
    expect(signed).toBeGreaterThan(0);
  }, 90_000);
});

describe('policy files through a live reload', () => {
  const serving = async () => (await call('GET', '/v1/policy', { token: tokens.bob })).json().version as string;

  it('refuses a broken policy.csv or model.conf on reload: 4xx, and the serving version stays', async () => {
    const dir = stack.policies;
    const original = { model: readFileSync(join(dir, MODEL_FILE), 'utf8'), policy: readFileSync(join(dir, POLICY_FILE), 'utf8') };
    const version = await serving();
    let tried = 0;
    const broken = fc.oneof(
      policyFile.map((policy) => ({ model: original.model, policy })),
      modelFile.map((model) => ({ model, policy: original.policy })),
    );
    try {
      await fc.assert(
        fc.asyncProperty(broken, async (files) => {
          // Only what lint refuses is this property's: a generated pair that happens to be valid is skipped.
          if ((await lintFiles(dir, files)).problems.every((p) => p.severity !== 'error')) return;
          tried++;
          writeFileSync(join(dir, MODEL_FILE), files.model);
          writeFileSync(join(dir, POLICY_FILE), files.policy);
          try {
            const answer = await call('POST', '/v1/policy/reload', { token: tokens.bob, body: '{}' });
            expectClearRefusal(answer, 'POST /v1/policy/reload');
            expect(await serving()).toBe(version);
            // The refused files decide nothing: alice still reads what the serving version grants.
            expect((await call('GET', `/v1/jobs/${aliceRunning}`, { token: tokens.alice })).status).toBe(200);
          } finally {
            writeFileSync(join(dir, MODEL_FILE), original.model);
            writeFileSync(join(dir, POLICY_FILE), original.policy);
          }
        }),
        runs(10),
      );
    } finally {
      writeFileSync(join(dir, MODEL_FILE), original.model);
      writeFileSync(join(dir, POLICY_FILE), original.policy);
    }
    expect(tried).toBeGreaterThan(5);
    expect(await serving()).toBe(version);
  }, 90_000);
});

describe('other bodies', () => {
  const bodied = ['/v1/policy/explain', '/v1/certs', '/v1/jobs', '/v1/policy/reload'];

  it('answers any JSON on the authenticated POST routes with a clear 4xx or a 200 that changed nothing', async () => {
    const certsBefore = await certificateRows();
    const version = (await call('GET', '/v1/policy', { token: tokens.bob })).json().version;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...bodied), fc.oneof(junkValue, fc.dictionary(fc.constantFrom('user', 'object', 'action', 'groups', 'labels', 'csr', 'name'), junkValue, { maxKeys: 5 })), fc.constantFrom('alice', 'mallory'), async (path, body, user) => {
        const text = JSON.stringify(body) ?? 'null';
        const before = await jobState();
        const answer = await call('POST', path, { token: tokens[user], body: text });
        if (answer.status === 200) expect(path).toBe('/v1/policy/explain');
        else expectClearRefusal(answer, `POST ${path} ${text.slice(0, 200)}`);
        expect(await jobState()).toBe(before);
      }),
      runs(60),
    );
    expect(await certificateRows()).toEqual(certsBefore);
    expect((await call('GET', '/v1/policy', { token: tokens.bob })).json().version).toBe(version);
  }, 90_000);
});

describe('after every property', () => {
  it('nothing crashed: the gateway, engine and IdP processes are alive and the gateway is ready', async () => {
    for (const p of [stack.gateway, stack.engine, stack.idp]) {
      expect(p.child.exitCode).toBeNull();
      expect(p.child.signalCode).toBeNull();
    }
    const ready = await call('GET', '/readyz');
    expect(ready.status, ready.body).toBe(200);
    // And alice's long job ran through all of it untouched.
    expect((await call('GET', `/v1/jobs/${aliceRunning}`, { token: tokens.alice })).json().state).toBe('running');
  });
});
