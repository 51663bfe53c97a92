"""A run of ``trainwell watch`` leaves nothing of itself behind once its runner is let go: a library the script
imports that keeps the torch methods it found (as torch._dynamo's tables of Tensor methods and torch functions do,
built at its first import, which an optimizer's first step makes) keeps no reference to the run's watch, model or
optimizer, and the frame that called the run (a test's) holds no snapshot of its locals taken by the run."""

import gc
import sys
import weakref

import pytest
import torch

from trainwell.doctor.script_watch import ScriptWatch

TABLE = """
import torch

# the methods as the library found them at its import, kept for good
KEPT = {"backward": torch.Tensor.backward, "autograd": torch.autograd.backward}
"""

SCRIPT = """
import torch
import torch.nn.functional as F
from torch import nn

import kept_methods_table  # noqa: F401

torch.manual_seed(0)
x = torch.randn(64, 4)
y = (x[:, 0] > 0).long()
model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(3):
    model.train()
    for i in range(0, 48, 16):
        loss = F.cross_entropy(model(x[i:i + 16]), y[i:i + 16])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        val_loss = F.cross_entropy(model(x[48:]), y[48:]).item()
"""


@pytest.mark.slow  # ~1-4 s: a run of a 9-step script (the first in a process imports torch._dynamo)
def test_a_library_keeping_the_methods_it_found_keeps_nothing_of_the_run(tmp_path):
    (tmp_path / "kept_methods_table.py").write_text(TABLE)
    (tmp_path / "train.py").write_text(SCRIPT)
    try:
        runner = ScriptWatch(every=5)
        [report] = runner.run(str(tmp_path / "train.py"), [])
        assert runner.error is None and "read from step" in report.title
        runner_ref, opt_ref = weakref.ref(runner), weakref.ref(runner._globals["opt"])
        model_ref = weakref.ref(runner._globals["model"])
        del runner, report
        gc.collect()
        # the run's optimizer gone with it: a run after it in the same process finds its own optimizer alone
        assert runner_ref() is None and opt_ref() is None and model_ref() is None
        table = sys.modules["kept_methods_table"]
        w = torch.ones(3, requires_grad=True)
        table.KEPT["backward"]((w * w).sum())  # the kept methods still work: torch's own, called through
        table.KEPT["autograd"]([(2 * w).sum()])
        assert torch.equal(w.grad, torch.full((3,), 4.0))
        assert torch.Tensor.backward is not table.KEPT["backward"]  # torch's own method is back on the class
    finally:
        sys.modules.pop("kept_methods_table", None)
