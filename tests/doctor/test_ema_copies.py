"""An exponential moving average of the weights (a copy updated by hand after each step) is what a loop
evaluates. A copy whose BatchNorm running statistics are never copied over (only ``parameters()`` averaged)
normalizes with its initial ones: its validation loss never improves while the training loss falls. The overfitting
warning then says that the evaluated model is not the watched one and asks for its buffers; the copy kept in step
passes."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

D, C = 10, 4


def _blobs(n, seed):
    g = torch.Generator().manual_seed(seed)
    centers = 2.5 * torch.randn(C, D, generator=torch.Generator().manual_seed(1)) + 3.0  # features far from 0
    y = torch.randint(0, C, (n,), generator=g)
    return centers[y] + torch.randn(n, D, generator=g), y


@pytest.mark.parametrize("copy_buffers", [True, False])
@pytest.mark.slow  # 0.26 s each on a 2-core CPU (RESULTS §51)
def test_an_ema_copy_without_its_batchnorm_statistics_is_named(copy_buffers):
    torch.manual_seed(0)
    (x, y), (xv, yv) = _blobs(1024, 0), _blobs(256, 1)
    model = nn.Sequential(nn.Linear(D, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 64), nn.BatchNorm1d(64),
                          nn.ReLU(), nn.Linear(64, C))
    ema = copy.deepcopy(model).eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=8) as w:
        for _ in range(5):
            model.train()
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 64):
                idx = perm[i : i + 64]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    for averaged, trained in zip(ema.parameters(), model.parameters(), strict=True):
                        averaged.lerp_(trained, 0.1)
                    if copy_buffers:
                        for averaged, trained in zip(ema.buffers(), model.buffers(), strict=True):
                            averaged.copy_(trained)
                w.step(loss, y=y[idx])
            with torch.no_grad():
                w.validate(F.cross_entropy(ema(xv), yv).item())
    verdict = w.report()["overfitting"]
    if copy_buffers:
        assert verdict.status not in ("warn", "fail"), verdict
    else:
        assert verdict.status == "warn" and "BatchNorm running statistics" in verdict.advice, verdict
