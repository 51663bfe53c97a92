"""``loop: batch statistics``: BatchNorm normalizing too few values per channel to carry the input.

In train mode a BatchNorm layer normalizes each channel by the mean and standard deviation of the values the
batch gives it: the batch's examples times their positions (``BatchNorm1d`` on ``(N, C)``: N values;
``(N, C, L)``: N x L; ``BatchNorm2d``: N x H x W). Its m outputs per channel then sum to 0 and their squares to m
(Ioffe & Szegedy 2015), which leaves them m - 2 degrees of freedom: with m = 2 they are exactly -1 and +1 whatever
the inputs (only which of the two values is larger passes through, and the gradient through the layer is about
0), with 3 or 4 they lie on a circle or a sphere; the batch's mean and std are themselves noisy (the std's relative
error about 1 / sqrt(2m), over 35% at m = 4). Wu & He (2018, Group Normalization, figure 1) measure BatchNorm's
error rising steeply as the batch shrinks below 8. A layer that normalizes many values per channel, as a CNN's does
over its positions (batch 2 at 8 x 8: 128 values), is not flagged here.

The probe counts the values per channel on each observed training forward (:func:`values_per_channel`); the
verdict warns when half the observed forwards through a layer or more gave it :data:`FEW` or fewer, and fails at 2.
"""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.verdict import Verdict

NAME = "loop: batch statistics"
#: values per channel at or below which BatchNorm's outputs are confined to a few shapes (m - 2 <= 2 degrees of
#: freedom per channel) and its statistics are noisy
FEW = 4


def uses_batch_statistics(module: nn.Module) -> bool:
    """A BatchNorm layer normalizing by the batch's own statistics: in train mode, or without running ones."""
    return isinstance(module, nn.modules.batchnorm._BatchNorm) and \
        (module.training or module.running_mean is None)


def values_per_channel(x) -> int | None:
    """How many values per channel BatchNorm normalizes in the batch ``x`` (N, C, ...): the batch times its
    positions; None for a shape BatchNorm does not take."""
    if x is None or not hasattr(x, "dim") or x.dim() < 2 or x.shape[1] == 0:
        return None
    return x.numel() // x.shape[1]


def batch_statistics(counts: dict[str, list[int]], kinds: dict[str, str]) -> Verdict | None:
    """The verdict on the values per channel each BatchNorm layer normalized on the observed training forwards
    (``counts`` by layer name, ``kinds`` its class name). None when no BatchNorm layer ran in train mode."""
    if not counts:
        return None
    few = {}
    for layer, seen in counts.items():
        small = sorted(m for m in seen if m <= FEW)
        if seen and 2 * len(small) >= len(seen):
            few[layer] = (small[len(small) // 2], len(small), len(seen))
    if not few:
        least = min(min(seen) for seen in counts.values() if seen)
        return Verdict(NAME, "pass", f"{len(counts)} BatchNorm layer{'s' * (len(counts) != 1)} normalized {least} "
                       "or more values per channel on the observed training forwards", "-")
    worst, small, seen = few[min(few, key=lambda k: few[k][0])]
    shown = ", ".join(f"'{layer}' ({kinds.get(layer, 'BatchNorm')})" if layer else kinds.get(layer, "BatchNorm")
                      for layer in list(few)[:3]) + (f" (+{len(few) - 3} more)" if len(few) > 3 else "")
    layers, its = ("BatchNorm layers", "their") if len(few) > 1 else ("BatchNorm layer", "its")
    shape = ("exactly -1 or +1 whatever the inputs: only which of the two values is larger passes on, and the "
             "gradient through it is about 0" if worst == 2 else
             f"confined to {worst - 2} degree{'s' * (worst != 3)} of freedom per channel, and its mean and std "
             "vary widely from batch to batch")
    return Verdict(NAME, "fail" if worst <= 2 else "warn",
                   f"{layers} {shown} normalized {worst} values per channel on {small} of {seen} observed "
                   f"training forwards (the batch size times the positions): {its} outputs are {shape}",
                   f"more than {FEW} values per channel (a batch of 16 or more examples)",
                   "BatchNorm normalizes each channel by the batch's own mean and std, so a tiny batch erases what "
                   "the inputs carry: train with a larger batch, or use GroupNorm or LayerNorm, which normalize "
                   "each example on its own; when fine-tuning a pretrained model with small batches, keep its "
                   "BatchNorm layers in eval mode (their running statistics)")


class NormCounts:
    """The values per channel each BatchNorm layer of ``model`` normalizes by batch statistics, read by forward
    pre-hooks on observed steps' training forwards (64 per layer at most)."""

    def __init__(self, model: nn.Module):
        self.kinds = {n: type(m).__name__ for n, m in model.named_modules()
                      if isinstance(m, nn.modules.batchnorm._BatchNorm)}
        self.counts: dict[str, list[int]] = {}

    def attach(self, model: nn.Module, wrap, reading) -> list:
        """Hooks on the BatchNorm layers (``wrap``: how the probe wraps a hook); ``reading()``: the probe runs
        the model itself, and nothing is recorded."""
        return [m.register_forward_pre_hook(wrap(self._counter(name, reading)))
                for name, m in model.named_modules() if name in self.kinds]

    def _counter(self, name: str, reading):
        def count(module, args) -> None:
            if reading() or not torch.is_grad_enabled() or not uses_batch_statistics(module) or \
                    len(self.counts.get(name, ())) >= 64:
                return
            m = values_per_channel(args[0] if args else None)
            if m is not None:
                self.counts.setdefault(name, []).append(m)
        return count

    def verdict(self) -> Verdict | None:
        return batch_statistics(self.counts, self.kinds)
