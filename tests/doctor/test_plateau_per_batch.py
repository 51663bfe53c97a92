"""``doctor.watch`` on a ReduceLROnPlateau stepped every batch on the training loss: the collapsed rate is named as
that scheduler (its factor and patience replayed on the losses), and other schedules stepped per batch are not."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


def _data(n=1024, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=g)
    y = (x[:, :4] + x[:, 4:8]).argmax(1)
    flip = torch.rand(n, generator=g) < 0.2  # noisy labels: a noisy per-batch loss
    y[flip] = torch.randint(4, (int(flip.sum()),), generator=g)
    return x, y


def _schedule_loop(make_scheduler, on_loss):
    """Four epochs of a plain loop, the scheduler stepped after every batch (on the batch's loss: ``on_loss``)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = make_scheduler(opt)
    x, y = _data()
    x_val, y_val = _data(256, seed=1)
    with doctor.watch(model, opt, every=10) as w:
        for epoch in range(4):
            perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
            for i in range(0, len(x), 32):
                idx = perm[i : i + 32]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[idx])
                if on_loss:
                    sched.step(loss.item())
                else:
                    sched.step()
            with torch.no_grad():
                w.validate(float(F.cross_entropy(model(x_val), y_val)))
    return w.report()["loop: learning rate applied"]


@pytest.mark.parametrize("factor, patience", [(0.5, 2), (0.1, 4)])
@pytest.mark.slow  # 0.16 s each on a 2-core CPU (RESULTS §51)
def test_reduce_on_plateau_stepped_every_batch_is_named_with_its_factor_and_patience(factor, patience):
    verdict = _schedule_loop(lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=factor, patience=patience), on_loss=True)
    assert verdict.status == "warn", verdict
    assert f"ReduceLROnPlateau(factor={factor:g}, patience={patience}) stepped every batch" in verdict.advice
    assert "once per epoch on the validation loss" in verdict.advice


@pytest.mark.parametrize("make", [lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.1),
                                  lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, [5, 9, 20], 0.2)])
@pytest.mark.slow  # 0.16 s each on a 2-core CPU (RESULTS §51)
def test_other_per_epoch_schedules_stepped_every_batch_keep_their_advice(make):
    verdict = _schedule_loop(make, on_loss=False)
    assert verdict.status == "warn" and "a per-epoch scheduler stepped per batch" in verdict.advice, verdict
    assert "ReduceLROnPlateau" not in verdict.advice
