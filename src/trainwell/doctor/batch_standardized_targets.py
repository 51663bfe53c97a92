"""The ``loop: targets`` warning: regression targets standardized on each batch by that batch's own statistics.

A target normalizer fitted on each batch, ``yb = (yb - yb.mean()) / yb.std()`` inside the loop (meant: the
training set's mean and std, computed once), changes what every batch asks for: a target's value becomes its rank
within a batch of 32 drawn at random, the model is fitted to noise as large as the batch mean's own spread
(std / sqrt(B)), and its outputs no longer map back to the units the validation and the predictions are read in.

Read from the first regression loss call of each of the first steps (``F.mse_loss``, ``F.l1_loss``,
``F.smooth_l1_loss``, ``F.huber_loss``; ``nn.MSELoss`` and its kin make them too): floating-point targets of
:data:`ROWS` values or more whose mean is 0 and whose std is 1 to float precision on :data:`STEPS` steps or more,
while their largest values differ from step to step (distinct batches: a full-batch loop on globally standardized
targets sees the same set every step, and passes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from trainwell.doctor.first_steps import FirstStepsReader
from trainwell.doctor.func_transforms import transformed
from trainwell.doctor.verdict import Verdict

NAME = "loop: targets"
#: the regression losses whose targets are read
REGRESSION = (F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss)
#: the fewest target values of a batch read
ROWS = 8
#: the steps read, each one exactly standardized, for the warning
STEPS = 3
#: a mean within this of 0 and a std (unbiased or not) within this of 1 is standardized to float precision
TOLERANCE = 1e-4


class _RegressionTargets(TorchFunctionMode):
    """Records (mean, unbiased std, biased std, largest value, count) of the first regression loss call's targets
    made with gradients."""

    def __init__(self):
        super().__init__()
        self.read: torch.Tensor | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.read is None and func in REGRESSION and not transformed() and torch.is_grad_enabled():
            target = args[1] if len(args) > 1 else kwargs.get("target")
            if isinstance(target, torch.Tensor) and target.is_floating_point() and target.numel() >= ROWS:
                t = target.detach().double().reshape(-1)
                self.read = torch.stack([t.mean(), t.std(), t.std(correction=0), t.max(),
                                         torch.tensor(float(t.numel()), dtype=torch.float64, device=t.device)])
        return out


class StandardizedTargetReader(FirstStepsReader):
    """The first regression loss call's target statistics on each of the first :data:`STEPS` steps that make one."""

    most = STEPS + 1

    def __init__(self):
        super().__init__()
        self.reads: list[torch.Tensor] = []

    def _new_mode(self) -> _RegressionTargets:
        return _RegressionTargets()

    def _done(self) -> bool:
        return len(self.reads) >= STEPS

    def _keep(self, mode: _RegressionTargets) -> None:
        if mode.read is not None:
            self.reads.append(mode.read)


def batch_standardized(reader: StandardizedTargetReader) -> Verdict | None:
    """The warning described in the module docstring, or None (read at report time)."""
    if len(reader.reads) < STEPS:
        return None
    rows = [[float(v) for v in r.cpu()] for r in reader.reads]
    exact = all(abs(mean) <= TOLERANCE and (abs(std - 1) <= TOLERANCE or abs(biased - 1) <= TOLERANCE)
                for mean, std, biased, _, _ in rows)
    if not exact or len({round(top, 9) for *_, top, _ in rows}) < 2:
        return None
    return Verdict(NAME, "warn", f"the regression loss's targets had mean 0 and std 1 to float precision on each of "
                   f"{len(rows)} different batches ({int(rows[0][4])} values): standardized by each batch's own mean "
                   "and std", "targets standardized once, by the training set's mean and std",
                   "a normalizer fitted on each batch ((yb - yb.mean()) / yb.std()) makes every target relative to "
                   "its batch, so the model fits noise and its outputs map back to no unit: compute the mean and "
                   "std on the training set once, before the loop, and use them for every batch and the validation")


__all__ = ["NAME", "StandardizedTargetReader", "batch_standardized"]
