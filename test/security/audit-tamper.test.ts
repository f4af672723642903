// The trail rewritten by someone with write access to its file (an insider, a backup restored by
// the wrong person), and verify (or the gateway's own start-up) locating it: an anchor copied from
// a checkpoint with the events before it deleted (issue 15, 3a), a suffix rewritten with every
// later hash recomputed and the later checkpoints deleted, then the gateway restarted (3b), a
// deleted checkpoint, a trail cut shorter than its witness or disagreeing with it, and a rotated
// audit key under which the older checkpoints still verify. The trail runs on its real writer
// thread and SQLite file; one test runs the real gateway process.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { statSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuditInput, type AuditSigningKey, AuditTrail, loadAuditKey, openAuditDb, readWitness, rotateAuditKey, verifyTrail, type VerifyOptions, witnessFileOf } from '../../src/audit/index.js';
import { eventOf, hashRow } from '../../src/audit/chain.js';
import { checkpointDigest, readCheckpoint, signCheckpoint } from '../../src/audit/checkpoint.js';
import type { AuditRow } from '../../src/audit/schema.js';
import { auditKeyFromPem } from '../../src/audit/signing-key.js';
import { startServiceProcess } from '../support/engine.js';
import { runCli, sandbox } from '../support/gatehouse.js';
import { fetchTls } from '../support/https.js';
import { until } from '../support/until.js';

const root = mkdtempSync(join(tmpdir(), 'gatehouse-audit-tamper-'));
let key: AuditSigningKey;

const input = (i: number): AuditInput => ({
  actor: { user: `user${i % 3}`, groups: ['analysts'], auth_method: 'oidc', ip: '10.0.0.1' },
  action: 'dataset.read',
  object: `dataset:set${i % 5}`,
  decision: 'allow',
  reason: 'p, role:analysts, dataset:*, read, allow',
  request_id: `req-${i}`,
  details: { n: i },
});

interface Built {
  dir: string;
  archiveDir: string;
  witnessFile: string;
}

/** The options a trail in `b` is opened with: its witness, its archive folder. */
const opts = (b: Built, k = key) => ({ dir: b.dir, key: k, checkpointMs: 3_600_000, probeMs: 3_600_000, witnessFile: b.witnessFile, archiveDir: b.archiveDir });

/**
 * A trail written in `rounds` runs of the gateway, `per` events each; each close signs the tail, so
 * checkpoint r signs event r * per.
 */
async function build(name: string, rounds: number, per: number, k = key): Promise<Built> {
  const dir = join(root, name);
  const b = { dir, archiveDir: join(dir, 'archive'), witnessFile: join(root, `${name}.witness.jsonl`) };
  let n = 0;
  for (let r = 0; r < rounds; r++) {
    const trail = await AuditTrail.open(opts(b, k));
    await Promise.all(Array.from({ length: per }, () => trail.record(input(n++))));
    await trail.close();
  }
  return b;
}

/** A copy of a built trail (database and witness), to tamper with. */
function copy(b: Built, name: string): Built {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(b.dir, 'audit.db'), join(dir, 'audit.db'));
  const witnessFile = join(root, `${name}.witness.jsonl`);
  copyFileSync(b.witnessFile, witnessFile);
  return { dir, archiveDir: join(dir, 'archive'), witnessFile };
}

function tamper(b: Built, edit: (db: Database.Database) => void): void {
  const db = openAuditDb(b.dir);
  try {
    edit(db);
  } finally {
    db.close();
  }
}

function verify(b: Built, o: Omit<VerifyOptions, 'archiveDir'> = {}, keys = key.known) {
  const db = openAuditDb(b.dir, { readonly: true });
  try {
    return verifyTrail(db, keys, { archiveDir: b.archiveDir, ...o });
  } finally {
    db.close();
  }
}

const row = (db: Database.Database, id: number) => db.prepare('select * from audit_events where id = ?').get(id) as AuditRow;

/** What an insider does: change event `id`, then recompute its hash and every later one so the links hold. */
function rewriteFrom(db: Database.Database, id: number, reason: string): void {
  const rows = db.prepare('select * from audit_events where id >= ? order by id').all(id) as AuditRow[];
  let prev = rows[0]!.prev_hash;
  const update = db.prepare('update audit_events set reason = ?, prev_hash = ?, hash = ? where id = ?');
  for (const r of rows) {
    const changed = { ...r, reason: r.id === id ? reason : r.reason, prev_hash: prev };
    const { hash: _old, ...content } = changed;
    const hash = hashRow(content);
    update.run(changed.reason, prev, hash, r.id);
    prev = hash;
  }
}

const checkpointRows = (b: Built) => {
  const db = openAuditDb(b.dir, { readonly: true });
  try {
    return db.prepare('select seq, event_id, hash, kid, jws from audit_checkpoints order by row').all() as { seq: number | null; event_id: number; hash: string; kid: string; jws: string }[];
  } finally {
    db.close();
  }
};

beforeAll(() => {
  key = loadAuditKey(join(root, 'certs'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('checkpoints chain to each other', () => {
  let base: Built;
  beforeAll(async () => {
    base = await build('chain', 4, 10);
  });

  it('each signs its number and the previous one', () => {
    const rows = checkpointRows(base);
    expect(rows.map((r) => [r.seq, r.event_id])).toEqual([
      [1, 10],
      [2, 20],
      [3, 30],
      [4, 40],
    ]);
    const signed = rows.map((r) => (readCheckpoint(r.jws) as { checkpoint: { seq: number; prev: string | null } }).checkpoint);
    expect(signed.map((c) => c.seq)).toEqual([1, 2, 3, 4]);
    expect(signed[0]!.prev).toBeNull();
    for (let i = 1; i < 4; i++) expect(signed[i]!.prev).toBe(checkpointDigest(rows[i - 1]!.jws));
    expect(verify(base)).toMatchObject({ ok: true, checkpoints: 4, last_checkpoint: { event_id: 40, seq: 4 } });
  });

  it('a deleted checkpoint is found, located at the one after the hole', () => {
    const middle = copy(base, 'chain-middle');
    tamper(middle, (db) => db.prepare('delete from audit_checkpoints where seq = 2').run());
    expect(verify(middle, {}).problems).toEqual([expect.objectContaining({ kind: 'missing_checkpoint', event_id: 30, message: expect.stringMatching(/checkpoint 2 is missing/) })]);
    const first = copy(base, 'chain-first');
    tamper(first, (db) => db.prepare('delete from audit_checkpoints where seq = 1').run());
    expect(verify(first, {}).problems).toEqual([expect.objectContaining({ kind: 'missing_checkpoint', event_id: 20, message: expect.stringMatching(/checkpoint 1 is missing/) })]);
  });

  it('a checkpoint replaced by one signed with another key is found, and the chain holds around it', () => {
    const replaced = copy(base, 'chain-replaced');
    const other = loadAuditKey(join(root, 'other-certs'));
    tamper(replaced, (db) => {
      const prev = (db.prepare('select jws from audit_checkpoints where seq = 1').get() as { jws: string }).jws;
      const forged = signCheckpoint(other, 20, row(db, 20).hash, new Date(), { seq: 2, prev: checkpointDigest(prev) });
      db.prepare('update audit_checkpoints set jws = ?, kid = ? where seq = 2').run(forged.jws, forged.kid);
    });
    expect(verify(replaced, {}).problems).toEqual([expect.objectContaining({ kind: 'bad_checkpoint', event_id: 20, message: expect.stringMatching(/checkpoint 2 .* not the one checkpoint 3 follows: signed by an unknown key/) })]);
  });
});

describe('the anchor is checked against the archive that made it (3a)', () => {
  let base: Built;
  beforeAll(async () => {
    base = await build('anchor', 3, 20);
  });

  it('a checkpoint copied into the anchor, with every earlier event deleted, is bad_anchor', () => {
    const forged = copy(base, 'anchor-forged');
    tamper(forged, (db) => {
      const cp = db.prepare('select event_id, hash, jws from audit_checkpoints where event_id = 20').get() as { event_id: number; hash: string; jws: string };
      const name = 'audit-000000000001-000000000020.jsonl';
      db.prepare('insert into audit_anchor (one, event_id, hash, file, jws) values (1, ?, ?, ?, ?)').run(cp.event_id, cp.hash, name, cp.jws);
      db.prepare('delete from audit_events where id <= 20').run();
      db.prepare('delete from audit_checkpoints where event_id <= 20').run();
      // Even with a file of that name in the archive folder.
      mkdirSync(forged.archiveDir, { recursive: true });
      writeFileSync(join(forged.archiveDir, name), '{"archive":{}}\n');
    });
    const report = verify(forged, {});
    expect(report.ok).toBe(false);
    expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'bad_anchor', event_id: 20, message: expect.stringMatching(/signs no archive/) }));
  });

  it('a real archive run verifies; its file removed is missing_archive, edited or swapped is bad_anchor', async () => {
    const b = copy(base, 'anchor-real');
    const trail = await AuditTrail.open(opts(b));
    const archived = await trail.archive(new Date(Date.now() + 60_000), b.archiveDir, 30);
    expect(archived).toMatchObject({ from_id: 1, to_id: 30 });
    await trail.record(input(99));
    const live = await trail.verify();
    await trail.close();
    expect(live).toMatchObject({ ok: true, first_id: 31, anchor: { event_id: 30 } });
    expect(verify(b, { witnessFile: b.witnessFile })).toMatchObject({ ok: true, anchor: { event_id: 30 } });

    const bytes = readFileSync(archived!.file);
    rmSync(archived!.file);
    expect(verify(b).problems).toEqual([expect.objectContaining({ kind: 'missing_archive', event_id: 30 })]);
    writeFileSync(archived!.file, bytes.toString('utf8').replace('"reason":"', '"reason":"(quietly) '));
    expect(verify(b).problems).toEqual([expect.objectContaining({ kind: 'bad_anchor', event_id: 30, message: expect.stringMatching(/changed after it was written/) })]);
    writeFileSync(archived!.file, bytes);
    expect(verify(b).ok).toBe(true);
    tamper(b, (db) => db.prepare("update audit_anchor set file = 'audit-000000000001-000000000010.jsonl'").run());
    expect(verify(b).problems).toEqual([expect.objectContaining({ kind: 'bad_anchor', event_id: 30 })]);
  });
});

describe('an anchor from before checkpoints chained (3a, old-style)', () => {
  let base: Built;
  beforeAll(async () => {
    base = await build('legacy-anchor', 2, 10);
  });

  /** A pre-upgrade checkpoint (no number, no archive) of event `id`, as the migration keeps them. */
  const legacyCheckpoint = (db: Database.Database, id: number) => signCheckpoint(key, id, row(db, id).hash, new Date());

  /** A real archive of events from..to, as retention wrote it before archives were signed. */
  function writeArchive(db: Database.Database, dir: string, from: number, to: number): string {
    const rows = db.prepare('select * from audit_events where id between ? and ? order by id').all(from, to) as AuditRow[];
    const name = `audit-${String(from).padStart(12, '0')}-${String(to).padStart(12, '0')}.jsonl`;
    const header = { archive: { format: 1, from_id: from, to_id: to, prev_hash: rows[0]!.prev_hash, created_at: new Date().toISOString(), key: key.jwk } };
    const cp = legacyCheckpoint(db, to);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, name), `${[JSON.stringify(header), ...rows.map((r) => JSON.stringify(eventOf(r))), JSON.stringify({ checkpoint: cp.jws })].join('\n')}\n`);
    return name;
  }

  it('copied into the anchor of a chained trail, with the events before it deleted and a one-line archive: bad_anchor, and the gateway does not open it', async () => {
    const b = copy(base, 'legacy-anchor-forged');
    tamper(b, (db) => {
      const cp = legacyCheckpoint(db, 5);
      db.prepare('delete from audit_events where id <= 5').run();
      db.prepare('insert or replace into audit_anchor (one, event_id, hash, file, jws) values (1, ?, ?, ?, ?)').run(5, cp.hash, 'audit-old.jsonl', cp.jws);
      mkdirSync(b.archiveDir, { recursive: true });
      writeFileSync(join(b.archiveDir, 'audit-old.jsonl'), `${JSON.stringify({ archive: { format: 1 } })}\n${JSON.stringify({ id: 5, hash: cp.hash })}\n`);
    });
    for (const o of [{}, { witnessFile: b.witnessFile }]) {
      const report = verify(b, o);
      expect(report.ok).toBe(false);
      expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'bad_anchor', event_id: 5, message: expect.stringMatching(/from before checkpoints chained, in a trail with chained checkpoints/) }));
    }
    await expect(AuditTrail.open(opts(b))).rejects.toThrow(/archive anchor \(#5\) stands on a checkpoint from before checkpoints chained/);
    expect(checkpointRows(b)).toHaveLength(2); // nothing signed over it
  });

  /** A legacy trail: no chained checkpoints, a pre-upgrade anchor on #10 (events #1..#10 archived), a legacy checkpoint on #20. */
  function legacyTrail(name: string, archive: (db: Database.Database, b: Built) => string): Built {
    const b = copy(base, name);
    rmSync(b.witnessFile); // before the upgrade there was no witness
    tamper(b, (db) => {
      const file = archive(db, b);
      const anchor = legacyCheckpoint(db, 10);
      const top = legacyCheckpoint(db, 20);
      db.prepare('delete from audit_checkpoints').run();
      db.prepare('insert into audit_checkpoints (seq, event_id, hash, time, kid, prev, jws) values (null, ?, ?, ?, ?, null, ?)').run(20, top.hash, Date.now(), top.kid, top.jws);
      db.prepare('insert or replace into audit_anchor (one, event_id, hash, file, jws) values (1, ?, ?, ?, ?)').run(10, anchor.hash, file, anchor.jws);
      db.prepare('delete from audit_events where id <= 10').run();
    });
    return b;
  }

  it('in a legacy trail, its archive must verify in full back to #1: a forged or partial archive is found and not re-signed', async () => {
    const oneLine = legacyTrail('legacy-one-line', (db, b) => {
      mkdirSync(b.archiveDir, { recursive: true });
      writeFileSync(join(b.archiveDir, 'audit-old.jsonl'), `${JSON.stringify({ archive: { format: 1 } })}\n${JSON.stringify({ id: 10, hash: row(db, 10).hash })}\n`);
      return 'audit-old.jsonl';
    });
    expect(verify(oneLine).problems).toEqual([expect.objectContaining({ kind: 'bad_anchor', event_id: 10, message: expect.stringMatching(/audit-old\.jsonl has no archive header/) })]);
    await expect(AuditTrail.open(opts(oneLine))).rejects.toThrow(/archive anchor \(#10\) cannot be re-signed: the archive audit-old\.jsonl has no archive header/);

    // Only the anchor's own event, with a header that chains it: #1..#9 are gone without an archive.
    const partial = legacyTrail('legacy-partial', (db, b) => writeArchive(db, b.archiveDir, 10, 10));
    expect(verify(partial).problems).toEqual([expect.objectContaining({ kind: 'missing_archive', event_id: 10, message: expect.stringMatching(/starts at #10, and no archive .* holds the events before it/) })]);
    await expect(AuditTrail.open(opts(partial))).rejects.toThrow(/cannot be re-signed/);

    // An edited event in the archive.
    const edited = legacyTrail('legacy-edited', (db, b) => {
      const name = writeArchive(db, b.archiveDir, 1, 10);
      const path = join(b.archiveDir, name);
      writeFileSync(path, readFileSync(path, 'utf8').replace('"reason":"', '"reason":"(quietly) '));
      return name;
    });
    expect(verify(edited).problems).toEqual([expect.objectContaining({ kind: 'bad_anchor', event_id: 10, message: expect.stringMatching(/holds event #1 .* no longer matches its hash/) })]);
  });

  it('a genuine legacy trail verifies (its archives chained back to #1), and the gateway re-signs its anchor as checkpoint 1 naming the archive', async () => {
    const b = legacyTrail('legacy-real', (db, bb) => {
      writeArchive(db, bb.archiveDir, 1, 4);
      return writeArchive(db, bb.archiveDir, 5, 10);
    });
    expect(verify(b)).toMatchObject({ ok: true, first_id: 11, anchor: { event_id: 10 } });
    const trail = await AuditTrail.open(opts(b));
    await trail.record(input(1));
    await trail.close();
    const anchorCp = readCheckpoint((openAuditDb(b.dir, { readonly: true }).prepare('select jws from audit_anchor').get() as { jws: string }).jws);
    expect(anchorCp).toMatchObject({ checkpoint: { seq: 1, event_id: 10, archive: { file: 'audit-000000000005-000000000010.jsonl', from_id: 5, to_id: 10 } } });
    expect(verify(b, { witnessFile: b.witnessFile })).toMatchObject({ ok: true, anchor: { event_id: 10 } });
    expect(readWitness(b.witnessFile).entries.map((e) => [e.seq, e.event_id])).toEqual([
      [1, 10],
      [2, 21],
    ]);
    // And it opens again (the anchor now stands on a signed archive).
    const again = await AuditTrail.open(opts(b));
    await again.close();
  });
});

describe('a rewritten suffix is not signed over (3b)', () => {
  let base: Built;
  beforeAll(async () => {
    base = await build('suffix', 3, 20);
  });

  it('with the later checkpoints deleted: the trail alone cannot tell, the witness can, and the gateway does not open it', async () => {
    const b = copy(base, 'suffix-cut');
    tamper(b, (db) => {
      rewriteFrom(db, 25, 'allowed by nobody');
      db.prepare('delete from audit_checkpoints where event_id >= 25').run();
    });
    expect(verify(b).ok).toBe(true); // the file alone: every hash and link holds, the checkpoint left signs #20
    const report = verify(b, { witnessFile: b.witnessFile });
    expect(report.ok).toBe(false);
    expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'missing_checkpoint', event_id: 40, message: expect.stringMatching(/holds checkpoints 2\.\.3 .*end at 1/) }));
    expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'witness_mismatch', event_id: 40 }));
    expect(report.problems).toContainEqual(expect.objectContaining({ kind: 'witness_mismatch', event_id: 60 }));

    await expect(AuditTrail.open(opts(b))).rejects.toThrow(/witness .* holds checkpoint 3 \(event #60.*checkpoints end at 1/);
    expect(checkpointRows(b)).toHaveLength(1); // nothing was signed over the forged head
  });

  it('with the checkpoints kept: the gateway does not open it either', async () => {
    const b = copy(base, 'suffix-kept');
    tamper(b, (db) => rewriteFrom(db, 25, 'allowed by nobody'));
    await expect(AuditTrail.open({ ...opts(b), witnessFile: undefined })).rejects.toThrow(/event #60 is not the one checkpoint 3 signed/);
    expect(verify(b).problems.map((p) => [p.kind, p.event_id])).toEqual([
      ['edited', 40],
      ['edited', 60],
    ]);
  });

  it('an edited unsigned tail (after the last checkpoint) stops the start too', async () => {
    const b = copy(base, 'suffix-tail');
    const trail = await AuditTrail.open(opts(b));
    await Promise.all([1, 2, 3].map((i) => trail.record(input(100 + i))));
    // The writer dies before it signs (kill -9): events #61..#63 are unsigned.
    await (trail as unknown as { writer: { worker: import('node:worker_threads').Worker } }).writer.worker.terminate(); // the writer thread dies (src/audit/writer-client.ts)
    await trail.close();
    tamper(b, (db) => db.prepare("update audit_events set reason = 'quietly' where id = 62").run());
    await expect(AuditTrail.open(opts(b))).rejects.toThrow(/event #62, after the last signed event #60, does not chain/);
  });

  it('a missing, empty or cut-back witness stops the start; only an explicit reset naming the newest checkpoint starts it again, recorded in the trail', async () => {
    const b = copy(base, 'witness-missing');
    const lines = readFileSync(b.witnessFile, 'utf8');
    rmSync(b.witnessFile);
    await expect(AuditTrail.open(opts(b))).rejects.toThrow(/witness file .* is missing, but the trail has 3 signed checkpoint.*GATEHOUSE_AUDIT_WITNESS_RESET=3/);
    writeFileSync(b.witnessFile, '');
    await expect(AuditTrail.open(opts(b))).rejects.toThrow(/witness file .* holds no checkpoint, but the trail has 3/);
    // Cut back to before checkpoint 3 (what an insider does along with a rewrite of the trail).
    writeFileSync(b.witnessFile, `${lines.split('\n').slice(0, 2).join('\n')}\n`);
    await expect(AuditTrail.open(opts(b))).rejects.toThrow(/witness .* ends at checkpoint 2 \(event #40\), but the trail's checkpoints go on to 3: the witness was cut back/);
    await expect(AuditTrail.open({ ...opts(b), witnessReset: 2 })).rejects.toThrow(/cut back/); // a reset names the newest checkpoint
    expect(checkpointRows(b)).toHaveLength(3);

    const trail = await AuditTrail.open({ ...opts(b), witnessReset: 3 });
    await trail.record(input(1));
    await trail.close();
    const reset = openAuditDb(b.dir, { readonly: true }).prepare("select id, reason, details from audit_events where action = 'audit.witness_reset'").all() as { id: number; reason: string; details: string }[];
    expect(reset).toEqual([{ id: 61, reason: expect.stringMatching(/cut back to checkpoint 2 .* started again from checkpoint 3/), details: JSON.stringify({ file: b.witnessFile, restarted_at: 3, witness_had: 2 }) }]);
    expect(readWitness(b.witnessFile).entries.map((e) => [e.seq, e.event_id])).toEqual([
      [1, 20],
      [2, 40],
      [3, 60],
      [4, 61],
      [5, 62],
    ]);
    expect(verify(b, { witnessFile: b.witnessFile }).ok).toBe(true);
    // One start: the witness now agrees, and the next start needs no reset.
    const again = await AuditTrail.open(opts(b));
    await again.close();
  });

  it('the real gateway refuses to start on a rewritten suffix, and audit verify --witness locates it', async () => {
    const box = sandbox({ state: { dir: 'var' }, certs: { dir: 'certs' }, engine: { host: '127.0.0.1', port: 1 } });
    try {
      const auditDir = join(box.dir, 'var', 'audit');
      const witness = join(box.dir, 'var', 'audit-witness.jsonl');
      const run = async (requests: number) => {
        const gw = await startServiceProcess(box, 'gateway');
        const ca = readFileSync(join(box.dir, 'certs', 'ca.crt'), 'utf8');
        for (let i = 0; i < requests; i++) {
          const r = await fetchTls(`${gw.url}/v1/datasets`, { ca, headers: { authorization: `Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJtYWxsb3J5In0.${i}` } });
          expect(r.status).toBe(401);
        }
        await gw.stop(); // SIGTERM: the tail is signed
      };
      await run(3);
      await run(3);
      const ours = { dir: auditDir, archiveDir: join(auditDir, 'archive'), witnessFile: witness };
      const signed = checkpointRows(ours);
      expect(signed.length).toBeGreaterThanOrEqual(2);
      expect(readWitness(witness).entries.map((e) => e.jws)).toEqual(signed.map((s) => s.jws));
      const firstOfSecondRun = signed[0]!.event_id + 1;
      tamper(ours, (db) => {
        rewriteFrom(db, firstOfSecondRun, 'allowed by nobody');
        db.prepare('delete from audit_checkpoints where event_id >= ?').run(firstOfSecondRun);
      });
      await expect(startServiceProcess(box, 'gateway')).rejects.toThrow(/witness .* holds checkpoint \d+ .*checkpoints were deleted from the trail/);
      expect(checkpointRows(ours)).toHaveLength(1);

      const cli = await runCli(['audit', 'verify', '--witness', witness, '--config', box.configFile, '--url', 'https://127.0.0.1:1']);
      expect(cli.code, cli.stderr).toBe(1);
      expect(cli.stdout).toMatch(/trail NOT intact/);
      expect(cli.stdout).toMatch(/missing_checkpoint: the witness audit-witness\.jsonl holds checkpoint/);
      expect(cli.stdout).toMatch(new RegExp(`#${signed.at(-1)!.event_id}  witness_mismatch`));
    } finally {
      box.remove();
    }
  }, 120_000);
});

describe('the witness', () => {
  let base: Built;

  it('lives outside audit.dir: state.dir/audit-witness.jsonl by default, and a path inside audit.dir is refused at start-up', () => {
    const state = join(root, 'state');
    expect(witnessFileOf('', state, join(state, 'audit'))).toBe(join(state, 'audit-witness.jsonl'));
    expect(existsSync(state)).toBe(true); // its folder is made
    expect(() => witnessFileOf(join(state, 'audit', 'w.jsonl'), state, join(state, 'audit'))).toThrow(/audit\.witness_file: .* is inside audit\.dir/);
    expect(witnessFileOf(join(root, 'elsewhere', 'w.jsonl'), state, join(state, 'audit'))).toBe(join(root, 'elsewhere', 'w.jsonl'));
    // A name that starts with two dots is still inside.
    expect(() => witnessFileOf(join(state, 'audit', '..w'), state, join(state, 'audit'))).toThrow(/audit\.witness_file: .* is inside audit\.dir/);
    expect(witnessFileOf(join(state, 'audit', '..', 'w2.jsonl'), state, join(state, 'audit'))).toBe(join(state, 'w2.jsonl'));
  });

  it('on the same device as audit.dir (the default) is warned about, in the log and in health (/readyz)', async () => {
    const b = copy(base, 'witness-same-device');
    const warned: string[] = [];
    const trail = await AuditTrail.open(opts(b));
    trail.attachLog({ info() {}, warn: (_o: object, msg: string) => warned.push(msg), error() {} });
    const health = trail.health();
    await trail.close();
    expect(statSync(dirname(b.witnessFile)).dev).toBe(statSync(b.dir).dev);
    expect(health.warning).toMatch(/witness .* is on the same device as audit\.dir: it protects only against edits of the database alone/);
    expect(warned).toEqual([expect.stringMatching(/same device as audit\.dir/)]);
  });

  it.skipIf(!existsSync('/dev/shm') || statSync('/dev/shm').dev === statSync(tmpdir()).dev)('on another device is not warned about', async () => {
    const b = copy(base, 'witness-other-device');
    const elsewhere = mkdtempSync('/dev/shm/gatehouse-witness-');
    const witnessFile = join(elsewhere, 'w.jsonl');
    copyFileSync(b.witnessFile, witnessFile);
    try {
      const trail = await AuditTrail.open({ ...opts(b), witnessFile });
      const health = trail.health();
      await trail.close();
      expect(health.available).toBe(true);
      expect(health.warning).toBeUndefined();
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });

  beforeAll(async () => {
    base = await build('witness', 3, 10);
  });

  it('holds every checkpoint, and an intact trail agrees with it (also with the gateway log as the witness)', async () => {
    expect(readWitness(base.witnessFile).entries.map((e) => [e.seq, e.event_id])).toEqual([
      [1, 10],
      [2, 20],
      [3, 30],
    ]);
    expect(verify(base, { witnessFile: base.witnessFile })).toMatchObject({ ok: true, witness: { checkpoints: 3, last_seq: 3 } });
    // The operator's log lines for checkpoints serve as a witness too (what a SIEM keeps).
    const b = copy(base, 'witness-log');
    const lines: string[] = [];
    const log = { info: (o: object, msg: string) => lines.push(JSON.stringify({ level: 30, ...o, msg })), warn() {}, error() {} };
    const trail = await AuditTrail.open({ ...opts(b), log });
    await trail.record(input(1));
    await trail.close();
    const logFile = join(root, 'gateway.log');
    writeFileSync(logFile, `{"level":30,"msg":"gateway listening"}\n${lines.join('\n')}\n`);
    expect(verify(b, { witnessFile: logFile })).toMatchObject({ ok: true, witness: { checkpoints: 1, last_seq: 4 } });
  });

  it('cut back together with the trail on the same volume, the witness cannot tell (hence the warning); the gateway log a SIEM kept can', async () => {
    const dir = join(root, 'witness-both-cut');
    const b = { dir, archiveDir: join(dir, 'archive'), witnessFile: join(root, 'witness-both-cut.witness.jsonl') };
    const logged: string[] = [];
    const log = { info: (o: object, msg: string) => logged.push(JSON.stringify({ level: 30, ...o, msg })), warn() {}, error() {} };
    let n = 0;
    for (let r = 0; r < 3; r++) {
      const trail = await AuditTrail.open({ ...opts(b), log });
      await Promise.all(Array.from({ length: 5 }, () => trail.record(input(n++))));
      await trail.close();
    }
    // The insider rewrites #7 on, deletes checkpoints 2..3 and cuts the witness back to checkpoint 1 with them.
    tamper(b, (db) => {
      rewriteFrom(db, 7, 'nothing to see');
      db.prepare('delete from audit_checkpoints where event_id >= 7').run();
    });
    writeFileSync(b.witnessFile, `${readFileSync(b.witnessFile, 'utf8').split('\n')[0]}\n`);
    const trail = await AuditTrail.open({ ...opts(b), log });
    await trail.close(); // signs checkpoint 2 over the forged head: nothing local says otherwise
    expect(verify(b, { witnessFile: b.witnessFile }).ok).toBe(true);
    const logFile = join(root, 'siem.log');
    writeFileSync(logFile, `${logged.join('\n')}\n`);
    const problems = verify(b, { witnessFile: logFile }).problems;
    expect(problems).toContainEqual(expect.objectContaining({ kind: 'witness_mismatch', message: expect.stringMatching(/checkpoint 2 in the trail \(for #15\) is not the one the witness holds \(for #10/) }));
  });

  it('a trail cut shorter than the witness is found: truncated, with the checkpoints it lacks', () => {
    const b = copy(base, 'witness-cut');
    tamper(b, (db) => {
      db.prepare('delete from audit_events where id > 15').run();
      db.prepare('delete from audit_checkpoints where event_id > 15').run();
    });
    expect(verify(b).ok).toBe(true); // the file alone
    const problems = verify(b, { witnessFile: b.witnessFile }).problems;
    expect(problems).toContainEqual(expect.objectContaining({ kind: 'missing_checkpoint', event_id: 20 }));
    expect(problems).toContainEqual(expect.objectContaining({ kind: 'truncated', event_id: 16, message: expect.stringMatching(/witness holds a checkpoint for #30/) }));
  });

  it('a trail whose checkpoint disagrees with the witness is found, and a forged witness line is reported, not believed', () => {
    const b = copy(base, 'witness-fork');
    // As if the key had been made to sign another history after #20: a validly signed checkpoint 3 the witness never saw.
    tamper(b, (db) => {
      const prev = (db.prepare('select jws from audit_checkpoints where seq = 2').get() as { jws: string }).jws;
      const other = signCheckpoint(key, 30, 'a'.repeat(64), new Date(), { seq: 3, prev: checkpointDigest(prev) });
      db.prepare('update audit_checkpoints set jws = ?, hash = ? where seq = 3').run(other.jws, other.hash);
    });
    expect(verify(b, { witnessFile: b.witnessFile }).problems).toContainEqual(expect.objectContaining({ kind: 'witness_mismatch', event_id: 30, message: expect.stringMatching(/checkpoint 3 in the trail .* is not the one the witness holds/) }));

    const c = copy(base, 'witness-forged-line');
    const stranger = loadAuditKey(join(root, 'stranger-certs'));
    const fake = signCheckpoint(stranger, 99, 'b'.repeat(64), new Date(), { seq: 99, prev: null });
    appendFileSync(c.witnessFile, `${JSON.stringify({ audit_checkpoint: { jws: fake.jws } })}\n`);
    const problems = verify(c, { witnessFile: c.witnessFile }).problems;
    expect(problems).toEqual([expect.objectContaining({ kind: 'witness_mismatch', event_id: 99, message: expect.stringMatching(/unknown key/) })]);
  });
});

describe('rotating the audit key', () => {
  it('keeps older checkpoints and archives verifiable: the retired public key is kept, published and accepted by kid', async () => {
    const certs = join(root, 'rotate-certs');
    const first = loadAuditKey(certs);
    const b = await build('rotate', 2, 10, first);
    const trail = await AuditTrail.open(opts(b, first));
    const archived = await trail.archive(new Date(Date.now() + 60_000), b.archiveDir, 15);
    await trail.close();
    expect(archived).toMatchObject({ to_id: 15 });

    const rotated = rotateAuditKey(certs);
    expect(rotated.retired).toBe(first.kid);
    const second = loadAuditKey(certs);
    expect(second.kid).toBe(rotated.current);
    expect(second.kid).not.toBe(first.kid);
    expect(existsSync(join(certs, 'audit-keys', `${first.kid}.pub`))).toBe(true);
    expect(second.jwks.map((k) => k.kid)).toEqual([second.kid, first.kid]); // what the JWKS publishes
    expect([...second.known.keys()].sort()).toEqual([first.kid, second.kid].sort());

    // A gateway that forgot the retired key cannot vouch for the trail it opens.
    await expect(AuditTrail.open(opts(b, auditKeyFromPem(second.pem)))).rejects.toThrow(/not signed by this gateway's audit key/);
    const next = await AuditTrail.open(opts(b, second));
    await next.record(input(1));
    const live = await next.verify();
    await next.close();
    expect(live).toMatchObject({ ok: true });
    const kids = new Set(checkpointRows(b).map((r) => r.kid));
    expect(kids).toEqual(new Set([first.kid, second.kid]));
    expect(verify(b, { witnessFile: b.witnessFile }, second.known)).toMatchObject({ ok: true });
    // Without the retired key the anchor (signed by it) no longer verifies: it must be kept.
    expect(verify(b, {}, new Map([[second.kid, second.publicKey]])).problems).toContainEqual(expect.objectContaining({ kind: 'bad_anchor', message: expect.stringMatching(/unknown key/) }));

    // The CLI's rotate-key does the same on a configured certs.dir.
    const box = sandbox({ certs: { dir: certs } });
    try {
      const cli = await runCli(['audit', 'rotate-key', '--config', box.configFile, '--json']);
      expect(cli.code, cli.stderr).toBe(0);
      const out = JSON.parse(cli.stdout) as { retired: string; current: string };
      expect(out.retired).toBe(second.kid);
      expect(loadAuditKey(certs).jwks.map((k) => k.kid).sort()).toEqual([first.kid, second.kid, out.current].sort());
    } finally {
      box.remove();
    }
  });
});

describe('the witness is written before the trail (a stop between the two writes does not stop the next start)', () => {
  let base: Built;
  beforeAll(async () => {
    base = await build('ahead', 3, 10);
  });

  it('a witness one checkpoint ahead (the line written, the row not) is taken in: the start succeeds, said in the log, and verify is ok', async () => {
    const b = copy(base, 'ahead-crash');
    const third = checkpointRows(b).find((c) => c.seq === 3)!;
    tamper(b, (db) => db.prepare('delete from audit_checkpoints where seq = 3').run());
    const warned: string[] = [];
    const trail = await AuditTrail.open({ ...opts(b), log: { info() {}, warn: (_o: object, msg: string) => warned.push(msg), error() {} } });
    await trail.record(input(1));
    await trail.close();
    expect(warned).toContainEqual(expect.stringMatching(/witness held checkpoint 3 \(event #30\) that the trail lacked .*taken into the trail/));
    const rows = checkpointRows(b);
    expect(rows.map((c) => c.seq)).toEqual([1, 2, 3, 4]);
    expect(rows[2]!.jws).toBe(third.jws);
    expect(readWitness(b.witnessFile).entries.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(verify(b, { witnessFile: b.witnessFile }).ok).toBe(true);
  });

  it('verify between the two writes (the witness one ahead, its line following the trail) is ok, not a deleted checkpoint', () => {
    const b = copy(base, 'ahead-verify');
    tamper(b, (db) => db.prepare('delete from audit_checkpoints where seq = 3').run());
    expect(verify(b, { witnessFile: b.witnessFile })).toMatchObject({ ok: true, problems: [] });
  });

  it('verify still finds a witness one ahead whose event the trail rewrote, and two ahead as deleted checkpoints', () => {
    const forged = copy(base, 'ahead-verify-forged');
    tamper(forged, (db) => {
      db.prepare('delete from audit_checkpoints where seq = 3').run();
      rewriteFrom(db, 25, 'allowed by nobody');
    });
    const report = verify(forged, { witnessFile: forged.witnessFile });
    expect(report.ok).toBe(false);
    expect(report.problems.map((p) => p.event_id)).toContain(30);
    const two = copy(base, 'ahead-verify-two');
    tamper(two, (db) => db.prepare('delete from audit_checkpoints where seq >= 2').run());
    expect(verify(two, { witnessFile: two.witnessFile }).problems).toContainEqual(expect.objectContaining({ kind: 'missing_checkpoint', message: expect.stringMatching(/holds checkpoints 2\.\.3 .*end at 1/) }));
  });

  it('a witness one ahead that the trail does not agree with is still refused (its event rewritten)', async () => {
    const b = copy(base, 'ahead-forged');
    tamper(b, (db) => {
      db.prepare('delete from audit_checkpoints where seq = 3').run();
      rewriteFrom(db, 25, 'allowed by nobody');
    });
    await expect(AuditTrail.open(opts(b))).rejects.toThrow(/witness .* holds checkpoint 3 .*checkpoints were deleted from the trail/);
    expect(checkpointRows(b).map((c) => c.seq)).toEqual([1, 2]);
  });

  it('a witness one behind (what the old order left after a crash) is still refused', async () => {
    const b = copy(base, 'behind-crash');
    writeFileSync(b.witnessFile, `${readFileSync(b.witnessFile, 'utf8').split('\n').slice(0, 2).join('\n')}\n`);
    await expect(AuditTrail.open(opts(b))).rejects.toThrow(/ends at checkpoint 2 .*the witness was cut back/);
  });

  it('a witness reset is said in the operator log, with the checkpoint number', async () => {
    const b = copy(base, 'reset-logged');
    writeFileSync(b.witnessFile, `${readFileSync(b.witnessFile, 'utf8').split('\n').slice(0, 2).join('\n')}\n`);
    const warned: string[] = [];
    const trail = await AuditTrail.open({ ...opts(b), witnessReset: 3, log: { info() {}, warn: (_o: object, msg: string) => warned.push(msg), error() {} } });
    await trail.close();
    expect(warned).toContainEqual(expect.stringMatching(/witness \(cut back to checkpoint 2\) was started again from checkpoint 3 by GATEHOUSE_AUDIT_WITNESS_RESET/));
  });

  it('a witness append that fails makes the trail unavailable and stores no checkpoint the witness lacks', async () => {
    const dir = join(root, 'witness-full');
    mkdirSync(dir, { recursive: true });
    const witnessFile = join(root, 'witness-full.jsonl');
    symlinkSync('/dev/full', witnessFile); // every write: ENOSPC
    const b = { dir, archiveDir: join(dir, 'archive'), witnessFile };
    const trail = await AuditTrail.open({ ...opts(b), checkpointMs: 50 });
    try {
      await Promise.all([1, 2, 3].map((i) => trail.record(input(i))));
      const down = await until(async () => { const h = trail.health(); return h.available ? undefined : h; }, 20_000, 'the trail unavailable after the failed witness append');
      expect(down.reason).toMatch(/audit\.witness_file .*cannot append checkpoint 1/);
      expect(checkpointRows(b)).toEqual([]);
      await expect(trail.record(input(4))).rejects.toThrow(/audit trail is unavailable/);
    } finally {
      await trail.close();
    }
    expect(checkpointRows(b)).toEqual([]);
  });

  it('a witness path that leads into audit.dir through a symlink is refused', () => {
    const state = join(root, 'symlinked');
    const auditDir = join(state, 'audit');
    mkdirSync(auditDir, { recursive: true });
    symlinkSync(auditDir, join(state, 'looks-elsewhere'));
    expect(() => witnessFileOf(join(state, 'looks-elsewhere', 'w.jsonl'), state, auditDir)).toThrow(/audit\.witness_file: .* is inside audit\.dir/);
    symlinkSync(join(auditDir, 'w.jsonl'), join(state, 'w-link.jsonl')); // a dangling link to a file inside
    expect(() => witnessFileOf(join(state, 'w-link.jsonl'), state, auditDir)).toThrow(/audit\.witness_file: .* is inside audit\.dir/);
    expect(witnessFileOf(join(state, 'w-real.jsonl'), state, auditDir)).toBe(join(state, 'w-real.jsonl'));
  });

  it('/readyz names no path for the same-device warning (the detail is in the log)', async () => {
    const box = sandbox({ state: { dir: 'var' }, certs: { dir: 'certs' }, engine: { host: '127.0.0.1', port: 1 } });
    try {
      const gw = await startServiceProcess(box, 'gateway');
      try {
        const ca = readFileSync(join(box.dir, 'certs', 'ca.crt'), 'utf8');
        const r = await fetchTls(`${gw.url}/readyz`, { ca });
        expect(r.body).toContain('witness on the same device as audit.dir (see the log)');
        expect(r.body).not.toContain(box.dir);
        expect(r.body).not.toContain('audit-witness.jsonl');
      } finally {
        await gw.stop();
      }
    } finally {
      box.remove();
    }
  }, 120_000);
});
