"""Adam's settings written the wrong way in the user's optimizer: its two decays swapped (``betas=(0.999, 0.9)``),
and an ``eps`` of 1 that dominates the gradients' root mean square (Adam's steps become SGD's at lr / eps). Named by
``doctor.watch`` with the fix; the defaults, a transformer's (0.9, 0.98), a GAN's (0.5, 0.999) and a large eps the
gradients' scale matches are not."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.adam_settings import EPS_OVER, NAME, adam_settings, eps_share

pytestmark = pytest.mark.slow  # each test trains a user's loop (0.1-0.6 s): the fast set keeps its budget


def _data(n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = 2.0 * torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (n,), generator=g)
    return centers[y] + torch.randn(n, 8, generator=g), y


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 32)
        self.out = nn.Linear(32, 3)

    def forward(self, x):
        return self.out(F.relu(self.fc(x)))


def _watched(**adam):
    """The user's loop: Adam with ``adam``'s settings, 8 steps of 16 rows, under doctor.watch."""
    torch.manual_seed(0)
    x, y = _data()
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, **adam)
    with doctor.watch(model, opt, every=2) as w:
        for step in range(8):
            xb, yb = x[16 * step : 16 * step + 16], y[16 * step : 16 * step + 16]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    return next((v for v in w.report().verdicts if v.check == NAME), None), opt


def test_watch_names_swapped_betas_with_the_order_meant():
    verdict, _ = _watched(betas=(0.999, 0.9))
    assert verdict is not None and verdict.status == "warn"
    assert "betas=(0.999, 0.9)" in verdict.value and "write betas=(0.9, 0.999)" in verdict.advice
    ratio = 0.999**2 / 0.9**0.5  # Kingma & Ba's γ = β1²/√β2: 1.05, over their bound of 1
    assert f"(β1²/√β2 = {ratio:.3g}; Kingma & Ba's convergence condition asks it below 1)" in verdict.value


def test_watch_names_an_eps_above_the_gradients_scale():
    verdict, opt = _watched(eps=1.0)
    assert verdict is not None and verdict.status == "warn" and "eps=1" in verdict.value
    # the oracle: Adam's bias-corrected second moments, read from torch's own state
    v = torch.cat([s["exp_avg_sq"].flatten() / (1 - 0.999 ** float(s["step"])) for s in opt.state.values()])
    assert float((v[v > 0].sqrt() * EPS_OVER < 1.0).float().mean()) >= 0.5
    assert "1e-8" in verdict.advice


@pytest.mark.parametrize("adam", [{}, {"betas": (0.9, 0.98)}, {"betas": (0.5, 0.999)}, {"eps": 1e-6}])
def test_usual_settings_pass(adam):
    verdict, _ = _watched(**adam)
    assert verdict is None


def test_a_large_eps_matched_by_large_gradients_passes():
    p = nn.Parameter(torch.zeros(100))
    opt = torch.optim.Adam([p], lr=1e-3, eps=1.0)
    for _ in range(3):
        p.grad = 50 * torch.randn(100)  # √v̂ ~ 50: eps=1 is a guard, not the step's scale
        opt.step()
    share, rms = eps_share(opt.param_groups[0], list(opt.state.values()))
    assert share == 0.0 and 30 < rms < 80
    assert adam_settings([opt]) is None


def test_sgd_and_an_optimizer_given_twice_are_read_once():
    sgd = torch.optim.SGD(Net().parameters(), lr=0.1)
    adam = torch.optim.Adam(Net().parameters(), betas=(0.99, 0.9))
    verdict = adam_settings([sgd, adam, adam])
    assert verdict is not None and verdict.value.count("betas=(0.99, 0.9)") == 1
    assert adam_settings([sgd]) is None


class ThreeDecays(torch.optim.Optimizer):
    """The user's own optimizer with three decays, as Adan's ``betas=(0.98, 0.92, 0.99)``: not Adam's pair."""

    def __init__(self, params, lr=1e-2, betas=(0.98, 0.92, 0.99), eps=1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])


def test_an_optimizer_with_three_decays_is_not_read_as_adams_pair():
    torch.manual_seed(0)
    x, y = _data()
    model = Net()
    opt = ThreeDecays(model.parameters())
    with doctor.watch(model, opt, every=2) as w:
        for step in range(4):
            xb, yb = x[16 * step : 16 * step + 16], y[16 * step : 16 * step + 16]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    assert not [v for v in w.report().verdicts if v.check == NAME]


def test_a_language_models_adamw_settings_pass():
    verdict, _ = _watched(betas=(0.9, 0.95), eps=1e-6, weight_decay=0.1)
    assert verdict is None


def test_the_eps_verdict_explains_its_symbol():
    verdict, _ = _watched(eps=1.0)
    assert "running mean of the squared gradients" in verdict.value
    assert "SGD with momentum at rate 0.001" in verdict.value
