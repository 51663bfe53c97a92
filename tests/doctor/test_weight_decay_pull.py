"""Adam's coupled weight_decay at AdamW's scale (0.1) is named; AdamW's decoupled 0.1 and a usual L2 are not."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 4)

    def forward(self, x):
        return self.head(self.body(x))


def _train(make_optimizer):
    torch.manual_seed(0)
    centers = 2.5 * torch.randn(4, 8)
    y = torch.randint(0, 4, (512,))
    x = centers[y] + torch.randn(512, 8)
    model = Classifier()
    opt = make_optimizer(model.parameters())
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(2):
            for i in range(0, 512, 32):
                out = model(x[i : i + 32])
                loss = F.cross_entropy(out, y[i : i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i : i + 32])
    return w.report()


def test_adam_given_adamws_decay_is_told_to_use_adamw():
    verdict = _train(lambda p: torch.optim.Adam(p, lr=1e-3, weight_decay=0.1))["loop: weight decay"]
    assert verdict.status == "warn"
    assert verdict.value.startswith("Adam(weight_decay=0.1) adds an L2 term")
    assert "torch.optim.AdamW(weight_decay=0.1)" in verdict.advice


@pytest.mark.parametrize("make", [lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.1),
                                  lambda p: torch.optim.Adam(p, lr=1e-3, weight_decay=1e-4),
                                  lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4)],
                         ids=["adamw_decoupled", "adam_usual_l2", "sgd_usual_l2"])
def test_decoupled_or_usual_decay_is_not_named(make):
    report = _train(make)
    assert "loop: weight decay" not in report.checks or report["loop: weight decay"].status == "pass"
