"""Validation by Monte Carlo dropout (the model kept in train mode on purpose, each batch sampled several times and
the predictions averaged) is not a validation left in train mode; one pass per batch in train mode still is."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


def _run(samples: int, batchnorm: bool = False):
    torch.manual_seed(0)
    x, xv = torch.randn(256, 8), torch.randn(128, 8)
    y, yv = (x[:, :3].sum(1) > 0).long(), (xv[:, :3].sum(1) > 0).long()
    norm = [nn.BatchNorm1d(32)] if batchnorm else []
    model = nn.Sequential(nn.Linear(8, 32), *norm, nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt) as w:
        for _ in range(3):
            model.train()
            for i in range(0, 256, 32):
                loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i:i + 32])
            with torch.no_grad():  # still in train mode: dropout samples
                for j in range(0, 128, 64):
                    p = torch.stack([F.softmax(model(xv[j:j + 64]), 1) for _ in range(samples)]).mean(0)
                    val = F.nll_loss(p.log(), yv[j:j + 64]).item()
            w.validate(val)
    return next(v for v in w.report().verdicts if v.check == "loop: train/eval mode")


@pytest.mark.slow  # 1 s
def test_monte_carlo_dropout_validation_passes():
    verdict = _run(samples=10)
    assert verdict.status == "pass"
    assert "Monte Carlo dropout" in verdict.value


@pytest.mark.parametrize("samples, batchnorm", [(1, False), (10, True)])
def test_single_pass_or_batchnorm_in_train_mode_still_fails(samples, batchnorm):
    verdict = _run(samples=samples, batchnorm=batchnorm)
    assert verdict.status == "fail"
    assert "validations ran in train mode" in verdict.value
