"""doctor.check with several targets: y as a tuple or dict of tensors, passed to the loss in its own structure."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

STATUSES = {"pass", "warn", "fail", "skip", "info"}


class TwoHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 32), nn.ReLU())
        self.cls, self.reg = nn.Linear(32, 3), nn.Linear(32, 2)

    def forward(self, x):
        h = self.body(x)
        return self.cls(h), self.reg(h)


def _data():
    torch.manual_seed(0)
    x = torch.randn(64, 6)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long(), x[:, 2:4] * 0.5


def tuple_loss(out, y):
    y_class, y_box = y
    return F.cross_entropy(out[0], y_class) + F.mse_loss(out[1], y_box)


def dict_loss(out, y):
    return F.cross_entropy(out[0], y["cls"]) + F.mse_loss(out[1], y["reg"])


def _real_verdicts(report):
    assert all(v.status in STATUSES for v in report.verdicts)
    assert all("could not run" not in str(v.value) for v in report.verdicts), report.verdicts
    for name in ("overfit a tiny subset", "gradient check (data loss)"):
        assert report[name].status == "pass", report[name]


def test_tuple_targets_run_every_check():
    x, yc, yr = _data()
    model = TwoHead()
    _real_verdicts(doctor.check(model, x, (yc, yr), tuple_loss, optimizer=torch.optim.SGD(model.parameters(), 0.1)))


def test_dict_targets_run_every_check():
    x, yc, yr = _data()
    _real_verdicts(doctor.check(TwoHead(), x, {"cls": yc, "reg": yr}, dict_loss))


def test_list_targets_reach_the_loss_as_given():
    x, yc, yr = _data()
    seen = []

    def loss(out, y):
        seen.append(type(y))
        return tuple_loss(out, y)

    doctor.check(TwoHead(), x, [yc, yr], loss)
    assert seen and set(seen) == {list}


@pytest.mark.slow  # 0.3-1.2 s each
def test_raw_unit_regression_target_is_named():
    x, yc, yr = _data()
    report = doctor.check(TwoHead(), x, (yc, 1000 + 300 * yr), tuple_loss)
    assert report["initial loss"].status == "warn"
    assert "y[1]" in report["initial loss"].advice and "far from zero mean" in report["initial loss"].advice


def test_mismatched_target_lengths_name_the_field():
    x, yc, yr = _data()
    with pytest.raises(ValueError, match=r"y\['reg'\]") as e:
        doctor.check(TwoHead(), x, {"cls": yc, "reg": yr[:10]}, dict_loss)
    assert "\n" not in str(e.value)


def test_non_tensor_target_is_a_type_error():
    x, yc, _ = _data()
    with pytest.raises(TypeError, match=r"y\[1\]"):
        doctor.check(TwoHead(), x, (yc, "boxes"), tuple_loss)
