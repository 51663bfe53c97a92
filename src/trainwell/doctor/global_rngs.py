"""The process's global random generators - torch's (the CPU's and the given CUDA devices'), Python's ``random``
and NumPy's (where ``numpy.random`` is imported: until then it has drawn nothing) - put back as they were when a
block ends, also on an exception: a check that runs the user's code (a forward, a dataset's augmentation) leaves
the user's draws alone."""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator, Sequence

import torch


@contextlib.contextmanager
def kept(devices: Sequence[int] = ()) -> Iterator[None]:
    """Restore the global generators' states when the block ends (``devices``: the CUDA devices whose generators
    the block may draw from)."""
    numpy = sys.modules.get("numpy.random") and sys.modules["numpy"]  # never drawn from where not imported
    python_state = random.getstate()
    numpy_state = numpy.random.get_state() if numpy is not None else None
    with torch.random.fork_rng(devices=list(devices)):
        try:
            yield
        finally:
            random.setstate(python_state)
            if numpy_state is not None:
                numpy.random.set_state(numpy_state)


__all__ = ["kept"]
