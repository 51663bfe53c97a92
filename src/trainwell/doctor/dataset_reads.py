"""Reading a user's dataset items the way the loop would, without moving the loop's draws: items compared by
value, each read under the global generators (torch's, Python's, NumPy's) seeded to one state and the dataset's own
generators (its attributes', or its transform's) set to one state, so that a random augmentation draws alike."""

from __future__ import annotations

import random
import sys

import torch

SEED = 0  # the global generators' seed for each read of an example
#: the generator classes, as imported (a read may run while the constructors are replaced: seeded_generators)
_TORCH_GENERATOR, _PYTHON_RANDOM = torch.Generator, random.Random


def same(a, b) -> bool:
    """Whether two dataset items hold the same values (tensors, arrays, numbers, strings, nested in tuples, lists
    and dicts)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and \
            bool(torch.equal(a, b))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(u, v) for u, v in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if hasattr(a, "shape") and hasattr(b, "shape"):  # numpy arrays
        return a.shape == b.shape and bool((a == b).all())
    try:
        return bool(a == b)
    except (TypeError, ValueError, RuntimeError):
        return False


def _state_of(generator):
    """A generator's state, read back by :func:`set_state`: a ``torch.Generator``'s, a ``random.Random``'s, a
    numpy ``Generator``'s or ``RandomState``'s; None for anything else."""
    if isinstance(generator, _TORCH_GENERATOR):
        return generator.get_state()
    if isinstance(generator, _PYTHON_RANDOM):
        return generator.getstate()
    if hasattr(generator, "bit_generator") and hasattr(generator.bit_generator, "state"):  # numpy Generator
        return generator.bit_generator.state
    if type(generator).__name__ == "RandomState" and hasattr(generator, "get_state"):
        return generator.get_state()
    return None


def set_state(generator, state) -> None:
    """Sets a generator back to a state read by :func:`_state_of`."""
    if isinstance(generator, _TORCH_GENERATOR):
        generator.set_state(state)
    elif isinstance(generator, _PYTHON_RANDOM):
        generator.setstate(state)
    elif hasattr(generator, "bit_generator"):
        generator.bit_generator.state = state
    else:
        generator.set_state(state)


def own_generators(dataset) -> list:
    """(generator, state) of each generator a dataset keeps as an attribute, or as an attribute of one of its
    attributes (a transform's): the dataset's own draws, which the global seeds do not reach."""
    found, seen = [], set()
    holders = [dataset, *[v for v in getattr(dataset, "__dict__", {}).values() if hasattr(v, "__dict__")]]
    for holder in holders:
        for value in getattr(holder, "__dict__", {}).values():
            state = _state_of(value) if id(value) not in seen else None
            if state is not None:
                seen.add(id(value))
                found.append((value, state))
    return found


def seeded_read(dataset, i: int, own: list, seed: int = SEED):
    """``dataset[i]`` read with torch's, Python's and numpy's global generators seeded to ``seed`` and the
    dataset's own generators (``own``: (generator, state)) set to the state they had before the first read, so
    that two reads of the same example draw the same augmentation."""
    torch.manual_seed(seed)
    random.seed(seed)
    numpy = sys.modules.get("numpy")  # a dataset that draws from numpy has imported it
    if numpy is not None:
        numpy.random.seed(seed)
    for generator, state in own:
        set_state(generator, state)
    return dataset[i]


__all__ = ["SEED", "own_generators", "same", "seeded_read", "set_state"]
