"""Generators a dataset makes and seeds inside ``__getitem__`` (``torch.Generator().manual_seed(idx)``,
``np.random.default_rng(idx)``, ``random.Random(idx)``): each item's augmentation is then a function of its
index. Inside :func:`one_seed` every such seed is recorded and replaced by one constant, so that two items that
differ only by the augmentation their index seeds read alike, and an item read under two constants shows whether
that seed shapes it; torch's, NumPy's and Python's constructors are put
back when the block ends, also on an exception."""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator

import torch

SEED = 0  # the seed every generator made inside the block gets


class Seeds:
    """The seeds the code inside :func:`one_seed` gave its generators, in order (``given``)."""

    def __init__(self) -> None:
        self.given: list = []


@contextlib.contextmanager
def one_seed(constant: int = SEED) -> Iterator[Seeds]:
    """Inside, ``torch.Generator(...).manual_seed(s)``, ``numpy.random.default_rng(s)`` and ``random.Random(s)``
    seed with ``constant`` and record ``s``. Generators made before the block (a dataset's own, seeded once) are
    not touched."""
    seeds = Seeds()
    torch_generator, python_random = torch.Generator, random.Random

    class RecordedTorchGenerator(torch_generator):
        def manual_seed(self, seed):
            seeds.given.append(seed)
            return super().manual_seed(constant)

    class RecordedRandom(python_random):
        def seed(self, a=None, version=2):
            if a is not None:
                seeds.given.append(a)
                a = constant
            super().seed(a, version)

    numpy = sys.modules.get("numpy")  # a dataset that draws from numpy has imported it
    default_rng = numpy.random.default_rng if numpy is not None else None

    def recorded_default_rng(seed=None):
        if seed is None:
            return default_rng()
        seeds.given.append(seed)
        return default_rng(constant)

    torch.Generator, random.Random = RecordedTorchGenerator, RecordedRandom
    if numpy is not None:
        numpy.random.default_rng = recorded_default_rng
    try:
        yield seeds
    finally:
        torch.Generator, random.Random = torch_generator, python_random
        if numpy is not None:
            numpy.random.default_rng = default_rng


__all__ = ["SEED", "Seeds", "one_seed"]
