"""Discriminative fine-tuning with one LambdaLR function per param group: the head's function returns the
schedule's factor, the backbone's a tenth of it. At an optimizer lr of 0.1 the backbone's rate then peaks at
0.01, lr squared, by design: it is not read as a function that returns lr x factor. One function written as
lr x factor for every group still is."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: learning rate applied"
LR = 0.1


def _blobs(n=1024):
    g = torch.Generator().manual_seed(0)
    centers = 2.0 * torch.randn(3, 6, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (n,), generator=g)
    return centers[y] + torch.randn(n, 6, generator=g), y


def cosine(step, total=200):
    return 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


def _train(functions: str):
    torch.manual_seed(0)
    x, y = _blobs()
    backbone, head = nn.Sequential(nn.Linear(6, 32), nn.ReLU()), nn.Linear(32, 3)
    model = nn.Sequential(backbone, head)
    opt = torch.optim.SGD([{"params": backbone.parameters()}, {"params": head.parameters()}], lr=LR, momentum=0.9)
    if functions == "per_group":
        lambdas = [lambda s: 0.1 * cosine(s), cosine]  # the backbone at a tenth of the head's rate
    else:
        lambdas = lambda s: LR * cosine(s)  # noqa: E731 - the rate, not the factor, for every group
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambdas)
    with doctor.watch(model, opt, every=5) as w:
        for s in range(40):
            i = (s * 32) % len(x)
            loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            w.step(loss, y=y[i : i + 32])
    return w.report(), opt


@pytest.mark.parametrize("functions", ["per_group", "rate_for_every_group"])
def test_a_backbone_scaled_by_its_own_lambda_is_not_read_as_the_rate_squared(functions):
    report, opt = _train(functions)
    verdict = report[NAME]
    if functions == "per_group":
        assert abs(opt.param_groups[0]["initial_lr"] * 0.1 - LR**2) < 1e-12  # the oracle: it peaks at lr squared
        assert not (verdict.status == "warn" and "squared" in verdict.value), verdict
    else:
        assert verdict.status == "warn" and "squared" in verdict.value
