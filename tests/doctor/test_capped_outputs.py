"""A regressor that ends in nn.Sigmoid, fitted by MSE to targets in their own units (most above 1): its outputs
press against 1 and the targets are never reached. The watch names it (``loop: loss input``) instead of the
activations that collapse through depth it looks like; the same net without the Sigmoid, and a Sigmoid regressor
on targets scaled into [0, 1], pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.capped_outputs import CAPPED_OUTPUTS, capped_outputs_verdict


def _train(sigmoid: bool, scale: float = 10.0):
    """A user's regression loop (targets in [0, scale]); the report."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g)
    y = (scale * torch.sigmoid(x[:, :1] - x[:, 1:2]))
    torch.manual_seed(0)
    layers = [nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1)] + ([nn.Sigmoid()] if sigmoid else [])
    model = nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(2):
            for i in range(0, 512, 32):
                loss = F.mse_loss(model(x[i:i + 32]), y[i:i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i:i + 32])
    return w.report().verdicts


@pytest.fixture(scope="module")
def reports():
    return {"capped": _train(True), "linear": _train(False), "unit_targets": _train(True, scale=1.0)}


def _named(verdicts):
    return [v for v in verdicts if str(v.value).startswith(CAPPED_OUTPUTS)]


@pytest.mark.slow
def test_a_sigmoid_regressor_on_targets_above_1_is_named(reports):
    named = _named(reports["capped"])
    assert named and named[0].status == "fail" and "Sigmoid" in named[0].advice
    assert not [v for v in reports["capped"] if "collapse" in v.check and v.status in ("warn", "fail")]


@pytest.mark.slow
def test_the_linear_twin_and_unit_targets_pass(reports):
    assert not _named(reports["linear"]) and not _named(reports["unit_targets"])


def _read(highest, above=0.9, high=9.0):
    return {"highest": highest, "targets_above_one": above, "high_target": high}


def test_outputs_still_climbing_below_1_are_not_a_cap():
    assert capped_outputs_verdict([_read(0.3), _read(0.6)]) is None  # a linear head on its way up
    assert capped_outputs_verdict([_read(0.9), _read(1.0)]) is not None
    # targets in [0, 1] with some noise above 1
    assert capped_outputs_verdict([_read(0.999, high=1.2), _read(1.0, high=1.2)]) is None


def test_a_layer_whose_outputs_are_one_value_reads_as_a_fall_to_0():
    """A Sigmoid saturated at exactly 1 on every row (std 0) made the depth-collapse reading divide by 0."""
    from trainwell.doctor.depth_collapse import collapse

    snapshot = {"a": {"kind": "ReLU", "std": 1.0}, "b": {"kind": "ReLU", "std": 0.5},
                "c": {"kind": "Sigmoid", "std": 0.0}}
    records = [{"step": s, "activations": snapshot, "update_ratio": {"w": 1e-6}} for s in (1, 2, 3)]
    v = collapse(records)
    assert v is not None and "falls to 0" in v.value
