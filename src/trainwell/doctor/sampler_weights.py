"""A ``WeightedRandomSampler`` given one weight per class instead of one per example. Its weights are the
examples' sampling weights, so ``WeightedRandomSampler(1 / class_counts, num_samples=len(dataset))`` draws only
the indices 0..C-1: the loop trains on C examples over and over, whatever the dataset holds. Torch accepts it
silently; the fix is ``weights = (1 / class_counts)[labels]``, the weight of each example's class.

Read from every ``DataLoader`` iterated while watched (its ``sampler``, or its ``batch_sampler``'s): a weighted
sampler with fewer weights than the loader's dataset has examples."""

from __future__ import annotations

from torch.utils.data import DataLoader, WeightedRandomSampler

from trainwell.doctor.method_readers import ReadsCalls
from trainwell.doctor.verdict import Verdict

NAME = "loop: sampler weights"


class LoaderSamplers(ReadsCalls):
    """Reads the sampler of each ``DataLoader`` iterated between :meth:`start` and :meth:`stop` (several readers
    may be active at once); :attr:`short` keeps (weights, examples) of a weighted sampler shorter than its
    dataset."""

    patched = (DataLoader, "__iter__")

    def __init__(self) -> None:
        self.short: tuple[int, int] | None = None

    def saw(self, loader: DataLoader) -> None:
        try:
            examples = len(loader.dataset)
        except TypeError:  # an iterable dataset: no length, no index sampler
            return
        for sampler in (loader.sampler, getattr(loader.batch_sampler, "sampler", None)):
            if isinstance(sampler, WeightedRandomSampler) and len(sampler.weights) < examples:
                self.short = (len(sampler.weights), examples)

    def verdict(self) -> Verdict | None:
        """A fail when a weighted sampler shorter than its dataset was iterated; None otherwise."""
        if self.short is None:
            return None
        weights, examples = self.short
        return Verdict(NAME, "fail", f"a WeightedRandomSampler with {weights} weights draws from a dataset of "
                       f"{examples} examples: only examples 0..{weights - 1} are ever drawn",
                       "one weight per example", "the weights are per example, not per class: weights = "
                       "class_weights[labels], the weight of each example's class")
