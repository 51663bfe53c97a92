"""An oversampled example drawn with the same augmentation every time. A ``WeightedRandomSampler`` with
replacement draws its heaviest examples several times an epoch; a dataset whose ``__getitem__`` seeds its
augmentation's generator from the index alone (``g = torch.Generator().manual_seed(idx)``) gives every one of
those draws, in every epoch, the same augmented example: the oversampling repeats one view of it instead of new
ones. The fix is to draw the augmentation from torch's generator without a manual seed (the DataLoader seeds it
per epoch and worker), or to seed it from the index and the epoch.

Read each time a weighted loader is iterated (once per epoch): its :data:`PROBES` heaviest examples, three times
each. Under the global generators at one seed, once with every generator seeded inside ``__getitem__`` given one
constant and once another (:func:`~trainwell.doctor.seeded_generators.one_seed`): the item changes, so that seed
shapes it; under the global generators at another seed, the dataset's own generators left running, and the first
constant: the item is the first one again, so nothing else draws. The seeds ``__getitem__`` gave, the same in all
three reads, are compared with those of the previous epoch: the same, they are the index's alone. An item whose
label (a number beside its input) changes with that seed is generated from it, not augmented: a procedural data
set whose index is its example (``g = torch.Generator().manual_seed(idx)`` drawing the class and the features)
gives every draw of an example the example itself, as it should."""

from __future__ import annotations

import torch

from trainwell.doctor import global_rngs
from trainwell.doctor.dataset_reads import SEED, own_generators, same, seeded_read, set_state
from trainwell.doctor.seeded_generators import one_seed

PROBES = 2  # the heaviest examples read
LABEL_SEEDS = 14  # the other seeds each is read under, to see whether its label changes with the seed


def index_seeds(dataset, indices: list[int]) -> tuple | None:
    """The seeds ``dataset[i]`` gives the generators it makes, for each of ``indices``, when each item is a
    function of those seeds alone (see the module's docstring); None otherwise, or when it cannot be read. The
    loop's and the dataset's generator states are restored after."""
    own: list = []
    with global_rngs.kept():  # the loop's draws are left alone
        try:
            own = own_generators(dataset)
            with one_seed(0) as first:
                items = [seeded_read(dataset, i, own) for i in indices]
            with one_seed(1) as second:
                changed = [seeded_read(dataset, i, own) for i in indices]
            with one_seed(0) as third:
                again = [seeded_read(dataset, i, [], seed=SEED + 1) for i in indices]
        except Exception:  # noqa: BLE001 - a user's dataset may raise anything
            return None
        finally:
            for generator, state in own:
                set_state(generator, state)
    given = tuple(repr(s) for s in first.given)
    if not given or given != tuple(repr(s) for s in second.given) or given != tuple(repr(s) for s in third.given):
        return None
    shaped = all(not same(a, b) for a, b in zip(items, changed, strict=True))
    return given if shaped and all(same(a, b) for a, b in zip(items, again, strict=True)) else None


def label_drawn(dataset, indices: list[int]) -> bool:
    """Whether the label of ``dataset[i]`` (a number after its first field) changes with the seed its generators
    are given, for one of ``indices``, under up to :data:`LABEL_SEEDS` seeds: the seed generates the example."""
    own: list = []
    with global_rngs.kept():
        try:
            own = own_generators(dataset)
            with one_seed(0):
                items = [seeded_read(dataset, i, own) for i in indices]
            for constant in range(1, LABEL_SEEDS + 1):
                with one_seed(constant):
                    other = [seeded_read(dataset, i, own) for i in indices]
                if any(_label_drawn(a, b) for a, b in zip(items, other, strict=True)):
                    return True
        except Exception:  # noqa: BLE001 - a user's dataset may raise anything
            return False
        finally:
            for generator, state in own:
                set_state(generator, state)
    return False


def _is_number(v) -> bool:
    """A Python number or a tensor or array of one element (an item's label)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float)):
        return True
    return hasattr(v, "shape") and hasattr(v, "dtype") and tuple(v.shape) in ((), (1,))


def _label_drawn(a, b) -> bool:
    """Whether two reads of an item (input, label, ...) under other seeds give it another label: a number after
    its first field that differs. Augmentation keeps an example's label; a seed that draws it generates the
    example."""
    if not isinstance(a, (tuple, list)) or not isinstance(b, (tuple, list)) or len(a) != len(b) or len(a) < 2:
        return False
    return any(_is_number(u) and _is_number(v) and not same(u, v) for u, v in zip(a[1:], b[1:], strict=True))


class RepeatedDraws:
    """Whether a weighted sampler's heaviest examples got the seeds of the previous epoch again (``fixed``)."""

    def __init__(self) -> None:
        self.fixed = False
        self._last: dict[int, tuple] = {}  # id(dataset) -> the seeds its heaviest examples gave last epoch

    def read(self, dataset, weights) -> None:
        """One epoch of a loader over ``dataset`` drawn with replacement by ``weights``."""
        if self.fixed:
            return
        weights = torch.as_tensor(weights, dtype=torch.double)
        heaviest = torch.topk(weights, min(PROBES, len(weights))).indices.tolist()
        seeds = index_seeds(dataset, heaviest)
        if seeds is None:
            return
        self.fixed = self._last.get(id(dataset)) == seeds and not label_drawn(dataset, heaviest)
        self._last[id(dataset)] = seeds


__all__ = ["RepeatedDraws", "index_seeds", "label_drawn"]
