"""An optimizer the script built and dropped in a reference cycle (a learning-rate finder's, never collected while
the garbage collector waits) is no second optimizer of the loop: ``trainwell watch`` reads the loop from its first
step, as it does for a script with one optimizer."""

import gc

import pytest

from trainwell.doctor.script_watch import ScriptWatch

SCRIPT = """
import gc

import pytest
import torch
import torch.nn.functional as F
from torch import nn

gc.disable()  # as long pipelines do: cycles wait for a collection


class LRFinder:  # a finder object keeping a reference to itself (a callback list, a closure over self)
    def __init__(self, model):
        self.me = self
        self.optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)


torch.manual_seed(0)
x = torch.randn(256, 8)
y = (x[:, 0] > 0).long()
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
LRFinder(model)  # built, dropped: garbage in a cycle
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for epoch in range(3):
    for i in range(0, 256, 32):
        loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
gc.enable()
"""


def _losses(tmp_path, text: str) -> list[float]:
    path = tmp_path / "train.py"
    path.write_text(text)
    enabled = gc.isenabled()
    try:
        runner = ScriptWatch(every=5)
        runner.run(str(path), [])
    finally:
        if enabled:
            gc.enable()
    assert runner.error is None, runner.error
    [w] = runner.watches
    return list(w._losses)


@pytest.mark.slow  # two runs of the script, ~2 s
def test_an_optimizer_dropped_in_a_cycle_does_not_delay_the_watch(tmp_path):
    without = _losses(tmp_path, SCRIPT.replace("LRFinder(model)", "pass"))
    assert _losses(tmp_path, SCRIPT) == without  # the same steps read, from the first
