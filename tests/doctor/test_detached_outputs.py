"""A loss computed on detached outputs, ``criterion(out.detach(), y) + lam * sum(w^2)``: backward does not raise
(the penalty has a graph), and only the penalty trains. The watch names it (``loop: loss reaches the outputs``);
the same loop on the outputs themselves, and a plain loop with weight decay, pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.detached_outputs import NAME


def _verdict(detach: bool, penalty: float = 1e-4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(320, 6, generator=g)
    y = (x[:, :3] @ torch.randn(3, 3, generator=g)).argmax(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt, every=3) as w:
        for i in range(0, 320, 32):
            out = model(x[i:i + 32])
            loss = F.cross_entropy(out.detach() if detach else out, y[i:i + 32]) + \
                penalty * sum((p ** 2).sum() for p in model.parameters())
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i:i + 32])
    return next((v for v in w.report().verdicts if v.check == NAME), None)


@pytest.mark.slow
def test_a_loss_on_detached_outputs_with_a_penalty_is_named():
    v = _verdict(detach=True)
    assert v is not None and v.status == "fail" and "detach" in v.advice


@pytest.mark.slow
def test_the_loss_on_the_outputs_passes():
    assert _verdict(detach=False) is None
