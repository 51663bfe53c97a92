"""A per-step one-cycle schedule that cannot last the fit (sized for fewer steps, or stepped to its end by an
earlier run) is refused before any step: torch would raise at the step past its end, after the weights moved."""
import pytest
import torch
from torch import nn

from trainwell.train import Trainer

x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))


def cycle(model, total):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=total)


def test_a_schedule_sized_for_fewer_steps_than_the_fit_is_refused_before_any_step():
    model = nn.Linear(4, 2)
    before = [p.detach().clone() for p in model.parameters()]
    opt, sched = cycle(model, 15)  # 2 epochs of 8 batches take 16 steps
    with pytest.raises(ValueError, match=r"sized for 15 steps and 0 have run; 2 more epochs take 16"):
        Trainer(model, opt, epochs=2, batch_size=8, schedule=sched).fit((x, y))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_a_scheduler_an_earlier_run_used_up_is_refused_in_a_new_trainer():
    model = nn.Linear(4, 2)
    opt, sched = cycle(model, 16)
    Trainer(model, opt, epochs=2, batch_size=8, schedule=sched).fit((x, y))
    assert sched.last_epoch == 16  # the oracle: torch's count of the steps taken
    with pytest.raises(ValueError, match=r"sized for 16 steps and 16 have run"):
        Trainer(model, opt, epochs=1, batch_size=8, schedule=sched).fit((x, y))
    fresh_opt, fresh = cycle(model, 8)
    state = Trainer(model, fresh_opt, epochs=1, batch_size=8, schedule=fresh).fit((x, y))
    assert state.step == 8 and fresh.last_epoch == 8
