"""A validation loop copied from the training loop with its ``loss.backward()`` and ``optimizer.step()`` kept::

    model.eval()
    for xb, yb in val_loader:
        loss = criterion(model(xb), yb)
        optimizer.zero_grad(); loss.backward(); optimizer.step()   # copied along
        val_loss += loss.item()

The model trains on the validation set at every epoch's end: the validation loss measures examples the model was
just fitted to, so early stopping and model selection on it read memorization, and the optimizer's steps count the
validation batches as training ones. The steps run in eval mode (dropout off, BatchNorm on its running statistics).

Read from the optimizer steps whose training forward ran in eval mode (:class:`EvalModeRuns`): they come in runs
(consecutive eval-mode steps), and a validation loader, not shuffled, begins every run with the same batch (its
shape and the sum of its values, :func:`~trainwell.doctor.sampled_validation.fingerprint`). A validation mid-epoch
that leaves eval mode on (its model.train() forgotten) trains on in eval mode on shuffled training batches, which
begin each run with another batch, and, not shuffled, with a batch that train-mode steps also take (once a run's
first batch is known, the sums of train-mode inputs of its shape are kept on their device, :data:`TRAINED` at most,
and compared with it when the report is written: no host sync per step); ``model.eval()`` never undone makes one
run. A run's first batch is summed at the step that begins the run only (once per epoch in the bug).

Example:
    >>> import torch
    >>> runs = EvalModeRuns()
    >>> for epoch in range(3):
    ...     runs.stepped(False)  # a training step in train mode
    ...     for k in range(2):  # two validation batches stepped on in eval mode
    ...         runs.forward(torch.full((4, 2), float(k)))
    ...         runs.stepped(True)
    >>> runs.repeated_start()
    (3, 3)
"""

from __future__ import annotations

from collections import Counter, deque

import torch

from trainwell.doctor.sampled_validation import fingerprint
from trainwell.doctor.verdict import Verdict

#: runs of eval-mode steps that must begin with the one batch, at least, and the share of the runs they are
LEAST_RUNS, SHARE = 2, 0.8
#: distinct first batches kept
KEPT = 64
#: the latest train-mode inputs shaped like a run's first batch whose sums are kept
TRAINED = 4096


class EvalModeRuns:
    """The first batch of every run of optimizer steps whose training forward ran in eval mode."""

    def __init__(self) -> None:
        self._pending: torch.Tensor | None = None  # the latest eval-mode forward's input with gradients, this step
        self._previous_eval = False
        self.starts: Counter = Counter()
        self._trained: deque = deque(maxlen=TRAINED)  # (shape, sum on the device) of train-mode inputs shaped so
        self.runs = 0

    def forward(self, x) -> None:
        """An eval-mode forward with gradients, given ``x``."""
        if isinstance(x, torch.Tensor) and len(self.starts) < KEPT:
            self._pending = x

    def train_forward(self, x) -> None:
        """A train-mode forward with gradients, given ``x``: read only when it is shaped like a run's first batch."""
        if self.starts and isinstance(x, torch.Tensor) and any(shape == tuple(x.shape) for shape, _ in self.starts):
            self._trained.append((tuple(x.shape), x.detach().sum(dtype=torch.float64)))

    def stepped(self, eval_mode: bool) -> None:
        """An optimizer step with a training forward, ``eval_mode`` when it ran in eval mode."""
        if eval_mode and not self._previous_eval:
            self.runs += 1
            if self._pending is not None:
                self.starts[fingerprint(self._pending)] += 1
        self._previous_eval, self._pending = eval_mode, None

    def repeated_start(self) -> tuple[int, int]:
        """(the runs that began with the most common first batch no train-mode step took, all runs)."""
        trained = {(shape, float(total)) for shape, total in self._trained}
        return (max((n for key, n in self.starts.items() if key not in trained), default=0), self.runs)


def stepped_validation(name: str, runs: EvalModeRuns, eval_steps: int, train_steps: int) -> Verdict | None:
    """A fail when :data:`LEAST_RUNS` or more runs of eval-mode steps, :data:`SHARE` of them or more, began with
    the same batch: a validation loop that steps the optimizer; None otherwise."""
    same, total = runs.repeated_start()
    if same < LEAST_RUNS or same < SHARE * total:
        return None
    return Verdict(name, "fail", f"{eval_steps} of {train_steps} training steps ran in eval mode, in {total} runs "
                   f"that {'each' if same == total else f'{same} of them'} began with the same batch: "
                   "optimizer.step() on the validation set (a validation loop with backward() and step())",
                   "validation without backward() or optimizer.step()",
                   "a validation loop copied from the training loop trains the model on the validation set: drop its "
                   "zero_grad(), backward() and step(), and run it under torch.no_grad() after model.eval()")


__all__ = ["EvalModeRuns", "stepped_validation"]
