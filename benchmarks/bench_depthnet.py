"""Time DepthNet's face swap and face rotation on 512x512 photos, split into stages.

The benchmark lives in the package (:mod:`facehub.trainers.benchmarks.depthnet`) so that ``facehub bench depthnet`` runs
it from any install; this script runs the same code: ``python benchmarks/bench_depthnet.py --help``.
"""

import sys

from facehub.trainers.benchmarks.depthnet import main

if __name__ == "__main__":
    sys.exit(main())
