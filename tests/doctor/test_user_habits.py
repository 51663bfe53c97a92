"""The doctor on habits of users' own loops: an optimizer built layer by layer over a shared block, gradients
clipped by value, and the causes named when the data's scale or the loss's form is what fails."""

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

from .user_loop import epoch


class SharedBlockNet(nn.Module):
    """One residual block applied at four depths (ALBERT-style weight sharing)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.inp = nn.Linear(20, 32)
        block = nn.Sequential(nn.Linear(32, 32), nn.Tanh())
        self.layers = nn.ModuleList([block] * 4)
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        h = self.inp(x)
        for layer in self.layers:
            h = h + layer(h)
        return self.head(h)


def _sgd(model, per_layer):
    params = [p for m in [model.inp, *model.layers, model.head] for p in m.parameters()] if per_layer \
        else model.parameters()
    with warnings.catch_warnings():  # torch warns once about the duplicates, and keeps them
        warnings.simplefilter("ignore")
        return torch.optim.SGD(params, lr=0.05, momentum=0.9)


def test_a_shared_block_listed_once_per_position_in_the_optimizer_fails_in_check_and_watch():
    torch.manual_seed(1)
    x = torch.randn(256, 20)
    y = x[:, :4].argmax(1)
    for per_layer, status in ((False, None), (True, "fail")):
        model = SharedBlockNet()
        opt = _sgd(model, per_layer)
        held = next(v for v in doctor.check(model, x, y, nn.CrossEntropyLoss(), optimizer=opt)
                    if v.check == "optimizer holds the parameters") if per_layer else None
        loop = next(v for v in epoch(model, opt, x, y).report() if v.check == "loop: optimizer holds the parameters")
        if per_layer:
            assert held.status == "fail" and "layers.0.0.*" in held.value and "4 times" in held.value
            assert loop.status == "fail" and "4 times" in loop.value and "model.parameters()" in loop.advice
        else:
            assert loop.status == "pass"


def _clipped_by_value(clip_value, make_opt):
    torch.manual_seed(0)
    x = torch.randn(1024, 20)
    y = (x[:, :4] + x[:, 4:8]).argmax(1)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = make_opt(model.parameters())
    with doctor.watch(model, opt, every=5) as w:
        for i in range(0, len(x), 32):
            loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_value_(model.parameters(), clip_value)
            opt.step()
            w.step(loss)
    report = w.report()
    return {v.check: v for v in report}


def test_clip_grad_value_below_the_gradients_elements_is_named_and_the_flat_curve_defers_to_it():
    sgd = lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)  # noqa: E731
    tight = _clipped_by_value(1e-4, sgd)
    flow = tight["loop: gradients at optimizer.step()"]
    assert flow.status == "warn" and "clipped by value" in flow.value and "+-0.0001" in flow.value
    assert "clip_value" in flow.advice
    curve = tight["learning rate (loss curve)"]
    assert curve.status not in ("fail", "warn")
    assert _clipped_by_value(1.0, sgd)["loop: gradients at optimizer.step()"].status == "pass"
    adam = _clipped_by_value(1e-4, lambda ps: torch.optim.Adam(ps, lr=1e-3))
    assert adam["loop: gradients at optimizer.step()"].status == "info"
