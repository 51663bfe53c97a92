"""The learning checks' trained copy stops at its time budget, after a floor of steps (a large model on a CPU
trains fewer steps than asked), and trains every step asked for when the budget is not reached."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.fitting import BUDGET_FLOOR, _train_copy


def _steps(steps, budget_s):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))  # the copy keeps the hook
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    _train_copy(model, x, y, F.cross_entropy, steps, 1e-3, 0, budget_s=budget_s)
    return len(calls)


def test_a_spent_budget_stops_training_after_the_floor():
    assert _steps(BUDGET_FLOOR + 10, 0.0) == BUDGET_FLOOR
    assert _steps(10, 0.0) == 10  # fewer asked for than the floor: all of them


def test_a_budget_not_reached_trains_every_step():
    assert _steps(BUDGET_FLOOR + 10, 60.0) == BUDGET_FLOOR + 10
    assert _steps(BUDGET_FLOOR + 10, None) == BUDGET_FLOOR + 10
