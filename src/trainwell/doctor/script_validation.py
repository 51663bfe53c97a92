"""For ``trainwell watch``: the validation loss handed to ``w.validate()``, from the loss calls the watch read after
the script's forwards without gradients or in eval mode since the last step (:mod:`~trainwell.doctor.
validation_average`): their mean per unit the loss averages over, less the calls on the training set evaluated
beside the validation set and on another model's outputs (:mod:`~trainwell.doctor.script_training_rows`)."""

from __future__ import annotations

import torch

from trainwell.doctor.script_training_rows import ModelOutputs, TrainingRows
from trainwell.doctor.stated_validation import ScriptFrames
from trainwell.doctor.validation_average import floated, validation_calls


def validation_value(losses, training_rows: TrainingRows | None = None,
                     outputs: ModelOutputs | None = None) -> float | None:
    """The validation's loss since the last step, from the loss calls the watch read (those of the function
    called first; not those on the training set evaluated beside it, told by ``training_rows``, nor those on
    another model's outputs, told by ``outputs``): the mean per unit
    the loss averages over (a class-index loss's targets not ``ignore_index``, another loss's elements); None when
    there were none."""
    from trainwell.doctor.validation_average import units

    pending = losses.pending
    if not pending:
        return None
    first = pending[0][0]
    keep = training_rows.kept(len(pending)) if training_rows is not None else None
    ours = outputs.kept(pending) if outputs is not None else None
    if ours is not None:
        keep = ours if keep is None else [k and o for k, o in zip(keep, ours, strict=True)]
    total = count = 0.0
    for i, entry in enumerate(pending):  # (name, rows, reduction, value, target, ignored, _, weight, on_training, ...)
        name, rows, reduction, value, target, ignored, _, weight, on_training = entry[:9]
        if name != first or on_training or (keep is not None and not keep[i]):
            continue
        kept = units(target, ignored, weight)  # class indices: the targets not ignored; else every element
        n = float(kept) if kept is not None else float(target.numel()) if isinstance(target, torch.Tensor) and \
            target.numel() else float(rows)
        if n <= 0:
            continue
        total += float(value) * (n if reduction == "mean" else 1.0)
        count += n
    return total / count if count else None


def handed_value(losses, training_rows: TrainingRows | None, outputs: ModelOutputs | None,
                 frames: ScriptFrames) -> float | None:
    """What ``w.validate()`` is given: the script's own validation loss where its frames' locals hold a wrong
    average of the validation's batches and no right one (:mod:`~trainwell.doctor.stated_validation`), else the
    mean of those batches (:func:`validation_value`); None when the validation made no loss call."""
    value = validation_value(losses, training_rows, outputs)
    if value is None or not frames.frames:
        return value
    own = frames.value(*(floated(c) for c in validation_calls(losses.pending)),
                       per_target=losses.training is not None and losses.training.per_target)
    return value if own is None else own


__all__ = ["handed_value", "validation_value"]
