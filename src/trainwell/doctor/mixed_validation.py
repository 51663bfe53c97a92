"""A validation loss with a training batch's loss added in.

A loop that recomputes the loss of the batch it just trained on, in eval mode and without gradients, right before
its validation, and starts the validation's running total from it (``val_loss = criterion(model(xb), yb).item()``,
then ``val_loss += ...`` over the validation loader) reports a validation loss pulled toward the training loss: the
gap between them reads smaller than it is, by about the training batch's share of the batches. The forward on the
training batch is told by its input, a tensor a training forward took
(:class:`~trainwell.doctor.training_batches.TrainingBatches`); its loss call is kept apart from the validation's
(:mod:`~trainwell.doctor.validation_average`), and the value given to ``w.validate`` is compared with the averages
of the validation's batches alone and with the training batch's loss added in
(:func:`~trainwell.doctor.average_forms.mixed`).
"""

from __future__ import annotations

from trainwell.doctor.average_forms import counts, forms

#: how the verdict begins (it explains the overfitting verdict, and nothing downstream of the training loss)
MIXED = "the validation loss includes a training batch's loss"


def training_batch_mixed(read: int, value: float, calls: list[tuple], extra: list[tuple]) -> tuple[str, str, str]:
    """The verdict's value, expected and advice when the validation value ``value`` holds the loss of the training
    batch(es) ``extra`` beside the validation's batches ``calls``, on all ``read`` validations read."""
    own = forms(calls)[0][0]
    train = [c[2] / c[3] if c[1] == "sum" else c[2] for c in counts(extra) if c[3] > 0]
    return (f"{MIXED} on all {read} validations read: {value:.4g} adds the loss of the batch the last step trained "
            f"on ({train[0]:.4g}, recomputed without gradients before the validation) to the {len(calls)} "
            f"validation batches', which alone average {own:.4g}",
            "the validation loss over the validation batches only",
            "the validation's running total starts from the training batch's loss: start it at 0 (val_loss = 0.0 "
            "before the loop over the validation loader) and keep the training loss in its own variable")
