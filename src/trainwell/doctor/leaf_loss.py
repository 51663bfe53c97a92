"""A training loss with no graph behind it. A forward run under ``torch.no_grad()`` (or outputs detached, or a loss
computed in NumPy) gives a loss that backward() refuses ("element 0 of tensors does not require grad"); the fix
people reach for, ``loss.requires_grad_()`` or ``torch.tensor(loss.item(), requires_grad=True)``, silences the error
by making the loss a leaf tensor of its own: backward() then ends at that leaf, and no parameter ever receives a
gradient. Read on the losses the loop steps on: a tensor that requires a gradient but has no ``grad_fn``.
"""

from __future__ import annotations

import torch

from trainwell.doctor.verdict import Verdict

SHARE = 0.9  # of the losses read, at least this many leaves
LEAST = 2  # losses read, at least


class LeafLosses:
    """How many of the step losses read were leaf tensors that require a gradient."""

    def __init__(self) -> None:
        self.read = 0
        self.leaves = 0

    def step(self, loss) -> None:
        if isinstance(loss, torch.Tensor):
            self.read += 1
            self.leaves += loss.requires_grad and loss.grad_fn is None

    def explain(self, reach: Verdict) -> Verdict:
        """``reach`` (``loop: every trainable parameter learns``) naming the leaf loss when no parameter received a
        gradient and nearly every step's loss was such a leaf; ``reach`` as it is otherwise."""
        if reach.status != "fail" or self.read < LEAST or self.leaves < SHARE * self.read or \
                not str(reach.value).startswith("no parameter ever received a gradient"):
            return reach
        return Verdict(reach.check, reach.status, f"{reach.value}: {self.leaves} of the {self.read} losses read were "
                       "a leaf tensor with no graph (requires_grad set on the loss itself), so backward() stops "
                       "there", reach.expected,
                       "the loss was cut off from the model before requires_grad_() (or torch.tensor(..., "
                       "requires_grad=True)) silenced backward's error: run the training forward without "
                       "torch.no_grad(), keep the outputs attached (no .detach(), .item(), .numpy()), and drop the "
                       "requires_grad line")


__all__ = ["LeafLosses"]
