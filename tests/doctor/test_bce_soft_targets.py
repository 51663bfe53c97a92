"""Binary cross-entropy on soft targets (an autoencoder's pixels in [0, 1]): its lowest value is the targets' mean
binary entropy, not 0. doctor.watch measures the loss curve's drop towards it, with the targets given to
``w.step(loss, y=x)`` or read back from the loss's gradient; doctor.check expects ln 2 at initialization."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.binary_floor import read_binary

D = 64


def _pixels(n=2048):
    """Soft 'images' in (0, 1): a 4-dimensional latent through a random mixing and a sigmoid."""
    g = torch.Generator().manual_seed(0)
    return torch.sigmoid(torch.randn(n, 4, generator=g) @ (1.5 * torch.randn(4, D, generator=g)))


class AutoEncoder(nn.Module):
    """Encoder to 8 numbers and back; the decoder ends in a Sigmoid (nn.BCELoss) or gives logits."""

    def __init__(self, logits=False):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(D, 64), nn.ReLU(), nn.Linear(64, 8))
        self.dec = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, D), *([] if logits else [nn.Sigmoid()]))

    def forward(self, x):
        return self.dec(self.enc(x))


def _train(lr, logits=False, give_targets=True, epochs=6):
    x = _pixels()
    torch.manual_seed(0)
    model = AutoEncoder(logits)
    loss_fn = nn.BCEWithLogitsLoss() if logits else nn.BCELoss()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(x), batch_size=64, shuffle=True)
    with doctor.watch(model, opt) as w:
        for _ in range(epochs):
            for (xb,) in loader:
                loss = loss_fn(model(xb), xb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=xb) if give_targets else w.step(loss)
    return w.report()["learning rate (loss curve)"], float(F.binary_cross_entropy(x, x))


@pytest.mark.slow  # 0.3-1.2 s each
@pytest.mark.parametrize("give_targets", [True, False])
@pytest.mark.parametrize("lr", [1e-3, 1e-2])
def test_a_healthy_bce_autoencoder_reads_good_towards_its_targets_entropy(lr, give_targets):
    v, entropy = _train(lr, give_targets=give_targets)
    assert v.status == "pass" and v.value.startswith("good"), v
    floor = float(v.value.split("towards the floor ")[1].split(",")[0])
    # the data's mean binary entropy, 0.385: exact from the targets given, estimated from the observed batches
    assert abs(floor - entropy) < (0.01 if give_targets else 0.05) * entropy


@pytest.mark.slow  # 0.28 s each on a 2-core CPU (RESULTS §51)
def test_bce_with_logits_on_soft_targets_is_read_the_same_way():
    v, entropy = _train(3e-3, logits=True, give_targets=False)
    assert v.status == "pass" and v.value.startswith("good") and "towards the floor" in v.value, v


@pytest.mark.slow  # ~0.7 s: a watched loop or check run
@pytest.mark.parametrize("lr, label", [(1e-5, "flat"), (1.0, "too high")])
def test_a_wrong_rate_on_the_same_autoencoder_is_still_named(lr, label):
    v, _ = _train(lr, epochs=3)
    assert v.status in ("warn", "fail") and v.value.startswith(label), v


@pytest.mark.parametrize("reduction, weight", [("mean", lambda z: 1 / z.numel()), ("per_example", lambda z: 1 / len(z)),
                                               ("sum", lambda z: 1.0)])
@pytest.mark.parametrize("on", ["probabilities", "logits"])
def test_the_targets_and_floor_are_read_back_from_the_gradient(reduction, weight, on):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(16, 12, generator=g, dtype=torch.float64)
    z = torch.sigmoid(z) if on == "probabilities" else z
    z.requires_grad_(True)
    y = torch.rand(16, 12, generator=g, dtype=torch.float64)
    bce = F.binary_cross_entropy if on == "probabilities" else F.binary_cross_entropy_with_logits
    loss = bce(z, y, reduction="sum") * weight(z)
    loss.backward()
    read = read_binary(z.detach(), z.grad, float(loss.detach()))
    assert read["on"] == on and read["reduction"] == reduction
    torch.testing.assert_close(read["targets"], y)
    assert read["floor"] == pytest.approx(float(F.binary_cross_entropy(y, y, reduction="sum")) * weight(z), rel=1e-9)


def test_a_squared_error_on_outputs_in_0_1_is_not_read_as_bce():
    g = torch.Generator().manual_seed(2)
    p = torch.sigmoid(torch.randn(32, 8, generator=g)).requires_grad_(True)
    y = torch.rand(32, 8, generator=g)
    loss = F.mse_loss(p, y)
    loss.backward()
    assert read_binary(p.detach(), p.grad, float(loss.detach())) is None


@pytest.mark.parametrize("loss_fn", [nn.BCELoss(), F.binary_cross_entropy])
@pytest.mark.slow  # 0.14 s each on a 2-core CPU (RESULTS §51)
def test_check_expects_ln_2_from_bce_on_a_sigmoid(loss_fn):
    x = _pixels(256)
    torch.manual_seed(0)
    v = doctor.check(AutoEncoder(), x, x, loss_fn)["initial loss"]
    assert v.status == "pass" and abs(v.value - math.log(2)) < 0.01 and "ln 2" in v.expected, v


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_check_flags_bce_outputs_that_start_far_from_one_half():
    x = _pixels(256)
    torch.manual_seed(0)
    model = AutoEncoder()
    with torch.no_grad():
        model.dec[2].weight.mul_(30.0)  # a last layer initialized far too large: the Sigmoid saturates
    v = doctor.check(model, x, x, nn.BCELoss())["initial loss"]
    assert v.status in ("warn", "fail") and v.value > 1.25 * math.log(2), v
