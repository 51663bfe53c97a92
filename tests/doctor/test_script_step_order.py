"""``trainwell watch``: a loop with several optimizers stepping one after another (the head trained by an optimizer
of its own) has its step handed to the watch once all have stepped, as a loop calls ``w.step()`` after its steps:
each optimizer's ``.grad`` is read at its own step against the backward the watch observed."""

import textwrap
import warnings

import pytest

from trainwell.doctor.script_watch import ScriptWatch

SCRIPT = """
import sys
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
x = torch.randn(256, 8)
y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
body = nn.Sequential(nn.Linear(8, 32), nn.ReLU())
head = nn.Linear(32, 4)
model = nn.Sequential(body, head)
opt = torch.optim.SGD(body.parameters(), lr=0.1, momentum=0.9)
head_opt = torch.optim.SGD(head.parameters(), lr=0.1, momentum=0.9)  # the head at a rate of its own
BUG = sys.argv[1] == "bug"
for epoch in range(6):
    perm = torch.randperm(256)
    for i in range(8):
        idx = perm[i * 32:(i + 1) * 32]
        opt.zero_grad()
        if not BUG:
            head_opt.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        head_opt.step()
"""


def _alarms(path, side: str) -> dict:
    runner = ScriptWatch(every=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        [report] = runner.run(str(path), [side])
    assert runner.error is None and len(runner.watches[0].probe.optimizers) == 2
    return {v.check: str(v.value) for v in report if v.status in ("warn", "fail")}


@pytest.mark.slow  # ~1.5 s: the bug's script and its twin's, 48 steps each
def test_a_second_optimizer_never_zeroed_is_named_and_its_zeroed_twin_is_clean(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    bug = _alarms(path, "bug")
    assert "optimizer 2 of 2: .grad holds earlier steps' gradients" in bug.get("loop: gradients at optimizer.step()",
                                                                             ""), bug
    assert _alarms(path, "twin") == {}
