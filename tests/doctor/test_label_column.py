"""Target leakage: the label left as a column of the features (``X = df.values`` with the label column in it). The
watch names it (``loop: labels among the inputs``); the features without it pass, and so does a label passed as a
tensor of its own (a margin head's ``head(features, labels)``)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.label_column import NAME


class _MarginHead(nn.Module):
    """A classifier whose forward takes the labels (an additive margin on the label's score, as CosFace's)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, x, labels):
        return self.body(x) - 0.2 * F.one_hot(labels, 3)


def _verdict(leak: bool, margin: bool = False):
    g = torch.Generator().manual_seed(0)
    table = torch.randn(320, 6, generator=g)
    y = (table[:, :3] @ torch.randn(3, 3, generator=g)).argmax(1)
    x = torch.cat([table[:, :5], y[:, None].float()], 1) if leak else table
    torch.manual_seed(0)
    model = _MarginHead() if margin else nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with doctor.watch(model, opt, every=4) as w:
        for i in range(0, 320, 32):
            xb, yb = x[i:i + 32], y[i:i + 32]
            loss = F.cross_entropy(model(xb, yb) if margin else model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    return next((v for v in w.report().verdicts if v.check == NAME), None)


@pytest.mark.slow
def test_the_label_among_the_features_is_named():
    v = _verdict(leak=True)
    assert v is not None and v.status == "fail" and "column 5" in v.value


@pytest.mark.slow
def test_features_without_it_and_a_margin_head_pass():
    assert _verdict(leak=False) is None
    assert _verdict(leak=False, margin=True) is None
