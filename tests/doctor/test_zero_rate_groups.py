"""Per-parameter-group learning rates, a backbone's 10x below the head's, with gradient clipping and a linear
decay: a param group whose rate is 0 at every step never changes its parameters, though they get gradients and
the loss still falls through the head. A rate 10x lower, a warm-up that starts at 0, or a backbone frozen with
``requires_grad_(False)`` pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

D, C = 12, 5


class BackboneAndHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(D, 32), nn.GELU(), nn.LayerNorm(32))
        self.head = nn.Linear(32, C)

    def forward(self, x):
        return self.head(self.backbone(x))


def _run(backbone_lr, *, warmup=False, frozen=False, steps=40):
    torch.manual_seed(0)
    centers = 2.0 * torch.randn(C, D)
    y = torch.randint(0, C, (steps * 32,))
    x = centers[y] + torch.randn(len(y), D)
    model = BackboneAndHead()
    if frozen:
        model.backbone.requires_grad_(False)
    opt = torch.optim.AdamW([{"params": model.backbone.parameters(), "lr": backbone_lr},
                             {"params": model.head.parameters(), "lr": 1e-2}], weight_decay=0.01)
    if warmup:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, s / 10))
    else:
        sched = torch.optim.lr_scheduler.LinearLR(opt, 1.0, 0.05, total_iters=steps)
    with doctor.watch(model, opt, every=10) as w:
        for i in range(0, len(x), 32):
            loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            w.step(loss, y=y[i : i + 32])
    return w.report()["loop: learning rate applied"]


@pytest.mark.parametrize("backbone_lr, kwargs", [(1e-3, {}), (1e-3, {"warmup": True}), (0.0, {"frozen": True})])
@pytest.mark.slow  # 0.19 s each on a 2-core CPU (RESULTS §51)
def test_group_rates_that_move_their_parameters_pass(backbone_lr, kwargs):
    verdict = _run(backbone_lr, **kwargs)
    assert verdict.status == "pass", verdict


def test_a_backbone_group_at_rate_0_is_named():
    verdict = _run(0.0)
    assert verdict.status == "warn" and "param group 0" in verdict.value and "rate of 0 at all 40 steps" in \
        verdict.value, verdict
