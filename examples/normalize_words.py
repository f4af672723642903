"""Normalise the `word` column of a partition: NFKC, lower case, no surrounding punctuation or spaces.

Reads CSV (with a header) or JSON Lines, chosen by the input file's extension, and writes the same
format; every other column is kept as it is. "Punctuation" is any Unicode punctuation character
(category P*: , . ! ? ; : " ' « » ( ) ...), "spaces" any separator or control character (Z*, Cc).
Symbols such as $ + < = > stay. Standard library only.

Submit it over the demo `words` dataset with

    gatehouse submit --input words --output scratch/words_norm --python examples/normalize_words.py

(see examples/README.md for the job's JSON), or run it on one file, as the baselines do:

    python3 examples/normalize_words.py part-00000.jsonl out.jsonl
"""

import csv
import json
import sys
import unicodedata

# Fast path: the ASCII characters of the strip set, handled by str.strip in C.
_ASCII_STRIP = "".join(
    chr(c) for c in range(128) if unicodedata.category(chr(c))[0] in "PZ" or unicodedata.category(chr(c)) == "Cc"
)
# Words repeat (a few common ones make most of a text): each distinct form is normalised once.
# Bounded so that a column of unique values cannot grow it without end.
_CACHE_LIMIT = 200_000
_cache = {}


def _strippable(ch):
    category = unicodedata.category(ch)
    return category[0] in "PZ" or category == "Cc"


def _normalize_new(word):
    text = unicodedata.normalize("NFKC", word).lower().strip(_ASCII_STRIP)
    # Non-ASCII punctuation or spaces at either end («», “”, no-break space...): the slow path.
    if text and (text[0] > "\x7f" or text[-1] > "\x7f"):
        start, end = 0, len(text)
        while start < end and _strippable(text[start]):
            start += 1
        while end > start and _strippable(text[end - 1]):
            end -= 1
        text = text[start:end]
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[word] = text
    return text


def normalize(word):
    """One word, normalised (also handy for checking a single value by hand)."""
    text = _cache.get(word)
    return _normalize_new(word) if text is None else text


def process(input_path, output_path, ctx):
    if input_path.endswith(".jsonl") or input_path.endswith(".json"):
        rows = _process_jsonl(input_path, output_path)
    else:
        rows = _process_csv(input_path, output_path)
    if ctx is not None:
        ctx.log.info("normalised %d rows", rows)


def _process_csv(input_path, output_path):
    # utf-8-sig: a spreadsheet's byte-order mark must not become part of the first column's name.
    with open(input_path, newline="", encoding="utf-8-sig") as src, \
            open(output_path, "w", newline="", encoding="utf-8") as dst:
        reader = csv.reader(src)
        writer = csv.writer(dst, lineterminator="\n")
        header = next(reader, None)
        if header is None:
            return 0  # an empty partition gives an empty output
        try:
            column = header.index("word")
        except ValueError:
            raise ValueError("%s has no 'word' column (columns: %s)" % (input_path, ", ".join(header)))
        writer.writerow(header)
        counter = [0]
        writer.writerows(_normalized_rows(reader, column, counter))
        return counter[0]


def _normalized_rows(reader, column, counter):
    cache_get = _cache.get
    n = 0
    for row in reader:
        n += 1
        if len(row) > column:
            word = row[column]
            text = cache_get(word)
            row[column] = _normalize_new(word) if text is None else text
        yield row
    counter[0] = n


def _process_jsonl(input_path, output_path):
    loads = json.loads
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # compact, as JSON.stringify writes it
    cache_get = _cache.get
    n = 0
    out = []
    with open(input_path, encoding="utf-8") as src:
        for line in src:
            if not line.strip():
                continue
            record = loads(line)
            word = record.get("word") if isinstance(record, dict) else None
            if isinstance(word, str):
                text = cache_get(word)
                record["word"] = _normalize_new(word) if text is None else text
            out.append(dumps(record))
            n += 1
    with open(output_path, "w", encoding="utf-8") as dst:
        if out:
            dst.write("\n".join(out))
            dst.write("\n")
    return n


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python3 normalize_words.py INPUT OUTPUT")
    process(sys.argv[1], sys.argv[2], None)
