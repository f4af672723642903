"""Partition bytes into rows, streamed: CSV with a header becomes dicts keyed by it (values as
strings, as ?preview=N gives them), JSON Lines one object per line. Nothing holds a whole partition
except what the caller keeps."""

import csv
import io
import json


def iter_rows(binary, fmt):
    """Rows from a binary stream of one partition."""
    # utf-8-sig: a spreadsheet's byte-order mark must not become part of the first column's name.
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    if fmt == "jsonl":
        for line in text:
            stripped = line.strip()
            if not stripped:
                continue
            try:
                value = json.loads(stripped)
            except ValueError:
                value = None
            # The preview's rule: a line that is not a JSON object comes back as {"_raw": line}.
            yield value if isinstance(value, dict) else {"_raw": line.rstrip("\r\n")}
        return
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        return
    width = len(header)
    for fields in reader:
        row = dict(zip(header, fields))
        if len(fields) < width:
            for name in header[len(fields):]:
                row.setdefault(name, "")
        elif len(fields) > width:
            row["_extra"] = fields[width:]
        yield row


def pandas_or_none():
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def frame(rows, columns):
    """A DataFrame of the rows, columns in the manifest's order (any others after them)."""
    pandas = pandas_or_none()
    if pandas is None:
        raise ImportError("as_frame=True needs pandas, which is not installed here; read() without it gives a list of dicts")
    rows = list(rows)
    names = list(columns or [])
    for row in rows:
        for key in row:
            if key not in names:
                names.append(key)
    return pandas.DataFrame.from_records(rows, columns=names)
