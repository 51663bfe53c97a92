"""A cosine classifier written without its scale: normalize(features) @ normalize(W).T fed to cross-entropy as it
is. Every score stays in [-1, 1], so the loss cannot fall below log(1 + (C - 1) e^-2): the watch names it; the same
classifier with s = 16 (NormFace, CosFace) passes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


class CosineNet(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.weight = nn.Parameter(torch.randn(4, 64) * 0.1)
        self.scale = scale

    def forward(self, x):
        return self.scale * F.normalize(self.body(x), dim=1) @ F.normalize(self.weight, dim=1).T


def _run(scale: float):
    torch.manual_seed(0)
    centers = 2.5 * torch.randn(4, 8)
    y = torch.randint(0, 4, (768,))
    x = centers[y] + torch.randn(768, 8)
    model = CosineNet(scale)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:512], y[:512]), batch_size=32,
                                         shuffle=True)
    with doctor.watch(model, opt, every=8) as w:
        for _ in range(3):
            model.train()
            for xb, yb in loader:
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            with torch.no_grad():
                w.validate(F.cross_entropy(model(x[512:]), y[512:]).item())
    return w.report()


@pytest.fixture(scope="module")
def reports():
    return {scale: _run(scale) for scale in (1.0, 16.0)}


@pytest.mark.slow
def test_cosine_scores_without_a_scale_are_named(reports):
    loss = next(v for v in reports[1.0] if v.check == "loop: loss")
    assert loss.status == "warn", loss
    assert "cosine scores with no scale" in loss.value and "body.2" in loss.value
    assert "0.341" in loss.value and "NormFace" in loss.advice


@pytest.mark.slow
def test_the_scaled_cosine_classifier_is_clean(reports):
    alarms = [v for v in reports[16.0] if v.status in ("warn", "fail")]
    assert alarms == [], alarms
