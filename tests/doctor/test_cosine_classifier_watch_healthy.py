"""Under ``doctor.watch``: a cosine classifier (CosFace, ``s * cos(theta)`` with a margin taken off the label's score
in training) starts with a cross-entropy far above ln C by design, its scores' spread set by its own scale s.
``loop: loss`` does not ask for a smaller init there; a plain Linear head initialized far too large still warns."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: loss"


class CosFace(nn.Module):
    def __init__(self, d, classes, s=16.0, m=0.2):
        super().__init__()
        self.w = nn.Parameter(torch.randn(classes, d) * 0.01)
        self.s, self.m = s, m

    def forward(self, h, y=None):
        cos = F.normalize(h, dim=1) @ F.normalize(self.w, dim=1).T
        if y is not None:  # the additive margin, in training only
            cos = cos - self.m * F.one_hot(y, cos.shape[1])
        return self.s * cos


class Net(nn.Module):
    def __init__(self, head: str):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 32))
        self.cosine = head == "cosine"
        self.head = CosFace(32, 10) if self.cosine else nn.Linear(32, 10)
        if not self.cosine:
            with torch.no_grad():
                self.head.weight.mul_(30.0)  # the bug: a last layer initialized far too large

    def forward(self, x, y=None):
        h = self.body(x)
        return self.head(h, y) if self.cosine else self.head(h)


def _run(head: str):
    torch.manual_seed(0)
    x = torch.randn(640, 16)
    y = x[:, :10].argmax(1)
    model = Net(head)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(2):
            for i in torch.randperm(640).split(64):
                loss = F.cross_entropy(model(x[i], y[i]), y[i])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i])
    return {v.check: v for v in w.report().verdicts}


@pytest.fixture(scope="module")
def reports():
    return {head: _run(head) for head in ("cosine", "large")}


@pytest.mark.slow
def test_a_cosine_classifiers_first_loss_above_ln_c_is_by_design(reports):
    v = reports["cosine"][NAME]
    assert v.status == "pass" and "cosine classifier" in v.value, v


@pytest.mark.slow
def test_a_linear_head_initialized_too_large_still_warns(reports):
    v = reports["large"][NAME]
    assert v.status == "warn" and str(v.value).startswith("first loss"), v
