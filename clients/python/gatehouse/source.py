"""What submit() ships: the source text of a function defined in a notebook (or a .py file), and
the entrypoint the engine calls per partition.

The engine's python runtime imports the source once and calls ``ENTRY(input_path, output_path, ctx)``
per partition (examples/README.md). A function of that shape is shipped as it is, its own name the
entrypoint. A function of one argument is a row function: a small shim shipped after it reads the
partition (CSV with a header, or JSON Lines), calls it per row and writes what it returns (a dict, a
list of dicts, or None to drop the row) in the output's format. Only the function's own source
travels, not the notebook's other cells: import inside the function, or name helpers= to ship too.
"""

import ast
import inspect
import os
import re
import textwrap

from .errors import GatehouseError

ROW_ENTRY = "_gatehouse_entry"

ROW_SHIM = '''

# --- added by the gatehouse Python client: the engine's process(input_path, output_path, ctx) ---
import csv as _gh_csv
import json as _gh_json

_gatehouse_row_fn = {fn}
_GATEHOUSE_OUTPUT_FORMAT = {output_format!r}


def _gh_rows(path, fmt):
    if fmt == "jsonl":
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield _gh_json.loads(line)
        return
    with open(path, newline="", encoding="utf-8-sig") as f:
        yield from _gh_csv.DictReader(f)


def _gh_results(rows):
    for row in rows:
        result = _gatehouse_row_fn(row)
        if result is None:
            continue
        if isinstance(result, dict):
            yield result
        elif isinstance(result, (list, tuple)):
            yield from result
        else:
            raise TypeError("the row function returned a %s; return a dict, a list of dicts or None" % type(result).__name__)


def {entry}(input_path, output_path, ctx):
    in_fmt = ctx.input_format if ctx is not None else ("jsonl" if input_path.endswith(".jsonl") else "csv")
    out_fmt = _GATEHOUSE_OUTPUT_FORMAT or in_fmt
    rows = _gh_results(_gh_rows(input_path, in_fmt))
    with open(output_path, "w", newline="", encoding="utf-8") as out:
        if out_fmt == "jsonl":
            for row in rows:
                out.write(_gh_json.dumps(row, ensure_ascii=False, separators=(",", ":")))
                out.write("\\n")
            return
        first = next(rows, None)
        if first is None:
            with open(input_path, newline="", encoding="utf-8-sig") as f:
                header = next(_gh_csv.reader(f), None) if in_fmt == "csv" else None
            if header:
                _gh_csv.writer(out, lineterminator="\\n").writerow(header)
            return
        writer = _gh_csv.DictWriter(out, fieldnames=list(first), lineterminator="\\n")
        writer.writeheader()
        writer.writerow(first)
        writer.writerows(rows)
'''


def function_source(fn):
    """A function's own source, dedented, decorators dropped; refused for what cannot travel."""
    if not inspect.isfunction(fn):
        raise GatehouseError("submit() takes a function or a path to a .py file, not %s" % type(fn).__name__, code="invalid_source")
    if fn.__name__ == "<lambda>":
        raise GatehouseError("a lambda cannot be shipped as a job: define it with def", code="invalid_source")
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise GatehouseError("the source of %s() cannot be found (%s): define it in a notebook cell or a file" % (fn.__name__, exc),
                             code="invalid_source") from None
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise GatehouseError("the source of %s() does not parse on its own: %s" % (fn.__name__, exc), code="invalid_source") from None
    node = tree.body[0] if tree.body else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise GatehouseError("the source of %s() is not a plain def" % fn.__name__, code="invalid_source")
    if isinstance(node, ast.AsyncFunctionDef):
        raise GatehouseError("%s() is async; the python runtime calls a plain function" % fn.__name__, code="invalid_source")
    if fn.__closure__:
        names = ", ".join(fn.__code__.co_freevars)
        raise GatehouseError("%s() uses variables of an enclosing function (%s), which do not travel: define it at the top of a cell"
                             % (fn.__name__, names), code="invalid_source")
    # The def line onwards: a decorator would run on the engine, where it is not defined.
    lines = text.splitlines(True)
    return "".join(lines[node.lineno - 1:])


def kind(fn):
    """"partition" for fn(input_path, output_path, ctx), "row" for fn(row), else None."""
    positional = [p for p in inspect.signature(fn).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(1 for p in positional if p.default is p.empty)
    if required == 1:
        return "row"
    if required in (2, 3) and len(positional) >= 3:
        return "partition"
    return None


def build(fn_or_file, entrypoint=None, helpers=(), output_format=None):
    """(source text, entrypoint, runtime, a default job name) for submit()."""
    if isinstance(fn_or_file, (str, os.PathLike)):
        path = os.fspath(fn_or_file)
        runtime = "node" if path.endswith((".mjs", ".js")) else "python"
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise GatehouseError("cannot read %s: %s" % (path, exc.strerror or exc), code="invalid_source") from None
        return text, entrypoint or "process", runtime, job_name(os.path.splitext(os.path.basename(path))[0])
    fn = fn_or_file
    parts = [helper if isinstance(helper, str) else function_source(helper) for helper in helpers]
    parts.append(function_source(fn))
    text = "\n\n".join(part.rstrip("\n") + "\n" for part in parts)
    if entrypoint is not None:
        return text, entrypoint, "python", job_name(fn.__name__)
    shape = kind(fn)
    if shape == "partition":
        return text, fn.__name__, "python", job_name(fn.__name__)
    if shape == "row":
        return text + ROW_SHIM.format(fn=fn.__name__, output_format=output_format, entry=ROW_ENTRY), ROW_ENTRY, "python", job_name(fn.__name__)
    raise GatehouseError("%s%s does not fit: a job function takes (input_path, output_path, ctx), a row function takes (row)"
                         % (fn.__name__, inspect.signature(fn)), code="invalid_source")


def job_name(text):
    """A name the JobSpec accepts: letters, digits, . _ -, starting with a letter or digit."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", text).lstrip("._-")[:128]
    return name or "notebook-job"
