// Gatehouse's warm Node worker: imports a job's ES module once, then runs partitions on request.
//
//   node --max-old-space-size=<mb> node_runner.mjs --source job.mjs --entrypoint process --job <job id>
//
// The same protocol as python_runner.py, JSON lines over fd 3 (a duplex socket):
//   worker -> engine  {"ready":true} | {"fatal":"..."} (then exit 1)
//   engine -> worker  {"op":"run","partition":7,"attempt":1,"input":...,"output":...,"format":"csv"}
//   worker -> engine  {"partition":7,"ok":true,"rows_out":N,"bytes_out":B,"seconds":S} | {"partition":7,"ok":false,"error":...,"oom":false}
//   engine -> worker  {"op":"exit"} (or EOF) -> exit 0
// stdout belongs to the user's console.log and stderr to ctx.log; nothing of the protocol goes there.
// Plain JavaScript with no imports of ours: the engine copies this one file next to the task.
import { open } from 'node:fs/promises';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { format } from 'node:util';

const CHUNK = 1 << 20;
const FATAL_STACK_LINES = 30;
const ERROR_STACK_LINES = 20;
// The engine reads its channel a line of at most 8 KiB and cuts a longer one, which it then cannot
// read: an answer carrying a longer error was lost, and the job waited for it to its time limit.
const ERROR_JSON_BYTES = 6000;

function parseArgs(argv) {
  const options = { source: '', entrypoint: 'process', job: '' };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i]?.replace(/^--/, '');
    if (name === 'source' || name === 'entrypoint' || name === 'job') options[name] = argv[++i] ?? '';
  }
  if (!options.source) {
    process.stderr.write('usage: node_runner.mjs --source <module> --entrypoint <name> --job <id>\n');
    process.exit(2);
  }
  return options;
}

const options = parseArgs(process.argv.slice(2));
const channel = new net.Socket({ fd: 3, readable: true, writable: true });
channel.on('error', () => process.exit(1)); // the engine is gone: nobody is left to serve

function send(message) {
  return new Promise((resolve) => channel.write(`${JSON.stringify(message)}\n`, () => resolve()));
}

/** `Name: message`, then the stack's last lines (the stack repeats the message; the first line is for one-line views). */
function describe(error, limit) {
  if (!(error instanceof Error)) return bounded(`thrown value: ${format('%o', error)}`);
  const summary = `${error.name}: ${error.message}`;
  const stack = typeof error.stack === 'string' ? error.stack.split('\n') : [];
  return bounded([summary, ...stack.slice(-limit)].join('\n'));
}

/** `text` within ERROR_JSON_BYTES as the channel carries it (JSON, UTF-8): its start and its end, the middle cut. */
function bounded(text) {
  const size = (t) => Buffer.byteLength(JSON.stringify(t));
  if (size(text) <= ERROR_JSON_BYTES) return text;
  let keep = text.length;
  for (;;) {
    keep = Math.floor((keep * 2) / 3);
    const half = Math.floor(keep / 2);
    const cut = `${text.slice(0, half)} … [${text.length - 2 * half} characters cut] … ${text.slice(text.length - half)}`;
    if (size(cut) <= ERROR_JSON_BYTES) return cut;
  }
}

function looksLikeOom(error) {
  return error instanceof RangeError && /allocation failed|out of memory|invalid array length/i.test(error.message);
}

async function loadEntrypoint(source, name) {
  const module = await import(pathToFileURL(source).href);
  const entry = module[name];
  if (entry === undefined) return `the source exports no ${JSON.stringify(name)} (the job's entrypoint)`;
  if (typeof entry !== 'function') return `${JSON.stringify(name)} in the source is a ${typeof entry}, not a function`;
  return entry;
}

/**
 * (rows, bytes) of an output file, read in binary chunks: the same rules as rows.ts and the Python runner.
 * CSV: newlines minus the header line, a last line without its newline counted too.
 * JSON Lines: lines that are not empty (a lone carriage return counts as empty).
 */
async function countRows(path, fmt) {
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(CHUNK);
    let size = 0;
    let newlines = 0;
    let rows = 0;
    let lineLength = 0; // bytes of the current line read so far
    let lineFirst = -1; // its first byte, to tell a lone '\r'
    let last = 0x0a;
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, CHUNK, null);
      if (bytesRead === 0) break;
      const chunk = buffer.subarray(0, bytesRead);
      size += bytesRead;
      last = chunk[bytesRead - 1];
      let start = 0;
      for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
        newlines++;
        const length = lineLength + nl - start;
        const first = lineLength > 0 ? lineFirst : chunk[start];
        if (length > 1 || (length === 1 && first !== 0x0d)) rows++;
        lineLength = 0;
        start = nl + 1;
      }
      if (start < bytesRead) {
        if (lineLength === 0) lineFirst = chunk[start];
        lineLength += bytesRead - start;
      }
    }
    if (fmt === 'jsonl') {
      if (lineLength > 1 || (lineLength === 1 && lineFirst !== 0x0d)) rows++;
      return { rows, size };
    }
    const lines = newlines + (last !== 0x0a ? 1 : 0);
    return { rows: Math.max(lines - 1, 0), size };
  } finally {
    await file.close();
  }
}

function errorCode(error) {
  return error !== null && typeof error === 'object' ? error.code : undefined;
}

async function runPartition(entry, message) {
  const { partition, attempt, input, output } = message;
  const inputFormat = message.format ?? 'csv';
  const ctx = {
    partition,
    attempt,
    jobId: options.job,
    inputFormat,
    log: (...args) => process.stderr.write(`INFO ${format(...args)}\n`),
  };
  const started = performance.now();
  try {
    await entry(input, output, ctx);
  } catch (error) {
    return { partition, ok: false, error: describe(error, ERROR_STACK_LINES), oom: looksLikeOom(error) };
  }
  try {
    const { rows, size } = await countRows(output, inputFormat);
    const seconds = Math.round(performance.now() - started) / 1000;
    return { partition, ok: true, rows_out: rows, bytes_out: size, seconds };
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return { partition, ok: false, error: `process() wrote nothing to ${output}`, oom: false };
    return { partition, ok: false, error: describe(error, ERROR_STACK_LINES), oom: false };
  }
}

/** Messages from the engine, one JSON object a line. */
async function* messages() {
  let partial = '';
  channel.setEncoding('utf8');
  for await (const chunk of channel) {
    partial += chunk;
    let nl;
    while ((nl = partial.indexOf('\n')) !== -1) {
      const line = partial.slice(0, nl).trim();
      partial = partial.slice(nl + 1);
      if (line === '') continue;
      let message;
      try {
        message = JSON.parse(line);
      } catch {
        continue; // not ours to act on; the engine only sends objects
      }
      if (message !== null && typeof message === 'object') yield message;
    }
  }
}

async function main() {
  let entry;
  try {
    entry = await loadEntrypoint(options.source, options.entrypoint);
  } catch (error) {
    await send({ fatal: describe(error, FATAL_STACK_LINES) });
    process.exit(1);
  }
  if (typeof entry === 'string') {
    await send({ fatal: entry });
    process.exit(1);
  }
  await send({ ready: true });
  for await (const message of messages()) {
    if (message.op === 'exit') break;
    if (message.op === 'run') await send(await runPartition(entry, message));
  }
  // process.exit, not a drained loop: the user's module may hold timers or sockets open.
  process.exit(0);
}

await main();
