"""Freed memory kept by the process between training steps, not handed back to the system and faulted in again.

A training step allocates and frees the same large tensors every step. glibc's ``malloc`` (M. Kerrisk, *mallopt(3)*,
Linux man-pages) serves a request above its *mmap threshold* (128 KiB at start, raised as such blocks are freed,
up to 32 MiB on 64-bit systems) with a fresh ``mmap`` and unmaps it when it is freed, and it returns the free top
of its heap to the system whenever that exceeds the *trim threshold* (twice the mmap threshold). Either way the
next step's tensors land on pages the kernel must map and zero again: one page fault per 4 KiB. A step of 256
stacked MNIST-1D MLPs took 1,800-9,600 faults and up to 15 ms of system time out of 53-65 ms (benchmarks/RESULTS.md
section 33).

:func:`keep_freed_memory` fixes the mmap threshold at that 32 MiB ceiling, so blocks up to it come from the heap and
are reused, and raises the trim threshold to 1 GiB, so the heap's free top stays: what ``MALLOC_MMAP_THRESHOLD_``
and ``MALLOC_TRIM_THRESHOLD_`` in the environment would do. The process then keeps its peak memory until it
exits, the memory each training step reaches anyway. The command line does this at start (every ``trainwell``
process: fits, sweeps, the lab and its workers); a script that trains with the library calls it once.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (glibc's malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # the largest glibc accepts on a 64-bit system (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 2**30
# malloc's own settings from the environment: a user who set any of them keeps them
MALLOC_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")

_kept: bool | None = None


def keep_freed_memory() -> bool:
    """Keep memory that tensors free inside this process for the next ones (glibc's ``mallopt``; see the module's
    docstring). Returns whether the settings are in effect: False on a system without glibc's ``mallopt`` or when
    the environment already sets malloc's thresholds (:data:`MALLOC_ENVIRONMENT`), which are then left as they are.
    Calling it again does nothing more.

    Example:
        >>> from trainwell.heap import keep_freed_memory
        >>> isinstance(keep_freed_memory(), bool)
        True
    """
    global _kept
    if _kept is None:
        _kept = _apply()
    return _kept


def _apply() -> bool:
    if not sys.platform.startswith("linux") or any(k in os.environ for k in MALLOC_ENVIRONMENT):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (glibc's own symbol: another C library's mallopt means other things)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
