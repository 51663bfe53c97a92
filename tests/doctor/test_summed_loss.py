"""CrossEntropyLoss(reduction='sum') at a learning rate chosen for the mean: the step is batch-size times longer and
the loss diverges. The watch's ``learning rate (loss curve)`` verdict names the summed loss; the same loop with the
mean's default reduction trains, and its curve says nothing of a sum."""

import torch
from torch import nn

from trainwell import doctor

NAME = "learning rate (loss curve)"


def _run(reduction: str):
    g = torch.Generator().manual_seed(0)
    centers = 2.5 * torch.randn(4, 8, generator=g)
    y = torch.randint(0, 4, (1024,), generator=g)
    x = centers[y] + torch.randn(1024, 8, generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    criterion = nn.CrossEntropyLoss(reduction=reduction)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for i in range(0, 1024, 32):
            opt.zero_grad()
            loss = criterion(model(x[i:i + 32]), y[i:i + 32])
            loss.backward()
            opt.step()
            w.step(loss, y=y[i:i + 32])
    return next(v for v in w.report().verdicts if v.check == NAME)


def test_a_summed_loss_at_the_mean_rate_is_named():
    v = _run("sum")
    assert v.status == "fail" and str(v.value).startswith("too high")
    assert "F.cross_entropy(reduction='sum')" in v.value and "reduction='mean'" in v.advice


def test_the_mean_says_nothing_of_a_sum():
    v = _run("mean")
    assert "reduction" not in str(v.value) and "reduction" not in v.advice
