"""Models and loops of a user's own making that the doctor's tests and calibration share."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import init


def healthy(seed=0):
    """A 2-64-64-3 ReLU MLP with He init: the model every pre-flight check passes."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    return init.apply(model, "he_normal", generator=torch.Generator().manual_seed(seed))


def sgd_curve(x, y, lr: float, batch_size: int, seed: int, epochs: int, dead: bool = False) -> list[float]:
    """Per-step losses of plain SGD (a 2-64-64-3 ReLU MLP, He init) in a user-written loop (no trainwell trainer);
    ``dead`` kills every first-layer unit with a bias of -100."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    init.apply(model, "he_normal", generator=torch.Generator().manual_seed(seed))
    if dead:
        with torch.no_grad():
            model[0].bias.fill_(-100.0)
    opt, g, losses = torch.optim.SGD(model.parameters(), lr), torch.Generator().manual_seed(seed), []
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            loss = F.cross_entropy(model(x[perm[i : i + batch_size]]), y[perm[i : i + batch_size]])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


class WrongBackward(torch.autograd.Function):
    """x -> x^2 with a planted bug in its backward pass (x instead of 2x): what a gradient check must catch."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x  # should be 2x
