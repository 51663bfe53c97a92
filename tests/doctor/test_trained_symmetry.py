"""``loop: symmetry``: a network initialized to zero (or a constant) keeps identical hidden units however long it
trains; read by the watch on the weights the loop trained (``trainwell watch`` names it without the pre-flight).
Healthy twins: a random init, and units zero-initialized on purpose (a zero head, a residual branch's zero last
layer), which their own gradients make distinct."""

import gc
import textwrap

import pytest

from trainwell.doctor.script_watch import ScriptWatch

SCRIPT = """
import sys
import torch
import torch.nn.functional as F
from torch import nn

KIND = sys.argv[1]
torch.manual_seed(0)
x = torch.randn(512, 8)
y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 0.5).long()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(8, 32)
        self.branch = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32))
        self.head = nn.Linear(32, 3)

    def forward(self, inputs):
        h = F.relu(self.inp(inputs))
        return self.head(h + self.branch(h))


model = Net()
if KIND == "zeros":  # "a clean start": every weight and bias at 0
    for p in model.parameters():
        nn.init.zeros_(p)
elif KIND == "zero_ends":  # on purpose: the residual branch's last layer and the head start at 0
    for layer in (model.branch[2], model.head):
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
for epoch in range(3):
    perm = torch.randperm(512)
    for i in range(0, 512, 32):
        idx = perm[i:i + 32]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
"""


@pytest.fixture(scope="module")
def alarms(tmp_path_factory):
    path = tmp_path_factory.mktemp("symmetry") / "train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    out = {}
    for kind in ("zeros", "zero_ends", "random"):
        runner = ScriptWatch(every=8)
        out[kind] = {v.check: v for r in runner.run(str(path), [kind]) for v in r if v.status in ("warn", "fail")}
        assert runner.error is None, runner.error
        del runner
        gc.collect()
    return out


@pytest.mark.slow  # ~3 s, shared: three runs of a 48-step script
def test_a_network_initialized_to_zero_is_named_by_its_identical_units(alarms):
    found = alarms["zeros"]["loop: symmetry"]
    assert found.status == "fail" and "inp.weight" in found.value and "head.weight" not in found.value


@pytest.mark.slow  # shares the runs above
@pytest.mark.parametrize("kind", ["zero_ends", "random"])
def test_units_zeroed_on_purpose_or_drawn_at_random_are_not_named(alarms, kind):
    assert "loop: symmetry" not in alarms[kind]
