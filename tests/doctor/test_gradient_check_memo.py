"""The pre-flight's two gradient checks share the data loss at their perturbed coordinates: the L2 check adds its
penalty to the values the data-loss check computed (the same sums, so the same verdict) instead of running the
same forwards again."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.gradient_check import gradient_check
from trainwell.regularize import l2_penalty


class Faulty(torch.autograd.Function):  # a ReLU whose backward is 1.5x too large: a user's own wrong backward
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0) * 1.5


class Net(nn.Module):
    def __init__(self, faulty: bool):
        super().__init__()
        self.a, self.b, self.faulty = nn.Linear(6, 16), nn.Linear(16, 3), faulty

    def forward(self, x):
        h = self.a(x)
        return self.b(Faulty.apply(h) if self.faulty else torch.tanh(h))


def _counted(model):
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))  # the checks' float64 copies keep the hook
    return calls


@pytest.mark.parametrize("faulty", [False, pytest.param(True, marks=pytest.mark.slow)])  # a failing check: ~1 s
def test_the_l2_check_reads_the_data_checks_values_and_gives_the_same_verdict(faulty):
    torch.manual_seed(0)
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    model = Net(faulty)
    calls = _counted(model)
    l2 = lambda m: l2_penalty(m, 1e-3)  # noqa: E731
    alone = gradient_check(model, x, y, F.cross_entropy, penalty=l2)
    forwards_alone = len(calls)
    memo: dict = {}
    gradient_check(model, x, y, F.cross_entropy, memo=memo)
    calls.clear()
    shared = gradient_check(model, x, y, F.cross_entropy, penalty=l2, memo=memo)
    assert (shared.status, shared.value) == (alone.status, alone.value)
    assert shared.status == ("fail" if faulty else "pass")
    # the perturbed forwards were not run again (a failing check runs more forwards of its own: kinks, held
    # stop-gradients)
    assert len(calls) < (forwards_alone if faulty else forwards_alone / 2)
