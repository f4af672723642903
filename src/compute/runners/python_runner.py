"""Gatehouse's warm Python worker: imports a job's source once, then runs partitions on request.

    python3 -u python_runner.py --source job.py --entrypoint process --job <job id>
    python3 -u python_runner.py --spare     (a spare sandbox's: the job comes first over fd 3)

The engine talks to this process over fd 3 (a duplex socket), one JSON object per line:

    engine -> worker   {"op": "job", "source": ..., "entrypoint": ..., "job": ...}  (--spare only, once, first)
    worker -> engine   {"ready": true, "marks": true}  or  {"fatal": "..."} (then exit 1)
    engine -> worker   {"op": "run", "partition": 7, "attempt": 1, "input": ..., "output": ..., "format": "csv",
                        "mark": "gatehouse-end-of-task-..."}
    worker -> engine   {"partition": 7, "ok": true, "rows_out": N, "bytes_out": B, "seconds": S}
                       {"partition": 7, "ok": false, "error": "...", "oom": false}
    engine -> worker   {"op": "exit"}  (or EOF) -> exit 0 at once (os._exit: the job's atexit handlers do not run)

The engine may queue several runs; they run in order. While more are queued and the partitions are
short (under 5 ms on average, SHORT_S), answers are sent together, at most 10 ms after the last send
(REPLY_S); otherwise, and when nothing is queued or a task failed, at once. So the engine wakes once
for a few short partitions, and no answer waits behind a long one.

stdout belongs to the user's prints and stderr to their logs (the engine tags both with the
partition); nothing of the protocol goes there but the mark: after a task's last print, the line
"<mark>" (after a newline) on both, which the engine drops. It tells the engine where this task's
prints end, so it may queue the next task here before this one is answered ("marks": true) and
still tag every line with the partition that printed it. Standard library only, Python 3.9+.

The engine runs it from python_runner.pyc, compiled once at its start (python-compiled.ts), where
that could be written: a script given as a .py is compiled at every start.

Its start is part of every job's fixed cost (the first partition waits for it), so it imports only
what every job needs: no argparse (three flags, parsed by hand), and logging (for ctx.log) and
traceback (for an error's story) only when a job first uses them.
"""

import importlib.machinery
import json
import os
import re
import sys
import time

CHANNEL_FD = 3
CHANNEL_READ = 1 << 16
# How long finished partitions' answers may wait here for company while more tasks are queued, and
# the partitions' average time under which they may wait at all.
REPLY_S = 0.01
SHORT_S = 0.005
CHUNK = 1 << 20
# Every byte but the newline: a chunk with these deleted is its newlines alone. bytes.translate
# counts them in 18 us for a 49 KB partition where bytes.count takes 40 (CPython 3.11 counts a
# one-byte needle a byte at a time), in every partition of every job.
NOT_NEWLINE = bytes(b for b in range(256) if b != 0x0A)
FATAL_TRACEBACK_LINES = 30
ERROR_TRACEBACK_LINES = 20
# The engine reads its channel a line of at most 8 KiB and cuts a longer one, which it then cannot
# read: an answer carrying a longer error was lost, and the job waited for it to its time limit.
ERROR_JSON_BYTES = 6000
MODULE_NAME = "gatehouse_job"
MARK = re.compile(r"^gatehouse-end-of-task-[0-9a-f]{24}$")


def parse_args(argv):
    """--source FILE (required), --entrypoint NAME (process), --job ID (""); or --spare alone (the job
    comes over the channel: spare_job); exit 2 on anything else."""
    options = {"source": None, "entrypoint": "process", "job": ""}
    if list(argv) == ["--spare"]:
        return None
    rest = list(argv)
    while rest:
        flag = rest.pop(0)
        key = flag[2:] if flag.startswith("--") else None
        if "=" in flag and key is not None:
            key, value = key.split("=", 1)
        elif key in options and rest:
            value = rest.pop(0)
        else:
            value = None
        if key not in options or value is None:
            sys.stderr.write("python_runner.py: unexpected argument %r (usage: --source FILE [--entrypoint NAME] [--job ID])\n" % flag)
            sys.exit(2)
        options[key] = value
    if options["source"] is None:
        sys.stderr.write("python_runner.py: --source FILE is required\n")
        sys.exit(2)
    return Options(**options)


def spare_job(channel):
    """A spare (started before its job, sandbox/ISOLATION.md): the first message names the job, once.
    EOF or exit: no job came, exit 0; anything else is not the engine's: exit 2."""
    message = channel.next()
    if message is None or message.get("op") == "exit":
        os._exit(0)
    fields = [message.get(k) for k in ("source", "entrypoint", "job")]
    if message.get("op") != "job" or not all(isinstance(f, str) and f for f in fields):
        sys.stderr.write("python_runner.py: a spare expects its job first\n")
        os._exit(2)
    return Options(*fields)


class Options:
    __slots__ = ("source", "entrypoint", "job")

    def __init__(self, source, entrypoint, job):
        self.source = source
        self.entrypoint = entrypoint
        self.job = job


def main():
    options = parse_args(sys.argv[1:])

    if os.environ.get("GATEHOUSE_PDEATHSIG") == "1":
        die_with_parent()

    # User code that os.system()s must not hand our channel to its children.
    os.set_inheritable(CHANNEL_FD, False)
    channel = Channel(CHANNEL_FD)
    if options is None:
        options = spare_job(channel)

    try:
        entry = load_entrypoint(options.source, options.entrypoint)
    except BaseException as exc:  # anything the import raises, SystemExit included, is the user's to see
        if isinstance(exc, KeyboardInterrupt):
            raise
        channel.send({"fatal": describe(exc, FATAL_TRACEBACK_LINES)})
        sys.exit(1)
    if isinstance(entry, str):
        channel.send({"fatal": entry})
        sys.exit(1)

    log = LazyLog()
    channel.send({"ready": True, "marks": True})
    # Answers wait for company while more tasks are queued here (the engine keeps several queued, so
    # this worker never waits for it) and the partitions are short (SHORT_S, on average): sent together
    # at most REPLY_S after the last send, and at once when nothing is queued, a task failed, or the
    # partitions take longer (an answer must not wait behind a long partition). One wake-up of the
    # engine for a few partitions, not one each.
    answers = []
    sent_at = time.monotonic()
    pace = None
    while True:
        if answers and not channel.waiting():
            channel.send_all(answers)
            answers = []
            sent_at = time.monotonic()
        message = channel.next()
        if message is None:
            break
        op = message.get("op")
        if op == "exit":
            break
        if op == "run":
            started = time.monotonic()
            answers.append(run_partition(entry, message, options.job, log))
            now = time.monotonic()
            pace = now - started if pace is None else 0.8 * pace + 0.2 * (now - started)
            if not answers[-1]["ok"] or pace >= SHORT_S or now - sent_at >= REPLY_S:
                channel.send_all(answers)
                answers = []
                sent_at = time.monotonic()
    channel.send_all(answers)
    # Done: no interpreter teardown (module finalisers, the job's atexit handlers, threads it left
    # running) between the job's last partition and its commit, which waits for this exit.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(0)


def load_entrypoint(source, name):
    """The callable `name` of the source file, exec'd once as module gatehouse_job; a str when it is missing."""
    # Like `python3 job.py`: the job's own folder is first on sys.path, not this runner's.
    sys.path[0] = os.path.dirname(os.path.abspath(source))
    # An explicit loader: the engine's copy of the source need not end in .py.
    loader = importlib.machinery.SourceFileLoader(MODULE_NAME, source)
    # importlib.util's own two functions, from the bootstrap every interpreter has already loaded:
    # importing importlib.util itself (contextlib and more) is a few ms of every worker's start.
    spec = importlib._bootstrap.spec_from_loader(MODULE_NAME, loader, origin=source)
    module = importlib._bootstrap.module_from_spec(spec)
    # Registered before exec so pickle and helpers that look the module up by name find it.
    sys.modules[MODULE_NAME] = module
    # No __pycache__ beside the job's source: it is a staging copy, used once.
    write_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = write_bytecode
    entry = getattr(module, name, None)
    if entry is None:
        return "the source defines no %r (the job's entrypoint)" % name
    if not callable(entry):
        return "%r in the source is a %s, not a function" % (name, type(entry).__name__)
    return entry


class Context:
    """What process(input_path, output_path, ctx) learns about its partition."""

    __slots__ = ("partition", "attempt", "job_id", "input_format", "_log")

    def __init__(self, partition, attempt, job_id, input_format, log):
        self.partition = partition
        self.attempt = attempt
        self.job_id = job_id
        self.input_format = input_format
        self._log = log

    @property
    def log(self):
        """The job's logger (lines on stderr as "LEVEL message"), made when a job first asks for it."""
        return self._log.get()

    def __repr__(self):
        return "Context(partition=%r, attempt=%r, job_id=%r, input_format=%r)" % (
            self.partition, self.attempt, self.job_id, self.input_format)


class LazyLog:
    """One logger per worker, but `import logging` (tens of ms at start) only for a job that logs."""

    __slots__ = ("log",)

    def __init__(self):
        self.log = None

    def get(self):
        if self.log is None:
            self.log = job_logger()
        return self.log


def job_logger():
    import logging

    log = logging.getLogger("gatehouse.job")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # the user's own logging.basicConfig must not print these twice
    return log


def run_partition(entry, message, job_id, log):
    partition = message.get("partition")
    output = message.get("output")
    fmt = message.get("format", "csv")
    ctx = Context(partition, message.get("attempt"), job_id, fmt, log)
    started = time.perf_counter()
    try:
        entry(message.get("input"), output, ctx)
    except (Exception, SystemExit) as exc:
        reply = failure(partition, exc)
    else:
        try:
            rows, size = count_rows(output, fmt)
        except FileNotFoundError:
            reply = {"partition": partition, "ok": False, "oom": False,
                     "error": "process() wrote nothing to %s" % output}
        except OSError as exc:
            reply = failure(partition, exc)
        else:
            reply = {"partition": partition, "ok": True, "rows_out": rows, "bytes_out": size,
                     "seconds": round(time.perf_counter() - started, 6)}
    # Everything the partition printed or logged reaches its pipe before the engine hears it is over,
    # and then the mark that ends it there.
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        flush(stream)
    mark = message.get("mark")
    if isinstance(mark, str) and MARK.match(mark):
        line = ("\n%s\n" % mark).encode("ascii")
        for fd in (1, 2):
            try:
                os.write(fd, line)
            except OSError:  # the user closed it: nothing of theirs can follow there to be tagged
                pass
    return reply


def failure(partition, exc):
    return {"partition": partition, "ok": False, "error": describe(exc, ERROR_TRACEBACK_LINES),
            "oom": isinstance(exc, MemoryError)}


def describe(exc, limit):
    """`ExcType: message`, then the traceback's last `limit` lines, starting at the user's code."""
    tb = exc.__traceback__
    # The runner's and importlib's own frames say nothing to the user: skip the leading ones.
    while tb is not None and is_machinery(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    try:
        import traceback  # imported here, not at start: most jobs never fail

        lines = "".join(traceback.format_exception(type(exc), exc, tb)).splitlines()
    except MemoryError:  # out of memory even for the story: the summary alone
        lines = []
    summary = "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__
    return bounded("\n".join([summary] + lines[-limit:]))


def bounded(text):
    """`text` within ERROR_JSON_BYTES as the channel carries it (JSON): its start and its end, the middle cut."""
    if len(json.dumps(text)) <= ERROR_JSON_BYTES:
        return text
    keep = len(text)
    while True:
        keep = keep * 2 // 3
        half = keep // 2
        cut = "%s … [%d characters cut] … %s" % (text[:half], len(text) - 2 * half, text[len(text) - half:])
        if len(json.dumps(cut)) <= ERROR_JSON_BYTES:
            return cut


def is_machinery(filename):
    # This file's frames by the name its code was compiled with: run from the engine's .pyc,
    # __file__ is the .pyc's path while the frames carry the source's.
    return filename == is_machinery.__code__.co_filename or filename.startswith("<frozen importlib")


def count_rows(path, fmt):
    """(rows, bytes) of an output file, read in binary chunks: the same rules as the engine's rows.ts.

    CSV: newlines minus the header line, a last line without its newline counted too.
    JSON Lines: lines that are not empty (a lone carriage return counts as empty).
    """
    rows = 0
    size = 0
    with open(path, "rb") as f:
        if fmt == "jsonl":
            carry = b""
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                parts = (carry + chunk).split(b"\n")
                carry = parts.pop()
                rows += len(parts) - parts.count(b"") - parts.count(b"\r")
            if carry and carry != b"\r":
                rows += 1
            return rows, size
        last = b"\n"
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            rows += len(chunk.translate(None, NOT_NEWLINE))
            last = chunk[-1:]
        if last != b"\n":
            rows += 1
        return max(rows - 1, 0), size


def flush(stream):
    try:
        stream.flush()
    except (OSError, ValueError, AttributeError):  # the user closed, broke or removed it; their output is theirs to lose
        pass


class Channel:
    """JSON lines over the engine's socket on fd 3."""

    def __init__(self, fd):
        self.fd = fd
        self.buffer = b""
        self.eof = False

    def waiting(self):
        """Whether a message (or the engine's EOF) can be read without waiting for the engine."""
        if b"\n" in self.buffer or self.eof:
            return True
        # A read that may not wait (no `select` to import: every worker's start pays for its imports).
        os.set_blocking(self.fd, False)
        try:
            chunk = os.read(self.fd, CHANNEL_READ)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            chunk = b""
        finally:
            os.set_blocking(self.fd, True)
        if not chunk:
            self.eof = True
            self.buffer = b""
        else:
            self.buffer += chunk
        return b"\n" in self.buffer or self.eof

    def next(self):
        """The next message (an object), waiting for it; None at EOF."""
        while True:
            while b"\n" not in self.buffer:
                if self.eof:
                    return None
                try:
                    chunk = os.read(self.fd, CHANNEL_READ)
                except InterruptedError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    self.eof = True
                    self.buffer = b""
                else:
                    self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\n", 1)
            line = line.strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not ours to act on; the engine only sends objects
            if isinstance(message, dict):
                return message

    def send(self, message):
        self.send_all([message])

    def send_all(self, messages):
        if not messages:
            return
        data = "".join(json.dumps(m, separators=(",", ":")) + "\n" for m in messages).encode("utf-8")
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError:
            os._exit(1)  # the engine is gone: nobody is left to serve


def die_with_parent():
    """PR_SET_PDEATHSIG(SIGKILL): the kernel ends this worker when the engine dies. Best effort."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


if __name__ == "__main__":
    main()
