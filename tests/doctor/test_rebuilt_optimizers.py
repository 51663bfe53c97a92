"""An optimizer created again inside the loop (every step, or at the top of every epoch) starts its state over each
time: named by ``loop: optimizer built once``, not read as a missing ``optimizer.step()``. Creating it once, a new
optimizer per fine-tuning stage with more layers unfrozen, a stateless SGD rebuilt, and one optimizer per fold of a
k-fold run pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

NAME = "loop: optimizer built once"


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 10, generator=g)
    return x, (x[:, 0] - x[:, 1] > 0).long()


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))


def _run(rebuild: str, epochs: int = 4, kind=torch.optim.Adam, **options):
    x, y = _data()
    model = _model()
    opt = kind(model.parameters(), lr=1e-2, **options)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    with doctor.watch(model, opt) as w:
        for epoch in range(epochs):
            if rebuild == "epoch" and epoch:
                opt = kind(model.parameters(), lr=1e-2, **options)
            for xb, yb in loader:
                if rebuild == "step":
                    opt = kind(model.parameters(), lr=1e-2, **options)
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            with torch.no_grad():
                w.validate(float(F.cross_entropy(model(x[:64]), y[:64])))
    return {v.check: v for v in w.report().verdicts}


def test_adam_created_every_step_is_named_not_a_missing_step():
    verdicts = _run("step")
    v = verdicts[NAME]
    assert v.status == "warn" and "32 Adam optimizers over the same parameters, a new one at every step" in v.value
    assert "sign" in v.value
    assert "loop: optimizer.step() runs" not in verdicts  # it ran: on the new optimizer each time


def test_adam_created_every_epoch_is_named():
    v = _run("epoch")[NAME]
    assert v.status == "warn" and "4 Adam optimizers" in v.value and "a new one at the start of each epoch" in v.value


def test_momentum_sgd_created_every_step_is_named():
    v = _run("step", epochs=2, kind=torch.optim.SGD, momentum=0.9)[NAME]
    assert v.status == "warn" and "momentum buffer starts over" in v.value


@pytest.mark.parametrize("case", [dict(rebuild="once"), dict(rebuild="step", epochs=2, kind=torch.optim.SGD)])
def test_one_optimizer_or_a_stateless_sgd_rebuilt_pass(case):
    assert NAME not in _run(**case)


def test_a_new_optimizer_per_unfreezing_stage_passes():
    """ULMFiT's gradual unfreezing: each epoch unfreezes one more layer and builds an optimizer over what trains."""
    x, y = _data()
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    layers = [model[4], model[2], model[0]]
    for p in model.parameters():
        p.requires_grad_(False)
    opt = None
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    for p in layers[0].parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    with doctor.watch(model, opt) as w:
        for stage in range(3):
            if stage:
                for p in layers[stage].parameters():
                    p.requires_grad_(True)
                opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
            for xb, yb in loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    assert NAME not in {v.check for v in w.report().verdicts}


def test_one_optimizer_per_fold_passes():
    """k-fold cross-validation in one watch: the model reset in place and a new optimizer for each fold of several
    epochs."""
    x, y = _data()
    model = _model()
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with doctor.watch(model, opt) as w:
        for fold in range(3):
            if fold:
                for layer in (model[0], model[2]):
                    layer.reset_parameters()
                opt = torch.optim.Adam(model.parameters(), lr=1e-2)
            for _ in range(3):
                for xb, yb in loader:
                    loss = F.cross_entropy(model(xb), yb)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    w.step(loss, y=yb)
                with torch.no_grad():
                    w.validate(float(F.cross_entropy(model(x[:64]), y[:64])))
    assert NAME not in {v.check for v in w.report().verdicts}
