"""SDRLinear in a user's own model trained by ``Trainer`` with ``SDRUpdate``: with beta = 0 and sigma0 = 0 it is
the plain Linear layer bit for bit (the oracle); its numbers are checked as numbers (a string or NaN used to
reach a raw comparison error, or pass)."""
import numpy as np
import pytest
import torch
from torch import nn

from trainwell.nn.sdr import SDRLinear
from trainwell.train import Trainer
from trainwell.train.constraints import SDRUpdate


class Net(nn.Module):
    def __init__(self, first):
        super().__init__()
        self.a, self.b = first, nn.Linear(8, 2)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_zero_spread_is_the_plain_linear_layer_through_the_trainer():
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    torch.manual_seed(1)
    sdr = Net(SDRLinear(4, 8, sigma0=0.0))
    plain = Net(nn.Linear(4, 8))
    plain.load_state_dict({k: v for k, v in sdr.state_dict().items() if k != "a.sigma"})
    for model, callbacks in ((sdr, [SDRUpdate(beta=0.0, zeta=1.0)]), (plain, [])):
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=2, batch_size=16, seed=0,
                callbacks=callbacks).fit((x, y))
    assert all(torch.equal(a, b) for a, b in zip(sdr.parameters(), plain.parameters(), strict=True))


@pytest.mark.parametrize("make, message", [
    (lambda: SDRLinear(4, 2, sigma0="0.1"), "sigma0='0.1' is not allowed: use a number in [0, inf)"),
    (lambda: SDRLinear(4, 2, sigma0=float("nan")), "sigma0=nan is not allowed: use a number >= 0"),
    (lambda: SDRUpdate(beta="5"), "beta='5' is not allowed: use a number in [0, inf)"),
    (lambda: SDRUpdate(beta=float("inf")), "beta=inf is not allowed: use a number >= 0"),
    (lambda: SDRUpdate(zeta="0.9"), "zeta='0.9' is not allowed: use a number in (0, 1]")])
def test_bad_numbers_are_named(make, message):
    with pytest.raises((TypeError, ValueError)) as err:
        make()
    assert str(err.value) == message


def test_numpy_numbers_are_numbers():
    layer = SDRLinear(4, 2, sigma0=np.float32(0.5))
    assert torch.allclose(layer.sigma, torch.full((2, 4), 0.5))
    assert SDRUpdate(beta=np.float64(0.5), zeta=np.float32(0.5)).zeta == 0.5
