"""What every baseline driver of bench/engine.bench.ts shares: the job's process() loaded from the
examples file by path (the same function the engine runs), the partition pairs, and a ctx like the
engine's python runner gives (partition, attempt, job_id, input_format, a logger on stderr), so the
baselines do exactly the per-partition work the engine's workers do and only the orchestration differs.
"""

import importlib.util
import logging
import os
import sys
import time

_process = None


def load_process(example_path):
    """process() of the example file, imported once per interpreter."""
    global _process
    if _process is None:
        spec = importlib.util.spec_from_file_location("gatehouse_job", example_path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["gatehouse_job"] = module
        spec.loader.exec_module(module)
        _process = module.process
    return _process


class Context:
    __slots__ = ("partition", "attempt", "job_id", "input_format", "log")

    def __init__(self, partition, input_format):
        self.partition = partition
        self.attempt = 1
        self.job_id = "bench"
        self.input_format = input_format
        self.log = _logger()


_log = None


def _logger():
    global _log
    if _log is None:
        _log = logging.getLogger("gatehouse.job")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        _log.addHandler(handler)
        _log.setLevel(logging.INFO)
        _log.propagate = False
    return _log


def partition_of(path):
    """part-00012.csv -> 12"""
    return int(os.path.basename(path).split("-", 1)[1].split(".", 1)[0])


def run_partition(example_path, input_path, output_dir):
    """One partition: what a worker of any baseline does. Returns the seconds process() took."""
    output_path = os.path.join(output_dir, os.path.basename(input_path))
    fmt = "jsonl" if input_path.endswith(".jsonl") else "csv"
    process = load_process(example_path)
    started = time.perf_counter()
    process(input_path, output_path, Context(partition_of(input_path), fmt))
    return time.perf_counter() - started


def partitions(input_dir):
    """The input's partition files in order (the dataset's _dataset.json is not one)."""
    return sorted(
        os.path.join(input_dir, f) for f in os.listdir(input_dir) if f.startswith("part-")
    )
