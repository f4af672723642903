"""Baseline: Dask distributed (Debian's python3-distributed) on this machine: a LocalCluster of
<cores> single-threaded worker processes, client.map over the partitions, client.gather. The
cluster is started and closed inside the run, as a user's script pays for it.

    /usr/bin/python3 dask_map.py EXAMPLE INPUT_DIR OUTPUT_DIR CORES

Prints one JSON line: {"import_s", "startup_s", "run_s", "close_s", "process_s"}: importing
distributed, starting the cluster and client, map + gather, closing, and the sum of the partitions'
process() times.
"""

import json
import sys
import time

t_import = time.perf_counter()
from dask.distributed import Client, LocalCluster  # noqa: E402

from common import partitions, run_partition  # noqa: E402


if __name__ == "__main__":
    example, input_dir, output_dir, cores = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=cores, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    t1 = time.perf_counter()
    paths = partitions(input_dir)
    # run_partition lives in common.py: workers import it by name (the spawned workers get this
    # sys.path) rather than unpickling a closure.
    futures = client.map(run_partition, [example] * len(paths), paths, [output_dir] * len(paths))
    seconds = client.gather(futures)
    t2 = time.perf_counter()
    client.close()
    cluster.close()
    t3 = time.perf_counter()
    print(json.dumps({"import_s": t0 - t_import, "startup_s": t1 - t0, "run_s": t2 - t1, "close_s": t3 - t2, "process_s": sum(seconds)}))
