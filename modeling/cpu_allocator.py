"""Let a process reuse the memory of freed tensors instead of faulting in fresh pages on every network pass.

A forward pass on the CPU allocates and frees activations of tens of megabytes, layer after layer. With glibc's
default settings much of that memory goes back to the kernel as soon as it is freed: the top of the heap is trimmed
once more than ``M_TRIM_THRESHOLD`` is free there, and blocks above ``M_MMAP_THRESHOLD`` get their own mapping,
unmapped on free. The next pass then touches new pages, and the kernel zero-fills each 4 KiB page on first touch (a
minor page fault). A PRN-Dense swap of a 512 px photo (twenty 128 px crops through the network) faulted in most of
the memory its passes use again on every call that way; ``benchmarks/bench_rotation_swap.py`` prints the seconds and
page faults with and without (``--default-allocator``).

:func:`reuse_freed_memory` sets three of glibc's ``mallopt`` parameters for the whole process:

- ``M_MMAP_THRESHOLD`` to 32 MiB (glibc's ceiling on 64-bit systems for its own adaptive threshold): an activation
  tensor comes from the heap, where its memory can be reused, not from a mapping of its own;
- ``M_TRIM_THRESHOLD`` to 256 MiB by default: up to that much freed memory stays with the process for the next pass;
- ``M_ARENA_MAX`` to 1: threads (Gradio runs each request in a worker thread) share the main heap instead of
  per-thread arenas of at most 64 MiB, which cannot hold a pass's activations and are unmapped when emptied.

The cost is memory kept: a process holds up to ``trim_threshold`` more than it uses at the moment (the benchmark prints
the resident memory), and threads allocating at once wait on one heap's lock, which suits an inference process that
serves one request at a time. Intel's performance tuning guide for PyTorch on CPUs preloads jemalloc or tcmalloc
(``LD_PRELOAD``) for the same reason; these settings need no library installed. The ``facehub`` command calls it before
every sub-command (the demo, evaluation, comparison, benchmarks, single-process training); the workers that
``accelerate launch`` starts keep glibc's defaults (a CPU training step of PRN-Dense showed no clear difference either
way), and code that imports facehub into its own process decides for itself, as nothing changes on import. The
process's own choice wins: nothing is set when ``FACEHUB_REUSE_FREED_MEMORY=0`` or any of glibc's
``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_`` or ``GLIBC_TUNABLES``
is in the environment, and elsewhere than Linux with glibc (macOS, Windows, musl) the call does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: ``mallopt`` parameter numbers, from glibc's ``malloc.h``.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8

#: Blocks up to this size come from the heap (glibc's ``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit systems, the largest
#: value ``mallopt`` accepts there).
MMAP_THRESHOLD = 32 << 20

#: Default most freed memory kept at the top of the heap.
TRIM_THRESHOLD = 256 << 20

#: Environment variables through which a process has already chosen glibc's allocator settings.
ALLOCATOR_ENVIRONMENT = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                         "GLIBC_TUNABLES")

#: Set to ``0`` to leave the allocator as it is.
OPT_OUT_VARIABLE = "FACEHUB_REUSE_FREED_MEMORY"


def _glibc():
    """The process's C library when it is glibc (it exports ``gnu_get_libc_version``), else ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    return libc


def reuse_freed_memory(trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Keep freed memory in this process for the next network pass (module docstring). Returns whether the settings
    were applied: ``False`` where the environment opts out or has its own allocator settings, or off glibc.

    Args:
        trim_threshold: the most freed memory, bytes, kept at the top of the heap (at least ``MMAP_THRESHOLD``).

    Raises:
        ValueError: ``trim_threshold`` below :data:`MMAP_THRESHOLD` or beyond what ``mallopt`` takes (an ``int``).
    """
    if not MMAP_THRESHOLD <= int(trim_threshold) < 2**31:
        raise ValueError(f"trim_threshold must be between {MMAP_THRESHOLD} and {2**31 - 1} bytes, "
                         f"got {trim_threshold}.")
    if os.environ.get(OPT_OUT_VARIABLE, "").strip() == "0":
        return False
    if any(name in os.environ for name in ALLOCATOR_ENVIRONMENT):
        return False
    libc = _glibc()
    if libc is None:
        return False
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, int(trim_threshold)), (M_ARENA_MAX, 1))
    # mallopt returns 1 on success; every setting is tried, and the call reports whether all took.
    return all([libc.mallopt(parameter, value) == 1 for parameter, value in settings])
