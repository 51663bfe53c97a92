"""A LambdaLR warm-up then cosine decay, stepped after every optimizer.step(). A schedule function that returns
the rate (lr * factor) instead of the factor is applied to lr again: the rate peaks at lr squared and the loss
stays flat. Watch names the function, not only a rate too low; the factor passes."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: learning rate applied"


def _blobs(n=2048):
    g = torch.Generator().manual_seed(0)
    centers = 2.0 * torch.randn(5, 16, generator=g)
    y = torch.randint(0, 5, (n,), generator=g)
    return centers[y] + torch.randn(n, 16, generator=g), y


def _train(returns_rate: bool):
    torch.manual_seed(0)
    x, y = _blobs()
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 5))
    lr = 3e-3
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    total, warmup = 3 * len(x) // 64, 16

    def factor(step):
        f = (step + 1) / warmup if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        return lr * f if returns_rate else f

    schedule = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(3):
            order = torch.randperm(len(x))
            for i in range(0, len(x), 64):
                batch = order[i : i + 64]
                loss = F.cross_entropy(model(x[batch]), y[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
                schedule.step()
                w.step(loss, y=y[batch])
    return w.report()


@pytest.mark.parametrize("returns_rate", [False, True])
@pytest.mark.slow  # 0.18 s each on a 2-core CPU (RESULTS §51)
def test_a_lambda_lr_function_that_returns_the_rate_is_named(returns_rate):
    report = _train(returns_rate)
    if not returns_rate:
        assert report[NAME].status == "pass"
        return
    assert report[NAME].status == "warn" and "squared" in str(report[NAME].value)
    assert "return the factor alone" in report[NAME].advice
    assert [v.check for v in report if v.status in ("warn", "fail")] == [NAME]  # the flat curve defers to it


@pytest.mark.parametrize("returns_rate", [False, True])
def test_a_long_warm_up_watched_over_its_start_is_not_read_as_the_rate_squared(returns_rate):
    """A factor warming up over 320 steps, watched for its first 32 at lr 0.1, reaches 0.1 x 0.1 = lr squared at
    the last step, the very rates of a function that returns lr x (a warm-up over 32 steps). The factor reaches 1
    past the watched steps and passes; the function that returns the rate is named."""
    torch.manual_seed(0)
    x, y = _blobs(1024)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 5))
    lr = 0.1
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    def factor(step):
        decay = 0.5 * (1 + math.cos(math.pi * step / 5000))
        return lr * min(1.0, (step + 1) / 32) * decay if returns_rate else min(1.0, (step + 1) / 320) * decay

    schedule = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    with doctor.watch(model, opt, every=5) as w:
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            w.step(loss, y=yb)
    verdict = w.report()[NAME]
    assert math.isclose(max(w.probe.lrs), lr**2, rel_tol=0.02)  # the same rates either way
    assert (verdict.status == "warn" and "squared" in str(verdict.value)) is returns_rate
