"""``trainwell watch`` (``watch_script``) in a process where ``doctor.watch`` ran before (a notebook, a benchmark):
its reading of ``loss.backward()`` is a wrapper set over ``Tensor.backward``, which torch dispatches; the watch's
loss-call reader, imported before that wrapper was set, still counts it as a backward. Else a loop training in
eval mode has every step's loss read as a validation, and ``model.eval()`` never undone goes unnamed."""

import textwrap

import pytest
import torch
from torch import nn

from trainwell import doctor
from trainwell.doctor.script_watch import watch_script

SCRIPT = """
import sys
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
x = torch.randn(512, 8)
y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
xv, yv = x[384:], y[384:]
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for epoch in range(4):
    if sys.argv[1] == "fixed":
        model.train()  # the bug: this line missing, the epochs after the first train in eval mode
    perm = torch.randperm(384)
    for i in range(0, 384, 32):
        idx = perm[i : i + 32]
        opt.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        val = F.cross_entropy(model(xv), yv).item()
"""


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """The script's loop read by ``trainwell watch`` after a ``doctor.watch`` of another loop in this process."""
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt) as w:  # imports and runs the watch's readers before the script watch patches
        for _ in range(3):
            opt.zero_grad()
            loss = model(torch.randn(8, 4)).pow(2).mean()
            loss.backward()
            opt.step()
            w.step(loss)
    path = tmp_path_factory.mktemp("after_watch") / "train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    return {side: watch_script(str(path), [side], every=10) for side in ("bug", "fixed")}


@pytest.mark.slow  # 0.6 s: two short scripts under the watch
def test_training_in_eval_mode_is_named_under_trainwell_watch_after_a_doctor_watch(reports):
    (bug,), (fixed,) = reports["bug"], reports["fixed"]
    mode = bug["loop: train/eval mode"]
    assert mode.status == "fail" and "training steps ran in eval mode" in mode.value
    assert fixed["loop: train/eval mode"].status == "pass"
    assert not [v for v in fixed if v.status == "fail"]
