"""A StepLR left on an optimizer that was created again after it: the schedule moves the first optimizer's rate and
the one that trains keeps its own. The watch's ``loop: learning rate applied`` names it; the scheduler built on the
optimizer that steps passes, and so does a second model's optimizer with a scheduler of its own."""

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: learning rate applied"


def _run(rebuilt_after_scheduler: bool, other_model: bool = False):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 6, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    if rebuilt_after_scheduler:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)  # the cell run again
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    if other_model:  # a second model trained beside it, not watched, with its own schedule
        critic = nn.Linear(6, 1)
        critic_opt = torch.optim.SGD(critic.parameters(), lr=0.01)
        critic_schedule = torch.optim.lr_scheduler.StepLR(critic_opt, step_size=1)
    with warnings.catch_warnings(), doctor.watch(model, optimizer, every=4) as w:
        warnings.simplefilter("ignore")  # torch: lr_scheduler.step() before optimizer.step(), on the first one
        for _ in range(3):
            for i in range(0, 128, 32):
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
                loss.backward()
                optimizer.step()
                w.step(loss, y=y[i:i + 32])
                if other_model:
                    critic_opt.zero_grad()
                    critic(x[i:i + 32]).pow(2).mean().backward()
                    critic_opt.step()
            scheduler.step()
            if other_model:
                critic_schedule.step()
            w.validate(loss.item())
    return next(v for v in w.report().verdicts if v.check == NAME)


def test_a_scheduler_left_on_the_first_optimizer_is_named():
    v = _run(rebuilt_after_scheduler=True)
    assert v.status == "warn" and "StepLR was stepped 3 times on an optimizer" in v.value
    assert "the rate stayed at 0.1" in v.value and "after the last time" in v.advice


def test_the_scheduler_on_the_optimizer_that_steps_passes():
    assert _run(rebuilt_after_scheduler=False).status == "pass"
    assert _run(rebuilt_after_scheduler=False, other_model=True).status == "pass"
