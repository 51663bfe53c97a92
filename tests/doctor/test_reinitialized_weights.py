"""A user's ``init_weights`` applied inside the epoch loop re-draws the weights every epoch: training starts over
each time. The watch reads ``torch.nn.init``'s calls on the model's parameters after the first step and names it
(``loop: weights initialized once``); the same init applied once before the loop, and a reset of the last layer
alone (less than half the weights), pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.reinitialized_weights import NAME


def init_weights(m):
    if isinstance(m, nn.Linear):
        nn.init.kaiming_normal_(m.weight.data, nonlinearity="relu")
        nn.init.zeros_(m.bias)


def _run(where: str):
    """Three epochs of 4 steps; ``where`` the user's init runs: "before" the loop, "each_epoch" at the top of every
    epoch, "reset_last" before the loop and the last layer's reset_parameters() at epoch 2."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    model.apply(init_weights)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=4) as w:
        for epoch in range(3):
            if where == "each_epoch":
                model.apply(init_weights)  # meant to run once, before the loop
            if where == "reset_last" and epoch == 2:
                model[-1].reset_parameters()
            for i in range(0, 256, 64):
                opt.zero_grad()
                loss = F.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
                loss.backward()
                opt.step()
                w.step(loss, y=y[i:i + 64])
    return next((v for v in w.report().verdicts if v.check == NAME), None)


@pytest.fixture(scope="module")
def verdicts():
    return {where: _run(where) for where in ("before", "each_epoch", "reset_last")}


@pytest.mark.slow
def test_init_weights_inside_the_epoch_loop_is_named(verdicts):
    v = verdicts["each_epoch"]
    assert v is not None and v.status == "fail"
    assert "100%" in v.value and "2 times" in v.value and "after steps 4, 8" in v.value
    assert "before the training loop" in v.advice


@pytest.mark.slow
def test_init_weights_once_before_the_loop_passes(verdicts):
    assert verdicts["before"] is None


@pytest.mark.slow
def test_a_reset_of_the_last_layer_passes(verdicts):
    assert verdicts["reset_last"] is None


def dcgan_init(m):
    """The DCGAN tutorial's weights_init: in-place fills on .data, past torch.nn.init."""
    if isinstance(m, nn.Linear):
        m.weight.data.normal_(0.0, 0.02)
        m.bias.data.fill_(0)
    elif isinstance(m, nn.BatchNorm1d):
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.zero_()


def _run_fills(each_epoch: bool):
    """Three epochs of 4 Adam steps (weight decay, gradients zeroed in place) on a net with BatchNorm; the DCGAN
    init applied before the loop, and also at the top of every epoch when ``each_epoch``."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))
    model.apply(dcgan_init)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    with doctor.watch(model, opt, every=4) as w:
        for _ in range(3):
            if each_epoch:
                model.apply(dcgan_init)  # meant to run once, before the loop
            for i in range(0, 256, 64):
                opt.zero_grad(set_to_none=False)
                loss = F.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
                loss.backward()
                opt.step()
                w.step(loss, y=y[i:i + 64])
    return next((v for v in w.report().verdicts if v.check == NAME), None)


@pytest.fixture(scope="module")
def fills():
    return {each: _run_fills(each) for each in (True, False)}


@pytest.mark.slow
def test_in_place_fills_each_epoch_are_named(fills):
    v = fills[True]
    assert v is not None and v.status == "fail"
    assert "100%" in v.value and "2 times" in v.value and "after steps 4, 8" in v.value


@pytest.mark.slow
def test_in_place_fills_once_before_the_loop_pass(fills):
    assert fills[False] is None


def test_tensor_methods_are_put_back_after_the_watch():
    before = {name: torch.Tensor.__dict__.get(name) for name in ("normal_", "uniform_", "fill_", "zero_")}
    model = nn.Linear(3, 1)
    with doctor.watch(model, torch.optim.SGD(model.parameters(), lr=0.1)):
        assert torch.Tensor.__dict__.get("fill_") is not before["fill_"]
    assert {name: torch.Tensor.__dict__.get(name) for name in before} == before


@pytest.mark.slow  # torch.compile: seconds
def test_a_compiled_forward_that_fills_a_buffer_runs_under_the_watch():
    """Fills read while the watch is open are not read while torch.compile traces them (on tensors with no memory
    of their own): a compiled model whose forward zeroes a buffer trains as without the watch."""

    class Accumulating(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden, self.head = nn.Linear(8, 16), nn.Linear(16, 3)
            self.register_buffer("mean_activation", torch.zeros(16))

        def forward(self, x):
            h = torch.relu(self.hidden(x))
            self.mean_activation.zero_()
            self.mean_activation.add_(h.detach().mean(0))
            return self.head(h)

    torch.manual_seed(0)
    model = Accumulating()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    compiled = torch.compile(model)
    x, y = torch.randn(256, 8), torch.randint(0, 3, (256,))
    with doctor.watch(model, opt) as w:
        for _ in range(2):
            for i in range(0, 256, 32):  # the watch observes the first steps uncompiled: traced after them
                loss = F.cross_entropy(compiled(x[i:i + 32]), y[i:i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
    assert "loop: weights initialized once" not in [v.check for v in w.report() if v.status in ("fail", "warn")]
