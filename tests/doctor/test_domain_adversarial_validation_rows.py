"""Domain-adversarial training (Ganin & Lempitsky 2015): the target domain's unlabelled inputs go through the model
with gradients for the domain classifier (behind a gradient reversal), never for the class scores (in a forward of
their own, or in one forward with the source rows whose class scores alone reach the loss), and the target domain is
the validation set (the unsupervised domain adaptation protocol). Its rows trained no label: ``loop:
validation examples`` does not call them training rows. The same loop is still named when the validation set is
the labelled source rows, or when the target rows' class scores are trained on their labels too."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: validation examples"


class GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g, None


class DANN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(20, 32), nn.ReLU())
        self.label = nn.Linear(32, 4)
        self.domain = nn.Linear(32, 1)

    def forward(self, x):
        f = self.features(x)
        return self.label(f), self.domain(GradReverse.apply(f, 0.3)).squeeze(1)


def _run(kind: str):
    torch.manual_seed(0)
    xs, xt = torch.randn(256, 20), torch.randn(128, 20) * 0.7 + 0.5  # source, target (shifted)
    w_true = torch.randn(20, 4)
    ys, yt = (xs @ w_true).argmax(1), (xt @ w_true).argmax(1)
    model = DANN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(2):
            model.train()
            for rs, rt in zip(torch.randperm(256).split(32), torch.randperm(128).split(16), strict=False):
                if "one forward" in kind:  # source and target rows through the model together
                    cls, dom_logits = model(torch.cat([xs[rs], xt[rt]]))
                    cls_s, cls_t = cls[:len(rs)], cls[len(rs):]
                else:
                    cls_s, dom_s = model(xs[rs])
                    cls_t, dom_t = model(xt[rt])
                    dom_logits = torch.cat([dom_s, dom_t])
                dom = F.binary_cross_entropy_with_logits(dom_logits,
                                                         torch.cat([torch.zeros(len(rs)), torch.ones(len(rt))]))
                loss = F.cross_entropy(cls_s, ys[rs]) + dom
                if "target labels trained" in kind:  # not unsupervised: the target's labels reach the loss
                    loss = loss + F.cross_entropy(cls_t, yt[rt])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            model.eval()
            with torch.no_grad():
                xv, yv = (xs[:128], ys[:128]) if "source validated" in kind else (xt, yt)
                w.validate(F.cross_entropy(model(xv)[0], yv).item())
    return {v.check: v for v in w.report().verdicts}


@pytest.mark.parametrize("kind", ["healthy", "healthy, one forward"])
def test_unlabelled_target_rows_as_validation_are_no_leak(kind):
    v = _run(kind)[NAME]
    assert v.status == "pass", v
    assert "0 of 128 validation rows are training rows" in v.value
    assert "another head only" in v.value


@pytest.mark.parametrize("kind", ["source validated", "target labels trained", "source validated, one forward",
                                  "target labels trained, one forward"])
def test_labelled_rows_as_validation_still_fail(kind):
    v = _run(kind)[NAME]
    assert v.status == "fail", v
    assert "128 of 128 validation rows are training rows" in v.value
