"""``loop: batch independence`` for a watched model with no sequence-first layer: a forward whose examples mix
inside the batch in eval mode.

A reduction over the batch axis written into ``forward`` (``F.normalize(h, dim=0)`` meant per example,
``h - h.mean(0)``, a softmax over dim 0) makes each example's output depend on the rest of its batch: the model
trains on one batch size and is evaluated on another (a whole validation set at once), where the same example
gets another output. ``doctor.check`` reads it as batch independence (:mod:`~trainwell.doctor.batch_independence`:
in eval mode, d out_i / d x_j = 0 for j != i); at a watched loop's report the same reading runs on the first
observed training forward, its examples located from the targets given with it, as
:func:`~trainwell.doctor.sequence_first_batches.loop_sequence_first` reads a model with a sequence-first layer
(which names that layer; this one runs where there is none).
"""

from __future__ import annotations

from trainwell.doctor.batch_layout import sequence_first_layers
from trainwell.doctor.sequence_first_batches import NAME, mixed_in_every_reading
from trainwell.doctor.verdict import Verdict


def loop_batch_mixing(probe, forward: tuple | None, y) -> Verdict | None:
    """A fail when the model has no sequence-first layer and, on the first observed training forward (``forward``:
    its (args, kwargs), the model called on one tensor) with its targets ``y``, every reading of where its
    examples lie shows one example's output depending on the others in eval mode; None otherwise."""
    if sequence_first_layers(probe.model):
        return None
    verdict = mixed_in_every_reading(probe, forward, y)
    if verdict is None:
        return None
    return Verdict(NAME, "fail", f"each example's output depends on the other examples of its batch in eval mode "
                   f"({verdict.value}): the same example gets another output in a batch of another size (the "
                   "validation set at once)", "each example's output from its own input",
                   "a reduction over the batch axis in forward: normalize, center or softmax each example over its "
                   "own features (F.normalize(h, dim=1), h - h.mean(1, keepdim=True), softmax(dim=1)), or a "
                   "normalization layer that keeps running statistics (BatchNorm with track_running_stats=True)")


__all__ = ["loop_batch_mixing"]
