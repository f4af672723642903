"""Baseline: multiprocessing.Pool(<cores>).map over the partitions, as a user would write it
(default start method, fork on Linux; default chunksize).

    /usr/bin/python3 pool.py EXAMPLE INPUT_DIR OUTPUT_DIR CORES

Prints one JSON line: {"startup_s", "run_s", "close_s", "process_s"}: the pool's own start-up, the
map, the shutdown, and the sum of the partitions' process() times.
"""

import functools
import json
import multiprocessing
import sys
import time

from common import load_process, partitions, run_partition

if __name__ == "__main__":
    example, input_dir, output_dir, cores = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    load_process(example)  # imported once in the parent; forked workers inherit it
    t0 = time.perf_counter()
    pool = multiprocessing.Pool(cores)
    t1 = time.perf_counter()
    seconds = pool.map(functools.partial(run_partition, example, output_dir=output_dir), partitions(input_dir))
    t2 = time.perf_counter()
    pool.close()
    pool.join()
    t3 = time.perf_counter()
    print(json.dumps({"startup_s": t1 - t0, "run_s": t2 - t1, "close_s": t3 - t2, "process_s": sum(seconds)}))
