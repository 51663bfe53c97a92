"""A forward that runs part of the model under ``torch.no_grad()``: written around a block by mistake, or around a
``torch.utils.checkpoint`` call (reentrant or not). That block and every layer before it never receive a gradient;
the watch and the pre-flight name the no_grad as the cause. The same model without the no_grad (checkpointed or
not) passes, and a reentrant checkpoint that trains shows no torch warning from the doctor's own forwards."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from trainwell import doctor

NAME = "loop: every trainable parameter learns"


class Net(nn.Module):
    """A stem, a block and a head; ``how`` says how the block runs in forward."""

    def __init__(self, how: str):
        super().__init__()
        self.how = how
        self.stem = nn.Linear(10, 32)
        self.block = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32))
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        reentrant = self.how.endswith("reentrant")
        if self.how.startswith("no_grad_checkpoint"):
            with torch.no_grad():
                h = checkpoint(self.block, h, use_reentrant=reentrant)
        elif self.how.startswith("checkpoint"):
            h = checkpoint(self.block, h, use_reentrant=reentrant)
        elif self.how == "no_grad":
            with torch.no_grad():
                h = self.block(h)
        else:
            h = self.block(h)
        return self.head(h)


def _data():
    torch.manual_seed(0)
    x = torch.randn(128, 10)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()


def _watch(how: str):
    x, y = _data()
    model = Net(how)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with doctor.watch(model, opt, every=5) as w:
            for _ in range(2):
                for i in range(0, 128, 32):
                    loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    w.step(loss, y=y[i:i + 32])
        report = w.report()
    return report, [str(m.message) for m in shown]


@pytest.mark.slow  # ~0.6 s: a watched loop or check run
@pytest.mark.parametrize("how", ["no_grad", "no_grad_checkpoint", "no_grad_checkpoint_reentrant"])
def test_a_block_run_under_no_grad_is_named_as_the_cause(how):
    verdict = _watch(how)[0][NAME]
    assert verdict.status == "warn"
    assert "never received a gradient: stem.*, block.0.*, block.2.*" in verdict.value
    assert "block.0.*, block.2.* ran under torch.no_grad()" in verdict.value
    assert "remove the no_grad" in verdict.advice
    checkpointed = how != "no_grad"
    assert ("in torch.utils.checkpoint" in verdict.value) == checkpointed
    assert ("around the torch.utils.checkpoint call" in verdict.advice) == checkpointed
    # the twin, without the no_grad: every parameter learns
    twin, _ = _watch(how.removeprefix("no_grad_") if checkpointed else "plain")
    assert twin[NAME].status == "pass"


def test_a_reentrant_checkpoint_that_trains_shows_no_torch_warning():
    """torch warns "None of the inputs have requires_grad=True" for a reentrant segment run without gradients:
    the doctor's own readings at the report run so, and do not show it; the loop's verdict passes."""
    report, shown = _watch("checkpoint_reentrant")
    assert report[NAME].status == "pass"
    assert not [m for m in shown if "None of the inputs have requires_grad" in m]


@pytest.mark.slow  # 1.5 s each
@pytest.mark.parametrize("how", ["no_grad", "no_grad_checkpoint_reentrant"])
def test_the_pre_flight_names_the_no_grad_and_the_checks_that_follow_defer_to_it(how):
    x, y = _data()
    model = Net(how)
    report = doctor.check(model, x, y, F.cross_entropy, optimizer=torch.optim.Adam(model.parameters(), lr=1e-2))
    registered = report["parameters registered"]
    assert registered.status == "warn" and "block.0.*, block.2.* ran under torch.no_grad()" in registered.value
    assert "remove the no_grad" in registered.advice
    followed = [v for v in report if v.check in ("overfit a tiny subset", "gradient check (data + L2)")
                and v.status in ("warn", "fail")]
    assert followed and all(v.advice.startswith("fix 'parameters registered' first") for v in followed)
