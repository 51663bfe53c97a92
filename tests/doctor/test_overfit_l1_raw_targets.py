"""``doctor.check``'s "overfit a tiny subset" on a healthy regressor trained with ``nn.L1Loss`` on targets in raw
units (around 1000, spread ~1.4): the copy starts its output bias at the targets' median (Karpathy's "init well"),
so an absolute error, whose gradient keeps one size, does not first travel 1000 units and arrive with outputs
spread ten times wider than the targets; its floor is 0 (outputs equal to the targets). A model frozen but for its
output bias still fails."""

import pytest
import torch
from torch import nn

from trainwell import doctor
from trainwell.doctor.overfit import overfit_tiny_subset


def _data(seed: int):
    torch.manual_seed(seed)
    x = torch.randn(128, 8)
    y = 1000 + x[:, 0] + x[:, 1]  # raw units, spread ~1.4
    return x, y[:, None]


def _model(frozen: bool = False) -> nn.Module:
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    if frozen:  # everything but the output bias
        for p in [*model[0].parameters(), model[2].weight]:
            p.requires_grad_(False)
    return model


@pytest.mark.slow  # ~0.7 s: a watched loop or check run
@pytest.mark.parametrize("seed", [0, 3])
def test_a_healthy_l1_regressor_in_raw_units_overfits(seed):
    x, y = _data(seed)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    report = doctor.check(model, x, y, nn.L1Loss(), optimizer=opt)
    verdict = report["overfit a tiny subset"]
    assert verdict.status == "pass", verdict
    assert "floor" not in verdict.value.split(";")[0]  # the floor is 0: outputs equal to the targets
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))  # the user's model


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_regressor_frozen_but_its_output_bias_still_fails():
    x, y = _data(0)
    verdict = overfit_tiny_subset(_model(frozen=True), x, y, nn.L1Loss())
    assert verdict.status == "fail"
    assert "one constant output" in verdict.value


@pytest.mark.slow  # ~1.0 s: a watched loop or check run
def test_every_seed_of_the_healthy_regressor_overfits():
    for seed in range(10):
        x, y = _data(seed)
        assert overfit_tiny_subset(_model(), x, y, nn.L1Loss()).status == "pass", seed


@pytest.mark.slow  # ~0.7 s: a watched loop or check run
@pytest.mark.parametrize("loss_fn", [nn.HuberLoss(), nn.SmoothL1Loss()], ids=["huber", "smooth_l1"])
def test_huber_and_smooth_l1_start_at_the_targets_offset_too(loss_fn):
    """Beyond ``delta`` (``beta``) Huber and smooth L1 are an absolute error: the gradient keeps one size over the
    1000 units the copy travels. The healthy regressor overfits on every seed; frozen but its output bias, it
    fails."""
    for seed in range(4):
        x, y = _data(seed)
        x = x.clone()
        x[:, :2] *= 3  # the targets spread ~4: well beyond delta = 1 around the offset
        y = 1000 + x[:, :1] + x[:, 1:2]
        torch.manual_seed(seed)
        assert overfit_tiny_subset(_model(), x, y, loss_fn).status == "pass", seed
    x, y = _data(0)
    torch.manual_seed(0)
    assert overfit_tiny_subset(_model(frozen=True), x, y, loss_fn).status == "fail"
