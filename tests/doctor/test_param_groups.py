"""Param groups built by filtering parameter names: a filter that matches nothing leaves an empty group, and the
layers meant for it train at the other group's rate. doctor.check and doctor.watch name the empty group; the loss
curve's reading defers to it."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "optimizer holds the parameters"


class Net(nn.Module):
    def __init__(self, d=8, h=32, c=3):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU())
        self.head = nn.Linear(h, c)

    def forward(self, x):
        return self.head(self.backbone(x))


def _data(n=512, d=8, c=3):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    return x, (x @ torch.randn(d, c, generator=g)).argmax(1)


def _grouped(model, head_prefix):
    named = dict(model.named_parameters())
    head = [p for n, p in named.items() if n.startswith(head_prefix)]
    rest = [p for n, p in named.items() if not n.startswith(head_prefix)]
    return torch.optim.SGD([{"params": rest, "lr": 0.002}, {"params": head, "lr": 0.05}], momentum=0.9)


def _watched(model, opt, x, y, epochs=3):
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(epochs):
            for i in range(0, len(x), 32):
                loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            w.validate(loss.item())
    return w.report()


def _verdict(report, name):
    return next(v for v in report if v.check == name)


def test_a_group_whose_filter_matched_nothing_is_named_by_check_and_watch():
    torch.manual_seed(0)
    x, y = _data()
    model = Net()
    opt = _grouped(model, "classifier")  # the layer is called "head"
    assert opt.param_groups[1]["params"] == []  # the oracle: torch kept the empty group
    held = _verdict(doctor.check(model, x[:128], y[:128], nn.CrossEntropyLoss(), optimizer=opt), NAME)
    assert held.status == "warn" and "param group 1 (lr 0.05) holds no parameters" in held.value
    report = _watched(model, opt, x, y)
    loop = _verdict(report, "loop: " + NAME)
    assert loop.status == "warn" and "param group 1" in loop.value and "matched nothing" in loop.value
    curve = [v for v in report if v.check.startswith("learning rate")]
    assert all(v.status not in ("warn", "fail") for v in curve)  # the curve's reading defers to the empty group


def test_groups_that_each_hold_parameters_pass():
    torch.manual_seed(0)
    x, y = _data()
    model = Net()
    opt = _grouped(model, "head")
    checked = doctor.check(model, x[:128], y[:128], nn.CrossEntropyLoss(), optimizer=opt)
    assert not [v for v in checked if v.check == NAME]
    assert _verdict(_watched(model, opt, x, y), "loop: " + NAME).status == "pass"
