"""MADE (Germain et al. 2015), a user's autoregressive model of binary vectors: masked Linear layers (the masks
registered buffers) let output j see only the inputs before it, and the loss is the BCE of its outputs against its
own inputs. On 20 distinct examples it cannot reach the ~0 free outputs reach: its floor is the data's entropy,
about ln 20 = 3.0 nats per example, and the pre-flight's overfit check must measure it against that floor. A MADE
whose hidden degrees leave every output unconnected (only biases learn) still fails it."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

D, H = 16, 64


class MaskedLinear(nn.Linear):
    def __init__(self, i, o, mask):
        super().__init__(i, o)
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    def __init__(self, unconnected=False):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        m_in = torch.arange(1, D + 1)
        # the bug: degrees drawn from D..2D-1 instead of 1..D-1, so no output unit is allowed any hidden unit
        m_h = torch.randint(D, 2 * D, (H,), generator=g) if unconnected else torch.randint(1, D, (H,), generator=g)
        self.l1 = MaskedLinear(D, H, (m_h[:, None] >= m_in[None, :]).float())
        self.l2 = MaskedLinear(H, D, (m_in[:, None] > m_h[None, :]).float())

    def forward(self, x):
        return self.l2(F.relu(self.l1(x)))


def nll(logits, x):
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)


def _data():
    g = torch.Generator().manual_seed(0)  # a Markov chain of bits: each bit copies the previous one 80% of the time
    x = torch.zeros(256, D)
    x[:, 0] = torch.rand(256, generator=g) < 0.5
    for j in range(1, D):
        x[:, j] = torch.where(torch.rand(256, generator=g) < 0.8, x[:, j - 1], 1 - x[:, j - 1])
    return x


@pytest.mark.slow  # ~2 s: two pre-flights
def test_an_autoregressive_model_is_held_to_the_floor_its_masks_allow():
    x = _data()
    torch.manual_seed(0)
    healthy = doctor.check(MADE(), x, x, nll)["overfit a tiny subset"]
    assert healthy.status == "pass" and "sees only the inputs before it" in str(healthy.value), healthy
    torch.manual_seed(0)
    assert doctor.check(MADE(unconnected=True), x, x, nll)["overfit a tiny subset"].status == "fail"
