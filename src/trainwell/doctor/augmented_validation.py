"""``loop: validation augmentation``: random augmentation applied to the validation set.

A validation ``Dataset`` that applies a random flip, crop or noise in ``__getitem__`` (the training transform
reused for the validation split) shows the model other inputs at every evaluation: the validation loss then
carries the augmentation's noise and measures the model on augmented inputs, not on the data it will see, and
early stopping on it chases that noise. The watch keys the rows of the first :data:`DRAWS` validations' forwards
without gradients (:class:`~trainwell.doctor.validation_rows.RowKeys`, :data:`ROWS` rows each, in order) and reads
the targets each validation hands its loss (:mod:`~trainwell.doctor.validation_average`'s loss calls): when the
targets repeat exactly, batch for batch and in order, from one validation to the next (the same examples in the same
order) while under :data:`SAME` of the rows are the rows the first validation saw at the same place, the inputs
were drawn again for the same examples. A deterministic validation repeats every row; a validation set resampled
each time (a random subset, a shuffled loader) changes its targets too and is not read; nor is a validation whose
targets are real-valued rows of its inputs' own shape (a denoising autoencoder's clean inputs, a restoration
model's sharp images): fresh noise on inputs scored against fixed clean targets is that task itself, evaluated on
new corruptions (Vincent et al. 2008), not an augmentation; nor is one whose targets are positions, each integer
once in its batch (a contrastive loss's ``torch.arange`` pairing of two augmented views, SimCLR's NT-Xent, Chen et
al. 2020): its loss is defined on freshly drawn views, and without them it has nothing to measure.
"""

from __future__ import annotations

import math

import torch

from trainwell.doctor.validation_rows import RowKeys
from trainwell.doctor.verdict import Verdict

NAME = "loop: validation augmentation"
DRAWS = 3  # validations read (the first ones)
ROWS = 4096  # rows keyed per validation, at most
MIN_ROWS = 16  # rows a validation must have for a reading
#: how the warning begins (a cause of nothing downstream of the training loss)
CHANGED = "the validation inputs change between evaluations"
#: rows of forwards of several rows that repeat wholly at the same place, from which the forwards that change beside
#: them are not the validation set's (a random transform applied per row leaves 8 rows all unchanged by chance rarely)
REPEATED = 8
SAME = 0.9  # share of rows equal to the first validation's at the same place, under which the inputs changed


class ValidationDraws:
    """The keys of the rows of the forwards without gradients before each of the first :data:`DRAWS`
    ``w.validate()`` calls (those on a training batch left out; the eval-mode ones with gradients when there are
    none), per validation, in order; read at report time."""

    def __init__(self):
        self.keys = RowKeys()
        self.draws: dict[int, list] = {}  # validation index -> deferred keys per batch
        self.shapes: dict[int, list] = {}  # validation index -> input shape per batch
        self._pending: list = []  # (rows, deferred keys) of the forwards without gradients since the last step
        self._graded: list = []  # ... of the eval-mode forwards with gradients
        self._count = 0  # validations seen

    def no_grad(self, x, on_training: bool = False, training: bool = False) -> None:
        """A forward without gradients (``on_training``: on a training batch, not read; ``training``: in train
        mode, not read when eval-mode ones are: a training accuracy logged beside the validation)."""
        if not on_training:
            self._keep(self._pending, x, training)

    def eval_with_grad(self, x) -> None:
        """An eval-mode forward with gradients: a validation's when none without gradients precedes it."""
        self._keep(self._graded, x)

    def _keep(self, kept: list, x, training: bool = False) -> None:
        rows = sum(b[0] for b in kept)
        if self._count >= DRAWS or rows >= ROWS or not isinstance(x, torch.Tensor) or x.dim() < 1:
            return
        read = self.keys.deferred(x[: ROWS - rows])
        if read is not None:
            kept.append((*read, training, tuple(x.shape)))

    def stepped(self) -> None:
        """An optimizer step: the forwards before it were not a validation's."""
        self._pending, self._graded = [], []

    def validated(self) -> None:
        batches = self._pending or self._graded
        if any(not b[2] for b in batches):  # the eval-mode forwards, when there are
            batches = [b for b in batches if not b[2]]
        if batches and self._count < DRAWS:
            self.draws[self._count] = [b[1] for b in batches]
            self.shapes[self._count] = [b[3] for b in batches]
        self._pending, self._graded, self._count = [], [], self._count + 1

    def row_keys(self) -> dict[int, torch.Tensor]:
        """Each read validation's row keys, concatenated in order (on the CPU)."""
        return {i: torch.cat(batches) for i, batches in self.batch_keys().items()}

    def batch_keys(self) -> dict[int, list[torch.Tensor]]:
        """Each read validation's row keys per forward, in order (on the CPU)."""
        return {i: [rows()[0].cpu() for rows in batches] for i, batches in self.draws.items()}


def _same_targets(a: list, b: list) -> bool:
    """Whether two validations handed their loss the same targets, batch for batch and in order."""
    if len(a) != len(b) or not a or any(t is None for t in a + b):
        return False
    return all(bool(torch.equal(x.cpu(), y.cpu())) for x, y in zip(a, b, strict=True))


def position_targets(batches: list) -> bool:
    """Whether every target tensor a validation gave its loss is integer with each value once: positions in the
    batch (the index of each row's positive view), not labels of the examples."""
    return bool(batches) and all(
        isinstance(t, torch.Tensor) and t.dim() == 1 and len(t) > 1 and not t.is_floating_point() and
        len(torch.unique(t)) == len(t) for t in batches)


def reconstruction_targets(input_shapes: list, target_kinds: list) -> bool:
    """Whether every target a validation gave its loss is real-valued and has the shape of one of its input batches,
    with more than one value per row (``input_shapes``: the shape of each input batch; ``target_kinds``: (shape,
    floating) of each target): the inputs are corrupted copies of their targets (a denoising autoencoder's noisy
    rows against the clean ones), so drawing the corruption again is the task, not an augmentation."""
    if not input_shapes or not target_kinds:
        return False
    shapes = set(input_shapes)
    return all(floating and len(shape) >= 2 and math.prod(shape[1:]) > 1 and shape in shapes
               for shape, floating in target_kinds)


def unchanged_batches(first: list[torch.Tensor], other: list[torch.Tensor]) -> bool:
    """Whether two validations' forwards (row keys per forward, in order) match in number and rows, and some of
    them repeat every row at the same place: the validation set's batches are drawn the same way each time, and the
    forwards that change are others beside them (an autoregressive sample generated after the loss, one token a
    forward), not a random transform, which would change every batch of the set."""
    if len(first) != len(other) or any(len(a) != len(b) for a, b in zip(first, other, strict=True)):
        return False
    return sum(len(a) for a, b in zip(first, other, strict=True) if len(a) > 1 and torch.equal(a, b)) >= REPEATED


def augmented_validation(keys: dict[int, torch.Tensor], targets: dict[int, list], input_shapes: dict | None = None,
                         target_kinds: dict | None = None, positions: dict | None = None,
                         batches: dict | None = None) -> Verdict | None:
    """The verdict on the validation inputs across evaluations (``keys``: row keys per validation index,
    ``targets``: the fingerprints of the targets each validation gave its loss; ``input_shapes`` and
    ``target_kinds``: per validation index, its input batches' shapes and its targets' (shape, floating);
    ``positions``: per validation index, whether its targets are positions, :func:`position_targets`; ``batches``:
    per validation index, its row keys per forward); None when fewer than two validations were read with the same
    targets in the same order, when the inputs repeat, when the targets are the inputs' clean copies
    (:func:`reconstruction_targets`) or positions, or when some forwards repeat wholly beside those that change
    (:func:`unchanged_batches`)."""
    read = sorted(i for i in keys if i in targets and len(keys[i]) >= MIN_ROWS)
    if len(read) < 2:
        return None
    if input_shapes and target_kinds and all(
            reconstruction_targets(input_shapes.get(i, []), target_kinds.get(i, [])) for i in read):
        return None
    if positions and all(positions.get(i) for i in read):
        return None
    first = read[0]
    pairs = [i for i in read[1:] if len(keys[i]) == len(keys[first]) and _same_targets(targets[first], targets[i])]
    if not pairs:
        return None
    shares = [float((keys[i] == keys[first]).float().mean()) for i in pairs]
    rows = len(keys[first])
    expected = "the same validation inputs at every evaluation (no random transform on the validation set)"
    if max(shares) >= SAME:  # the same inputs again: nothing to say
        return None
    if batches and all(unchanged_batches(batches.get(first, []), batches.get(i, [])) for i in pairs):
        return None
    return Verdict(NAME, "warn", f"{CHANGED}: {len(pairs) + 1} validations "
                   f"gave their loss the same targets in the same order, but only {max(shares):.0%} of their "
                   f"{rows} input rows read repeat the first validation's (a random transform in the validation "
                   "Dataset)", expected,
                   "the validation set is augmented (a random flip, crop or noise in its Dataset's __getitem__, the "
                   "training transform reused): its loss carries the augmentation's noise and measures augmented "
                   "inputs; give the validation split a deterministic transform (only the resizing and normalizing)")
