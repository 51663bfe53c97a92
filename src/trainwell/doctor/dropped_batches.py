"""``loop: every batch reaches backward``: batches run through the model whose loss never reaches ``backward()``.

``loss.backward()`` and ``optimizer.step()`` dedented out of the batch loop run once per epoch, on the last batch's
loss: every other batch's forward builds a graph that is dropped when ``loss`` is reassigned. Nothing fails; the
model takes one step per epoch and the run reads as a few steps that learned little.

Read at every optimizer step (the first 64): the training forwards (train mode, with gradients) since the last
step that no backward reached. A fail when on every one of 3 steps or more :data:`DROPPED` or more were dropped: an
accuracy logged with gradients, or a GAN's generator run for its critic's steps (5 per step in WGAN), drops fewer."""

from __future__ import annotations

from trainwell.doctor.verdict import Verdict

NAME = "loop: every batch reaches backward"
DROPPED = 8  # train-mode forwards with gradients per step that no backward reached
MIN_STEPS = 3


def dropped_batches(dropped: list[int]) -> Verdict | None:
    """The fail described in the module docstring, or None."""
    if len(dropped) < MIN_STEPS or min(dropped) < DROPPED:
        return None
    return Verdict(NAME, "fail", f"on {len(dropped)} of {len(dropped)} optimizer steps {min(dropped)} or more "
                   "training forwards ran before it whose loss no backward() reached: only the last batch before "
                   "each step trains", "one backward() per training forward",
                   "loss.backward() and optimizer.step() run outside the batch loop (dedented?): call them, with "
                   "zero_grad(), inside it, once per batch")
