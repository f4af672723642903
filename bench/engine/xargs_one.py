"""Baseline: what `xargs -P <cores>` starts once per partition (a fresh interpreter each time).

    ls INPUT_DIR/part-* | xargs -P 2 -I{} /usr/bin/python3 xargs_one.py EXAMPLE {} OUTPUT_DIR
"""

import sys

from common import run_partition

if __name__ == "__main__":
    example, input_path, output_dir = sys.argv[1:4]
    run_partition(example, input_path, output_dir)
