"""Score every payment of the demo `transactions` dataset for fraud, one partition at a time.

A logistic-regression-style model with fixed coefficients (as if trained elsewhere and pasted in):
the score is sigmoid(intercept + sum of weight * feature) over the amount in euros (log scale),
refunds, the merchant category, night-time payments and foreign currencies; a payment is flagged
when its score reaches 0.5. Standard library only.

Input columns: id,customer_id,amount,currency,merchant,category,ts (CSV with a header).
Output columns: id,customer_id,amount,score,flagged (flagged is 1 or 0).

    gatehouse submit --input transactions --output scratch/transactions_scored --python examples/score_transactions.py

or on one file: python3 examples/score_transactions.py part-00000.csv scored.csv
"""

import csv
import math
import sys

INTERCEPT = -7.6
W_LOG_AMOUNT = 0.9  # per unit of log(1 + |amount in EUR|)
W_REFUND = 1.8
W_NIGHT = 0.9  # paid between 00:00 and 05:59 UTC
W_FOREIGN = 0.5  # not paid in euros
CATEGORY_WEIGHTS = {
    "electronics": 1.3,
    "travel": 0.9,
    "clothing": 0.4,
    "entertainment": 0.3,
    "subscriptions": -0.4,
    "groceries": -0.8,
    "transport": -0.6,
    "utilities": -1.0,
    "telecom": -0.7,
}
EUR_PER_UNIT = {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "CHF": 1.04}
THRESHOLD = 0.5
REQUIRED = ("id", "customer_id", "amount", "currency", "category", "ts")


def score(amount, currency, category, ts):
    eur = amount * EUR_PER_UNIT.get(currency, 1.0)
    z = INTERCEPT + W_LOG_AMOUNT * math.log1p(abs(eur)) + CATEGORY_WEIGHTS.get(category, 0.0)
    if amount < 0:
        z += W_REFUND
    if currency != "EUR":
        z += W_FOREIGN
    hour = ts[11:13]  # ISO 8601: 2024-03-01T02:15:00Z
    if hour.isdigit() and int(hour) < 6:
        z += W_NIGHT
    return 1.0 / (1.0 + math.exp(-z))


def process(input_path, output_path, ctx):
    scored = flagged = 0
    with open(input_path, newline="", encoding="utf-8-sig") as src, \
            open(output_path, "w", newline="", encoding="utf-8") as dst:
        reader = csv.reader(src)
        writer = csv.writer(dst, lineterminator="\n")
        header = next(reader, None)
        writer.writerow(["id", "customer_id", "amount", "score", "flagged"])
        if header is not None:
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise ValueError("%s lacks the column(s) %s" % (input_path, ", ".join(missing)))
            i_id, i_customer, i_amount, i_currency, i_category, i_ts = (header.index(c) for c in REQUIRED)
            for row in reader:
                if not row:
                    continue
                amount = float(row[i_amount])
                s = score(amount, row[i_currency], row[i_category], row[i_ts])
                flag = s >= THRESHOLD
                flagged += flag
                scored += 1
                writer.writerow((row[i_id], row[i_customer], row[i_amount], "%.4f" % s, 1 if flag else 0))
    if ctx is not None:
        ctx.log.info("partition %s: %d of %d payments flagged", ctx.partition, flagged, scored)
    return flagged


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python3 score_transactions.py INPUT OUTPUT")
    n = process(sys.argv[1], sys.argv[2], None)
    print("%d payments flagged" % n)
