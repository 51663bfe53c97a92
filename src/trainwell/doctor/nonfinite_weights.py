"""The ``loop: weights at start`` fail: the model's weights held NaN or Inf before the loop's first step.

A loss that is not finite from its first step is usually blamed on the data (NaN inputs, log(0)); it can also be
the weights, broken before the loop began: a learning-rate range test (an ``lr_find`` written by hand, the rate
swept up to 10 on the model and optimizer about to be trained) that diverged and was not undone, a notebook's
previous run that diverged on the same model object, or a checkpoint saved after a divergence. Every forward is
then NaN and no step can mend it.

Read when the watch takes hold of the model (:class:`~trainwell.doctor.loop_probe.LoopProbe`): the parameters
holding a value that is not finite.
"""

from __future__ import annotations

import torch
from torch.nn.parameter import is_lazy

from trainwell.doctor.verdict import Verdict

NAME = "loop: weights at start"
#: the parameter names shown
SHOWN = 3


def nonfinite_parameters(named: dict[str, torch.Tensor]) -> list[str]:
    """The names of the parameters in ``named`` holding a NaN or an Inf (read back once per device); a lazy
    module's parameters, which hold no values before its first forward, are not read."""
    with torch.no_grad():
        kept = [(name, p) for name, p in named.items() if not is_lazy(p) and p.numel()]
        by_device: dict = {}
        for name, p in kept:
            by_device.setdefault(p.device, []).append((name, torch.isfinite(p).all()))
        return [name for pairs in by_device.values()
                for (name, _), finite in zip(pairs, torch.stack([f for _, f in pairs]).tolist(), strict=True)
                if not finite]


def nonfinite_start(names: list[str], total: int) -> Verdict | None:
    """A fail when ``names`` (the parameters not finite when the watch began, of ``total``) is not empty."""
    if not names:
        return None
    shown = ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
    return Verdict(NAME, "fail", f"{len(names)} of {total} parameter tensors held NaN or Inf before the loop's first "
                   f"step ({shown}): every forward is NaN, whatever the data", "finite weights at the start",
                   "the model was broken before training: an LR range test (lr_find) run on this model and optimizer "
                   "and not undone, an earlier run in the same session that diverged, or a checkpoint saved after a "
                   "divergence? Build the model and optimizer again (or load the weights saved before the range "
                   "test, and clear the optimizer's state) before the loop")


__all__ = ["NAME", "nonfinite_parameters", "nonfinite_start"]
