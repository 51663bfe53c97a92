"""Pre-flight check: in eval mode no sample of a batch affects another's output (Karpathy's recipe)."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.verdict import Verdict


def batch_independence(model: nn.Module, x: torch.Tensor, i: int = 0) -> Verdict:
    """In eval mode, sample j must not affect sample i's output: d out_i / d x_j = 0 for j != i (for integer
    inputs such as token ids: out_i must not change when the other samples are replaced)."""
    xs = x[: min(len(x), 8)]
    was = model.training
    model.eval()
    try:
        if O.logits(model(xs[:2])) is None:
            return Verdict("batch independence", "skip", "skipped: no output tensor to compare", "0", "")
        if xs.is_floating_point():
            xs = xs.detach().clone().requires_grad_(True)
            out = O.logits(model(xs))[i].sum()
            (grad,) = torch.autograd.grad(out, xs, allow_unused=True)
            leak = grad.reshape(len(xs), -1).abs().sum(dim=1) if grad is not None else torch.zeros(len(xs))
            others = float(torch.cat([leak[:i], leak[i + 1 :]]).max()) if len(xs) > 1 else 0.0
            what = f"max |d out_{i} / d x_j| = {others:.3g}"
        else:
            with torch.no_grad():
                a = O.logits(model(xs))[i]
                b = O.logits(model(torch.cat([xs[: i + 1], xs[i + 1 :].flip(0).roll(1, 0)])))[i]
            others = float((a - b).abs().max())
            what = f"max |out_{i} change| when the others change = {others:.3g}"
    finally:
        model.train(was)
    ok = others == 0.0
    return Verdict("batch independence", "pass" if ok else "fail", what, "0",
                   "" if ok else "samples mix inside the batch in eval mode: a BatchNorm left in train mode, or a "
                                 "reduction over the batch axis")
