"""Deep SVDD (Ruff et al. 2018): a bias-free network trained to map the normal examples close to a fixed centre c
(the mean of its initial outputs), ``||f(x) - c||^2``, the loss reading no targets. One constant output, c itself,
reaches a loss of 0, and the input-independent baseline failed the healthy model with "the loss has nothing to
teach". A bias-free ReLU network is positively homogeneous (f(2x) = 2 f(x)) and cannot output one nonzero constant
for every input, which is why Ruff et al. remove the biases: the baseline skips. The same network with biases,
which can collapse onto c, still fails."""

import pytest
import torch
from torch import nn

from trainwell.doctor.baseline import input_independent_baseline


@pytest.fixture(autouse=True)
def _flushed_denormals():
    """The copy drives its outputs onto c and its weights' updates into denormal floats, which the CPU computes on
    100x slower: flushed to 0 here (a test's time only; the readings are the same)."""
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


def _svdd(bias: bool):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = 0.2 * torch.rand(64, 32, generator=g) + torch.linspace(0, 1, 32)  # the normal class: positive features
    net = nn.Sequential(nn.Linear(32, 32, bias=bias), nn.LeakyReLU(0.1), nn.Linear(32, 8, bias=bias))
    with torch.no_grad():
        c = net(x).mean(0)

    def svdd(z, _unused):
        return ((z - c) ** 2).sum(1).mean()

    return input_independent_baseline(net, x, torch.zeros(len(x)), svdd)


@pytest.mark.slow  # seconds
def test_a_bias_free_one_class_network_is_not_held_to_its_centre_as_a_constant():
    v = _svdd(bias=False)
    assert v.status == "skip" and "positively homogeneous" in v.value, v


@pytest.mark.slow  # about a second
def test_the_same_network_with_biases_still_fails():
    v = _svdd(bias=True)
    assert v.status == "fail" and "nothing to teach" in v.advice, v
