"""A ``WeightedRandomSampler`` given one weight per class instead of one per example. Its weights are the
examples' sampling weights, so ``WeightedRandomSampler(1 / class_counts, num_samples=len(dataset))`` draws only
the indices 0..C-1: the loop trains on C examples over and over, whatever the dataset holds. Torch accepts it
silently; the fix is ``weights = (1 / class_counts)[labels]``, the weight of each example's class.

Read from every ``DataLoader`` iterated while watched (its ``sampler``, or its ``batch_sampler``'s): a weighted
sampler with fewer weights than the loader's dataset has examples. A dataset that repeats its examples past the
weights (``dataset[i]`` is ``dataset[i % len(weights)]``, an oversampling view of the weighted examples) has no
example the sampler cannot draw: a few of the indices past the weights are read to tell, each under the same
seeded global generators (torch's, Python's, numpy's), and the generators the dataset keeps as its own attributes
(or its transform's) at one state, so that a random augmentation draws alike for both reads; the loop's and the
dataset's generator states are restored after."""

from __future__ import annotations

import contextlib

from torch.utils.data import DataLoader, WeightedRandomSampler

from trainwell.doctor import global_rngs
from trainwell.doctor.dataset_reads import own_generators, same, seeded_read, set_state
from trainwell.doctor.method_readers import ReadsCalls
from trainwell.doctor.repeated_draws import RepeatedDraws
from trainwell.doctor.seeded_generators import one_seed
from trainwell.doctor.verdict import Verdict

NAME = "loop: sampler weights"
PROBES = 4  # the indices past the weights read to tell a dataset that repeats its examples
#: how to draw a new augmentation on every draw of an example
INDEX_SEED_FIX = ("draw the augmentation from torch's generator without manual_seed (the DataLoader seeds it per "
                  "epoch and worker), or seed it from the index and the epoch")


def repeats_past(dataset, weights: int, examples: int) -> bool:
    """Whether ``dataset`` (``examples`` long) repeats its first ``weights`` examples past them: ``dataset[i]``
    equals ``dataset[i % weights]`` at :data:`PROBES` indices spread over the rest (a dataset that cannot be read
    there does not). Each item is read under the same seeded global generators and the dataset's own generators
    (:func:`own_generators`) at one state, so that a random augmentation draws alike for both; the loop's and the
    dataset's generator states are restored after."""
    return _read_repeats(dataset, weights, examples, index_seeds=False)


def repeats_with_index_seeds(dataset, weights: int, examples: int) -> bool:
    """Whether ``dataset`` repeats its first ``weights`` examples past them once the generators its
    ``__getitem__`` makes and seeds (from the index: ``torch.Generator().manual_seed(idx)``) all get one seed
    (:func:`~trainwell.doctor.seeded_generators.one_seed`): copies of the weighted examples that differ only by
    the augmentation their index seeds. False when no read seeded a generator of its own."""
    return _read_repeats(dataset, weights, examples, index_seeds=True)


def _read_repeats(dataset, weights: int, examples: int, index_seeds: bool) -> bool:
    rest = examples - weights
    probes = sorted({weights + (rest - 1) * k // max(PROBES - 1, 1) for k in range(PROBES)})
    own: list = []
    with global_rngs.kept():  # a dataset that draws (augmentation) leaves the loop's draws alone
        try:
            own = own_generators(dataset)
            with one_seed() if index_seeds else contextlib.nullcontext() as seeds:
                alike = all(same(seeded_read(dataset, i, own), seeded_read(dataset, i % weights, own))
                           for i in probes)
            return alike and (not index_seeds or bool(seeds.given))
        except Exception:  # noqa: BLE001 - a user's dataset may raise anything
            return False
        finally:
            for generator, state in own:
                set_state(generator, state)


class LoaderSamplers(ReadsCalls):
    """Reads the sampler of each ``DataLoader`` iterated between :meth:`start` and :meth:`stop` (several readers
    may be active at once); :attr:`short` keeps (weights, examples) of a weighted sampler shorter than its
    dataset, and :attr:`starts` (the id of the loader's dataset, ``clock()``) for each iteration begun: where the
    epochs over each dataset began (``clock``: the loop's step count, e.g. the optimizer steps recorded so far; a
    loader built anew each epoch over one dataset counts as one)."""

    patched = (DataLoader, "__iter__")

    def __init__(self, clock=None) -> None:
        self.short: tuple[int, int] | None = None
        self.starts: list[tuple[int, int]] = []
        self._clock = clock
        self.index_seeded = False  # the dataset's copies past the weights differ only by index-seeded augmentation
        self.draws = RepeatedDraws()  # the heaviest examples' augmentation seeded from their index alone?

    def saw(self, loader: DataLoader) -> None:
        if self._clock is not None and len(self.starts) < 100_000:
            self.starts.append((id(loader.dataset), self._clock()))
        try:
            examples = len(loader.dataset)
        except TypeError:  # an iterable dataset: no length, no index sampler
            return
        samplers = (loader.sampler, getattr(loader.batch_sampler, "sampler", None))  # the same one, or two
        for sampler in {id(s): s for s in samplers}.values():
            if isinstance(sampler, WeightedRandomSampler) and len(sampler.weights) < examples and \
                    not repeats_past(loader.dataset, len(sampler.weights), examples):
                self.short = (len(sampler.weights), examples)
                self.index_seeded = repeats_with_index_seeds(loader.dataset, len(sampler.weights), examples)
            elif isinstance(sampler, WeightedRandomSampler) and sampler.replacement:
                self.draws.read(loader.dataset, sampler.weights)

    def verdict(self) -> Verdict | None:
        """A fail when a weighted sampler shorter than its dataset was iterated; a warning when its heaviest
        examples got the same augmentation, seeded from their index alone, in two epochs; None otherwise."""
        if self.short is None and self.draws.fixed:
            return Verdict(NAME, "warn", "a WeightedRandomSampler draws its heaviest examples with replacement from a "
                           "dataset that seeds their augmentation from the index alone: every draw of an example, in "
                           "every epoch, is the same augmented example", "a new augmentation on every draw",
                           f"oversampling repeats one view of each example: {INDEX_SEED_FIX}")
        if self.short is None:
            return None
        weights, examples = self.short
        drawn = f"a WeightedRandomSampler with {weights} weights draws from a dataset of {examples} examples"
        if self.index_seeded:
            return Verdict(NAME, "fail", f"{drawn} that repeats its first {weights}, each copy with an augmentation "
                           f"seeded from its index: only examples 0..{weights - 1} are ever drawn, each one with the "
                           "same augmentation on every draw", "a new augmentation on every draw",
                           "the copies are never drawn and an oversampled example repeats its one augmentation: "
                           f"drop the copies (the sampler already oversamples) and {INDEX_SEED_FIX}")
        return Verdict(NAME, "fail", f"{drawn}: only examples 0..{weights - 1} are ever drawn",
                       "one weight per example", "the weights are per example, not per class: weights = "
                       "class_weights[labels], the weight of each example's class")
