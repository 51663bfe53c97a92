"""``trainwell watch`` on a focal loss (Lin et al. 2017) over scores 30x too large at initialization: the watch's
``loop: loss`` reading of the first step names the initial loss against that of uniform outputs (ln C, scaled by the
focal loss's weight), as the pre-flight's ``initial loss`` does. The twin, initialized as torch does, passes."""

import textwrap

import pytest

from trainwell.doctor.script_watch import ScriptWatch

SCRIPT = """
import sys
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
x = torch.randn(512, 8)
y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 0.5).long() + (x[:, 4] > 1.0).long()
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
if sys.argv[1] == "large":
    with torch.no_grad():
        model[2].weight.mul_(30)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
for i in range(0, 512, 32):
    ce = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32], reduction="none")
    loss = ((1 - torch.exp(-ce)) ** 2 * ce).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


@pytest.mark.slow  # ~1 s: two runs of a 16-step script
def test_an_initial_loss_far_above_uniform_outputs_is_named_as_such(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    loss = {kind: next(v for r in ScriptWatch(every=4).run(str(path), [kind]) for v in r if v.check == "loop: loss")
            for kind in ("large", "torch")}
    assert loss["large"].status == "warn" and "initial loss" in loss["large"].value
    assert loss["torch"].status == "pass"
