"""Matrix factorization on ratings 1-5 with a global bias initialized to the mean rating: its outputs start at the
targets' offset, so when the input-independent baseline cannot show signal on a few hundred ratings (held-out users
and items barely seen), it does not tell the user that a copy whose outputs start near 0 spends its steps learning
the offset and to standardize the ratings. Without that bias the outputs start near 0 and the advice stays."""

import torch
from torch import nn

from trainwell.doctor.baseline import input_independent_baseline
from trainwell.doctor.inputs import as_inputs


class MF(nn.Module):
    def __init__(self, users, items, mean=None):
        super().__init__()
        self.u, self.i = nn.Embedding(users, 8), nn.Embedding(items, 8)
        for e in (self.u, self.i):
            nn.init.normal_(e.weight, std=0.1)
        self.mu = None if mean is None else nn.Parameter(torch.tensor(float(mean)))

    def forward(self, u, i):
        r = (self.u(u) * self.i(i)).sum(1)
        return r if self.mu is None else r + self.mu


def _ratings():
    g = torch.Generator().manual_seed(0)
    pu, pi = torch.randn(200, 3, generator=g), torch.randn(150, 3, generator=g)
    u, i = torch.randint(0, 200, (256,), generator=g), torch.randint(0, 150, (256,), generator=g)
    r = (3.5 + 0.6 * (pu[u] * pi[i]).sum(1) + 0.3 * torch.randn(256, generator=g)).clamp(1, 5)
    return as_inputs((u, i)), r


def test_a_global_bias_at_the_mean_rating_is_not_told_to_standardize():
    x, r = _ratings()
    torch.manual_seed(0)
    verdict = input_independent_baseline(MF(200, 150, r.mean()), x, r, nn.MSELoss(), steps=40)
    assert "far from zero mean" not in verdict.advice, verdict


def test_outputs_that_start_near_0_are_still_told():
    x, r = _ratings()
    torch.manual_seed(0)
    verdict = input_independent_baseline(MF(200, 150), x, r, nn.MSELoss(), steps=40)
    assert verdict.status != "pass" and "far from zero mean" in verdict.advice, verdict
