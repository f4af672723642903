"""Baseline: one Python process runs process() over every partition in turn (per-core speed).

    /usr/bin/python3 one_process.py EXAMPLE INPUT_DIR OUTPUT_DIR

Prints one JSON line: {"process_s"}, the sum of the partitions' process() times.
"""

import json
import sys

from common import partitions, run_partition

if __name__ == "__main__":
    example, input_dir, output_dir = sys.argv[1:4]
    seconds = [run_partition(example, path, output_dir) for path in partitions(input_dir)]
    print(json.dumps({"process_s": sum(seconds)}))
