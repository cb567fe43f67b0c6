"""Benchmark: PRN-Dense speed against the machine's own floor, photo -> GLB, memory, and training throughput.

The benchmark lives in the package (:mod:`facehub.trainers.benchmarks.prn_dense`) so that ``facehub bench prn_dense`` runs
it from any install; this script runs the same code: ``python benchmarks/bench_prn_dense.py --help``.
"""

import sys

from facehub.trainers.benchmarks.prn_dense import main

if __name__ == "__main__":
    sys.exit(main())
