"""facehub.reuse_freed_memory: network passes stop faulting in fresh pages, and the process's own choice wins.

Each case runs in a fresh interpreter, since the settings are the whole process's and cannot be taken back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from facehub.modeling.cpu_allocator import MMAP_THRESHOLD, _glibc, reuse_freed_memory

# Five 128 px crops through a PRN-Dense network six times; prints whether the settings applied and the minor page
# faults of each pass.
PASSES = """
import json, resource, torch
import facehub
applied = facehub.reuse_freed_memory()
torch.manual_seed(0)
model = facehub.PRNDenseModel.from_preset("cpu-small", sample_size=128).eval()
crops = torch.zeros(5, 3, 128, 128)
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with torch.no_grad():
        model(crops)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"applied": applied, "faults": faults}))
"""

# Only whether the settings applied.
APPLIED = "import json, facehub; print(json.dumps({'applied': facehub.reuse_freed_memory()}))"

needs_glibc = pytest.mark.skipif(_glibc() is None, reason="the settings are glibc's (Linux); elsewhere nothing is set")


def run_passes(code: str = PASSES, **environment) -> dict:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("MALLOC_") and name not in ("GLIBC_TUNABLES", "FACEHUB_REUSE_FREED_MEMORY")}
    env.update(OMP_NUM_THREADS="1", **environment)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@needs_glibc
def test_passes_reuse_freed_memory_instead_of_faulting_in_fresh_pages():
    tuned = run_passes()
    default = run_passes(FACEHUB_REUSE_FREED_MEMORY="0")
    assert tuned["applied"] is True and default["applied"] is False
    # A pass's activations come to tens of megabytes (thousands of 4 KiB pages). With glibc's defaults every pass
    # faults many of them in again (how many depends on how many transparent huge pages the kernel hands out at the
    # time: 8k-48k a pass were seen); once freed memory is kept, the passes after the first two fault almost none (an
    # occasional pass still grows the heap by a megabyte or so, hence sums over four passes).
    kept, returned = sum(tuned["faults"][2:]), sum(default["faults"][2:])
    assert kept < 5_000, tuned
    assert returned > 5 * max(kept, 1_000), (tuned, default)


@needs_glibc
@pytest.mark.parametrize("variable", ["MALLOC_ARENA_MAX", "GLIBC_TUNABLES"])
def test_the_process_own_allocator_settings_win(variable):
    value = "2" if variable == "MALLOC_ARENA_MAX" else "glibc.malloc.trim_threshold=1048576"
    assert run_passes(APPLIED, **{variable: value})["applied"] is False
    assert run_passes(APPLIED)["applied"] is True


def test_a_trim_threshold_below_the_mmap_threshold_is_refused():
    with pytest.raises(ValueError, match="trim_threshold"):
        reuse_freed_memory(MMAP_THRESHOLD - 1)
