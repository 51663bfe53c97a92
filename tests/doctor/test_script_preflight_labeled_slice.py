"""``trainwell watch --check`` on a FixMatch-style loop: labeled and unlabeled rows concatenated through one forward,
the supervised loss on the labeled slice only. The loss's targets cover only some of the forward's rows, so the
pre-flight cannot pair inputs with targets: its one skip line says so in numbers and what to call instead (it was
doctor.check's raw "x has 448 examples and y 64"). The same loop trained on its labeled rows alone is checked."""

import gc
import re
import textwrap

import pytest
import torch._dynamo  # noqa: F401  (imported before any watch, as in test_script_preflight.py)

from trainwell.doctor.script_watch import ScriptWatch

SCRIPT = """
import sys
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

SEMI = sys.argv[1] == "fixmatch"
FEATURES = int(sys.argv[2])
torch.manual_seed(0)
centers = 2.0 * torch.randn(4, FEATURES)
yl = torch.randint(0, 4, (64,))
xl = centers[yl] + torch.randn(64, FEATURES)
xu = centers[torch.randint(0, 4, (384,))] + torch.randn(384, FEATURES)


def weak(x):
    return x + 0.05 * torch.randn_like(x)


def strong(x):
    return x * (torch.rand_like(x) > 0.2).float() + 0.15 * torch.randn_like(x)


model = nn.Sequential(nn.Linear(FEATURES, 32), nn.ReLU(), nn.Linear(32, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
lab_loader = DataLoader(TensorDataset(xl, yl), batch_size=16, shuffle=True, drop_last=True)
unl_loader = DataLoader(TensorDataset(xu), batch_size=48, shuffle=True, drop_last=True)
for (ub,), (xb, yb) in zip(unl_loader, lab_loader):
    if SEMI:
        logits = model(torch.cat([weak(xb), weak(ub), strong(ub)]))
        n = xb.size(0)
        logits_uw, logits_us = logits[n:].chunk(2)
        conf, pseudo = torch.softmax(logits_uw.detach(), dim=1).max(dim=1)
        unsup = (F.cross_entropy(logits_us, pseudo, reduction="none") * (conf >= 0.95).float()).mean()
        loss = F.cross_entropy(logits[:n], yb) + unsup
    else:
        loss = F.cross_entropy(model(weak(xb)), yb)
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


def _pre_flight(tmp_path, kind: str, features: int = 20) -> dict:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    gc.collect()
    runner = ScriptWatch(every=10, check=True)
    [report] = runner.run(str(path), [kind, str(features)])
    assert runner.error is None, runner.error
    return {v.check: v for v, phase in zip(report.verdicts, report.phases, strict=True) if phase == "pre"}


@pytest.mark.parametrize("features", [20, 16])  # 16: as many features as labeled rows per batch
def test_a_loss_on_the_labeled_slice_of_one_forward_skips_the_pre_flight_saying_why(tmp_path, features):
    """With as many features as labeled rows, the batches' second dimension fits the targets as a sequence-first
    input's would: a model with no sequence-first layer does not read its 2-D inputs so."""
    pre = _pre_flight(tmp_path, "fixmatch", features)
    assert list(pre) == ["pre-flight"]
    line = pre["pre-flight"]
    assert line.status == "skip"
    found = re.search(r"targets cover only (\d+) of the (\d+) rows Sequential's forward read in the first (\d+) "
                      r"training batch", line.value)
    assert found, line.value
    covered, rows, batches = map(int, found.groups())
    assert (covered, rows) == (16 * batches, (16 + 2 * 48) * batches)  # the labeled slice of each forward
    assert "semi-supervised" in line.value and "doctor.check(model, x_labeled, y, loss_fn)" in line.value
    assert "examples and y" not in line.value and "\n" not in line.value


def test_the_same_loop_on_its_labeled_rows_alone_is_checked(tmp_path):
    pre = _pre_flight(tmp_path, "supervised")
    assert pre["pre-flight"].status == "info", pre["pre-flight"].value
    assert "doctor.check ran" in pre["pre-flight"].value
