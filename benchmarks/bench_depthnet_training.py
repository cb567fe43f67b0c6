"""Benchmark: DepthNet training throughput (pairs per second) with one and two processes.

The benchmark lives in the package: this is ``facehub bench depthnet --train-only``
(:mod:`facehub.trainers.benchmarks.depthnet`); options: ``python benchmarks/bench_depthnet_training.py --help``.
"""

import sys

from facehub.trainers.benchmarks.depthnet import main

if __name__ == "__main__":
    sys.exit(main(["--train-only", *sys.argv[1:]]))
