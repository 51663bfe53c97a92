"""doctor.check and doctor.watch give the same advice, word for word, for the same cause in the data: inputs far
above or far below unit scale, regression targets in raw units."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


class Regressor(nn.Module):
    def __init__(self, d=8, outputs=4):
        super().__init__()
        self.hidden = nn.Linear(d, 32)
        self.out = nn.Linear(32, outputs)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))


def _data(n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, x[:, :4].argmax(1), x[:, :1] * 2 + x[:, 1:2]


def _advice(x, y, loss_fn, check_name, watch_name):
    torch.manual_seed(0)
    checked = doctor.check(Regressor(outputs=1 if y.is_floating_point() else 4), x, y, loss_fn)[check_name]
    model = Regressor(outputs=1 if y.is_floating_point() else 4)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt) as w:
        for i in range(0, len(x), 16):
            loss = loss_fn(model(x[i:i + 16]), y[i:i + 16])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i:i + 16])
    watched = w.report()[watch_name]
    assert checked.status == watched.status == "warn", (checked, watched)
    return checked.advice, watched.advice


@pytest.mark.slow  # 0.3-1.2 s each
def test_inputs_far_from_unit_scale_get_one_advice():
    x, labels, _ = _data()
    for inputs in (100 * x + 300, x / 1000):
        from_check, from_watch = _advice(inputs, labels, F.cross_entropy, "input scale", "loop: inputs")
        assert from_check == from_watch


@pytest.mark.slow  # ~0.4 s: a watched loop or check run
def test_targets_in_raw_units_get_one_advice():
    x, _, target = _data()
    from_check, from_watch = _advice(x, 1000 * target + 5000, F.mse_loss, "targets", "loop: labels")
    assert from_check == from_watch
