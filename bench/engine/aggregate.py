"""A CSV aggregation for bench/person.bench.ts: amount summed and rows counted per (region, category)
of one partition, written as CSV sorted by key. Standard library only; the engine runs it as a job and
the Pool baseline (pool.py) imports the same process().

Input columns: id,region,category,amount. Output columns: region,category,rows,amount.
"""

import csv


def process(input_path, output_path, ctx):
    totals = {}
    with open(input_path, newline="") as f:
        rows = csv.reader(f)
        next(rows)  # header
        for _id, region, category, amount in rows:
            key = (region, category)
            n, s = totals.get(key, (0, 0.0))
            totals[key] = (n + 1, s + float(amount))
    with open(output_path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["region", "category", "rows", "amount"])
        for (region, category), (n, s) in sorted(totals.items()):
            out.writerow([region, category, n, f"{s:.2f}"])
