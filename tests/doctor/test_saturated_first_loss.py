"""A last layer initialized far too large saturates the softmax: the first loss is far above ln C, and the gradient
of the confident rows vanishes, which reads as uneven per-example weights. The first loss against ln C must still
be judged (lecture: "the initial loss should be ln C")."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


def _watched(scale: float):
    torch.manual_seed(0)
    centers = torch.randn(4, 20) * 2
    y = torch.arange(512) % 4
    x = centers[y] + torch.randn(512, 20)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 4))
    with torch.no_grad():
        model[2].weight.mul_(scale)  # the user's own init of the head
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    with doctor.watch(model, opt, every=4) as w:
        for i in range(0, 512, 64):
            loss = F.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i:i + 64])
    return w.losses[0], {v.check: v for v in w.report().verdicts}


def test_a_head_initialized_100x_too_large_is_named_by_its_first_loss():
    first, verdicts = _watched(100.0)
    assert first > 20 * torch.log(torch.tensor(4.0)).item()  # the oracle: ln C = 1.39
    v = verdicts["loop: loss"]
    assert v.status == "warn" and v.value.startswith(f"first loss {first:.4g} vs") and "far from uniform" in v.advice


def test_the_same_loop_with_torchs_init_passes():
    first, verdicts = _watched(1.0)
    assert first < 2.0
    assert verdicts["loop: loss"].status == "pass"
