"""For ``trainwell watch``: the validation loss handed to ``w.validate()``, from the loss calls the watch read after
the script's forwards without gradients or in eval mode since the last step (:mod:`~trainwell.doctor.
validation_average`): their mean per unit the loss averages over, less the calls on the training set evaluated
beside the validation set and on another model's outputs (:mod:`~trainwell.doctor.script_training_rows`)."""

from __future__ import annotations

import torch

from trainwell.doctor.script_training_rows import ModelOutputs, TrainingRows


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


__all__ = ["validation_value"]
