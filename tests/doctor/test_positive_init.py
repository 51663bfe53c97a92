"""Weights initialized all positive (weights_init with nn.init.uniform_(m.weight): torch's default bounds are
U(0, 1)): the activations grow with every layer and the first updates kill the ReLUs. The watch names the init and
reads the collapse and the first loss as following from it; the same loop under torch's default init is clean."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64),
                                 nn.ReLU(), nn.Linear(64, 4))

    def forward(self, x):
        return self.net(x)


def _run(init):
    torch.manual_seed(0)
    centers = 2.5 * torch.randn(4, 8)
    y = torch.randint(0, 4, (768,))
    x = centers[y] + torch.randn(768, 8)
    model = MLP()

    def weights_init(m):
        if isinstance(m, nn.Linear):
            init(m.weight)
            nn.init.zeros_(m.bias)
    model.apply(weights_init)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:512], y[:512]), batch_size=32,
                                         shuffle=True)
    with doctor.watch(model, opt, every=8) as w:
        for _ in range(3):
            model.train()
            for xb, yb in loader:
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            with torch.no_grad():
                w.validate(F.cross_entropy(model(x[512:]), y[512:]).item())
    return w.report()


@pytest.fixture(scope="module")
def reports():
    return {"uniform": _run(nn.init.uniform_),
            "default": _run(lambda w: nn.init.kaiming_uniform_(w, a=5 ** 0.5))}  # torch's own reset_parameters


@pytest.mark.slow
def test_all_positive_weights_are_named_and_explain_the_rest(reports):
    alarms = [v for v in reports["uniform"] if v.status in ("warn", "fail")]
    assert [v.check for v in alarms] == ["loop: weight init"], alarms
    assert "4 weight tensors" in alarms[0].value and "'net.0.weight'" in alarms[0].value
    assert "U(0, 1)" in alarms[0].value and "He et al. 2015" in alarms[0].advice
    first = next(v for v in reports["uniform"] if v.check == "loop: loss")
    assert first.status == "info" and "explained by 'loop: weight init'" in first.value


@pytest.mark.slow
def test_torch_default_init_is_clean(reports):
    alarms = [v for v in reports["default"] if v.status in ("warn", "fail")]
    assert alarms == [], alarms
