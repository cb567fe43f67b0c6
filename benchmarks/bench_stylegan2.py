"""Benchmark: StyleGAN2 generator speed (unfused modulated convolutions against the paper's grouped form) and training
throughput.

The benchmark lives in the package (:mod:`facehub.trainers.benchmarks.stylegan2`) so that ``facehub bench stylegan2``
runs it from any install; this script runs the same code: ``python benchmarks/bench_stylegan2.py --help``.
"""

import sys

from facehub.trainers.benchmarks.stylegan2 import main

if __name__ == "__main__":
    sys.exit(main())
